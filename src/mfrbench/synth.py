"""The synth stage runner: dataset records in, masked/cropped images and manifest rows out.

Per source image: decode -> detect (cascade) -> pick one face -> landmarks -> canonical anchors
-> for each variant (unmasked, one per mask colour, optional augmentations): mask, ROI crop,
encode, write. The runner owns parallelism, progress, resume and writing:

- Records are sorted and cut into fixed chunks; each finished chunk is written as a Parquet part
  under ``OUT/.parts`` atomically, so a killed run loses at most the chunks in flight and a re-run
  does only the missing chunks.
- The final ``OUT/manifest.parquet`` streams the parts in chunk order (one row group each), so
  memory does not grow with the dataset and the bytes do not depend on the worker count.
- Every model runs single-threaded inside its worker: numerics (and so the manifest) are then the
  same with 1 or N workers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq

from mfrbench import __version__
from mfrbench.colors import parse_colors
from mfrbench.datasets import Record, get_dataset
from mfrbench.errors import ImageError, UserError
from mfrbench.executors import LOCAL, Executor
from mfrbench.manifest import (
    MANIFEST_SCHEMA_VERSION,
    STATUS_OK,
    canonical_json,
    concat_parquet_atomic,
    rows_to_table,
    synth_schema,
    with_metadata,
    write_bytes_atomic,
    write_json_atomic,
    write_table_atomic,
)
from mfrbench.records import MIX_VARIANT
from mfrbench.vision import augment
from mfrbench.vision.anchors import to_canonical68
from mfrbench.vision.decode import decode_image
from mfrbench.vision.detect import (
    FACE_POLICIES,
    Cascade,
    Detection,
    cascade_names,
    select_face,
)
from mfrbench.vision.landmarks import make_landmarker
from mfrbench.vision.mask import MASK_SHAPES, mask_polygon
from mfrbench.vision.mask_mix import MaskMix, MaskRecord, apply_mask, record_color
from mfrbench.vision.occlusion import crop_occlusion, encode_occlusion, polygon_occlusion
from mfrbench.vision.render import encode, render
from mfrbench.vision.roi import ROI_KINDS, expand_box, output_size, roi_box
from mfrbench.workers import release_freed_memory, restore_threads, single_threaded, spawn_map

CHUNK_SIZE = 32
LANDMARK_BACKENDS = ("dlib", "mediapipe")
IMAGE_FORMATS = ("jpg", "png")
STAGES = ("read", "decode", "detect", "landmarks", "render", "write")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the output. Worker count is deliberately not part of it."""

    dataset: str
    root: str | None = None
    colors: str = "black,white,blue"
    mask_shape: str = "paper"
    detector: str = "mtcnn"
    fallback: bool = True
    landmarks: str = "dlib"
    mediapipe_model: str | None = None
    margin: int = 15
    face_policy: str = "auto"  # resolved by resolve_defaults(): see CENTRED_DATASETS
    roi: str = "upper-half"
    size: int = 112
    image_format: str = "jpg"
    jpeg_quality: int = 95
    augment: tuple[str, ...] = ()
    augment_copies: int = 3
    max_side: int = 1024
    min_side: int = 32
    seed: int = 0
    limit: int | None = None
    min_face: int | str = "auto"  # px, "auto" or "native": see MIN_FACE_RULES, detector_options
    masks: str = ""  # a mask mix ("surgical:0.6,cloth:0.4"): one drawn mask per image, not colours
    occlusion_masks: bool = False  # also write each masked output's occlusion PNG
    device: str = "cpu"  # where MTCNN runs; not a parameter of the output (see params())

    def validate(self) -> None:
        """Raise UserError for any option a user got wrong (checked before any work)."""
        parse_colors(self.colors)
        _one_of("--mask-shape", self.mask_shape, tuple(MASK_SHAPES))
        cascade_names(self.detector, self.fallback)  # raises on unknown or misordered names
        _one_of("--landmarks", self.landmarks, LANDMARK_BACKENDS)
        _one_of("--face-policy", self.face_policy, (*FACE_POLICIES, "auto"))
        _one_of("--roi", self.roi, ROI_KINDS)
        _one_of("--format", self.image_format, IMAGE_FORMATS)
        for kind in self.augment:
            _one_of("--augment", kind, augment.AUGMENTATIONS)
        if self.size < 8:
            raise UserError(f"--size must be at least 8, got {self.size}")
        if self.margin < 0:
            raise UserError(f"--margin must be >= 0, got {self.margin}")
        if self.augment and self.augment_copies < 1:
            raise UserError(f"--augment-copies must be >= 1, got {self.augment_copies}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be >= 1, got {self.limit}")
        if isinstance(self.min_face, str):
            _one_of("--min-face", self.min_face, MIN_FACE_RULES)
        elif self.min_face < MIN_FACE_FLOOR:
            raise UserError(f"--min-face must be at least {MIN_FACE_FLOOR} px, got {self.min_face}")
        if self.masks:
            MaskMix.parse(self.masks)
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")
        if self.device != "cpu":  # torch is imported only when a GPU is asked for
            from mfrbench.vision.device import resolve_device

            resolve_device(self.device)  # unknown name, or cuda without a GPU: refused here

    def params(self) -> dict[str, Any]:
        """JSON-able parameters recorded in the manifest metadata and the resume check.

        Nothing here depends on where the files sit: the data root is left out (the records'
        paths are relative to it and their sha256 pins the content) and a MediaPipe model file
        is named by its sha256, so the same images give the same manifest bytes wherever the
        data folder is, however it is reached (a symlink, a moved disk). ``run.json`` keeps the
        root for people (:func:`_prepare_out`).
        """
        d = asdict(self)
        d.pop("root")
        # The device is left out too: the manifest records the detector, not the hardware
        # (GPU numerics differ from the CPU's only within the golden tolerance).
        d.pop("device")
        d["augment"] = list(self.augment)
        model = d.pop("mediapipe_model")
        d["mediapipe_model_sha256"] = _file_sha256(model) if model else None
        # Recorded only where it acts (a size, or "auto" with MTCNN in the cascade), and the
        # HOG rule only when HOG leads: manifests made before either existed (MTCNN- or
        # Haar-led, each detector's own minimum) keep their bytes with --min-face native.
        if self.min_face == "native" or (self.min_face == "auto" and not _has_mtcnn(self)):
            d.pop("min_face")
        if cascade_names(self.detector, self.fallback)[0] in _RETRY_DETECTORS:
            d["dlib_upsample"] = "0-then-1"
        # Mixes and occlusion masks likewise: recorded only when used (the mix canonical).
        if self.masks:
            d["masks"] = MaskMix.parse(self.masks).spec()
        else:
            d.pop("masks")
        if not self.occlusion_masks:
            d.pop("occlusion_masks")
        return d

    def optional_columns(self) -> tuple[str, ...]:
        """The manifest's optional columns this run fills (manifest.OPTIONAL_SYNTH_FIELDS)."""
        return tuple(
            name
            for name, used in (("mask_style", self.masks), ("occlusion_path", self.occlusion_masks))
            if used
        )

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.params()).encode()).hexdigest()


#: MTCNN's P-Net window: no detector here finds faces smaller than this.
MIN_FACE_FLOOR = 12
#: --min-face words: "auto" (the default) is MTCNN's ``min_face_size="auto"`` (faces of 16% of
#: the shorter side first, then down to 20 px where none is found; other detectors keep their
#: own minimum); "native" is each detector's own minimum (MTCNN 20, Haar 30), as before "auto".
MIN_FACE_RULES = ("auto", "native")
#: dlib detectors that, when they lead the cascade, try upsample 0 before 1 (bench/hog_upsample.py).
_RETRY_DETECTORS = ("dlib", "mmod")


def detector_options(config: SynthConfig, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Constructor options per detector in the cascade ``names``: the minimum face size
    (MTCNN ``min_face_size``, Haar ``min_size``, dlib ``min_face``; ``"auto"`` reaches MTCNN
    only) and the HOG/MMOD retry rule for a dlib detector that leads the cascade. A fallback
    keeps its defaults (upsample 1 on small images), so MTCNN-led runs with ``--min-face
    native`` give the bytes they gave before either rule."""
    opts: dict[str, dict[str, Any]] = {name: {} for name in names}
    if names and names[0] in _RETRY_DETECTORS:
        opts[names[0]]["retry"] = True
    if config.min_face == "auto" and "mtcnn" in names:
        opts["mtcnn"]["min_face_size"] = "auto"
    elif not isinstance(config.min_face, str):
        key = {"mtcnn": "min_face_size", "haar": "min_size", "dlib": "min_face", "mmod": "min_face"}
        for name in names:
            if name in key:
                opts[name][key[name]] = config.min_face
    return {name: o for name, o in opts.items() if o}


def parse_min_face(value: str | int) -> int | str:
    """``--min-face`` as typed: "auto", "native" or a size in px (validated by SynthConfig)."""
    if isinstance(value, int) or value in MIN_FACE_RULES:
        return value
    try:
        return int(value)
    except ValueError:
        raise UserError(
            f"--min-face: expected a size in px, 'auto' or 'native', got {value!r}"
        ) from None


def _has_mtcnn(config: SynthConfig) -> bool:
    """Whether MTCNN is in the cascade (the only detector with an "auto" minimum face)."""
    return "mtcnn" in cascade_names(config.detector, config.fallback)


def _file_sha256(path: str) -> str:
    """sha256 of a model file (the path itself when it cannot be read: validation reports it)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"


#: Datasets whose photos are centred on their subject: the centre face is the labelled person
#: (in LFW the largest face is a bystander in ~2% of the images), so "auto" picks "center".
CENTRED_DATASETS = ("lfw", "mfr2", "rmfrd")


def resolve_defaults(config: SynthConfig) -> SynthConfig:
    """Replace "auto" options by what they mean for this dataset (recorded resolved)."""
    if config.face_policy == "auto":
        policy = "center" if config.dataset in CENTRED_DATASETS else "largest"
        config = replace(config, face_policy=policy)
    return config


def _one_of(flag: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UserError(f"{flag}: unknown value {value!r}; choose from {', '.join(valid)}")


@dataclass(frozen=True)
class Variant:
    """One output per source image: ``unmasked``, ``mask-<colour>``, or either + augmentation."""

    name: str
    color: str | None = None
    rgb: tuple[int, int, int] | None = None
    aug_kind: str | None = None
    aug_copy: int = 0
    mix: bool = False  # ``mask-mix``: the image's mask drawn from --masks (kind, look, colour)

    @property
    def masked(self) -> bool:
        return self.color is not None or self.mix


def plan_variants(config: SynthConfig) -> list[Variant]:
    """The variants every source image gets, in a fixed order."""
    base = [Variant("unmasked")]
    if config.masks:
        base.append(Variant(MIX_VARIANT, mix=True))
    else:
        base += [Variant(f"mask-{name}", name, rgb) for name, rgb in parse_colors(config.colors)]
    out = list(base)
    for kind in config.augment:
        for copy in range(config.augment_copies):
            for v in base:
                out.append(Variant(f"{v.name}+{kind}{copy}", v.color, v.rgb, kind, copy, v.mix))
    return out


def output_names(records: Sequence[Record], fmt: str) -> dict[str, str]:
    """Map each source rel_path to its output rel_path (suffix replaced by ``fmt``).

    Two sources that would collide (``a.png`` and ``a.jpg``) keep their original suffix in
    the stem instead, deterministically.
    """
    plain = {r.rel_path: str(PurePosixPath(r.rel_path).with_suffix(f".{fmt}")) for r in records}
    counts = Counter(plain.values())
    return {rel: (out if counts[out] == 1 else f"{rel}.{fmt}") for rel, out in plain.items()}


class SynthPipeline:
    """Loads the detector cascade and landmark model once; turns one source into rows."""

    def __init__(self, config: SynthConfig, root: Path, out: Path) -> None:
        config = resolve_defaults(config)
        self.config = config
        self.root = root
        self.out = out
        self.variants = plan_variants(config)
        names = cascade_names(config.detector, config.fallback)
        opts = detector_options(config, names)
        if "mtcnn" in names:
            opts.setdefault("mtcnn", {})["device"] = config.device
        self.cascade = Cascade(names, max_side=config.max_side, **opts)
        kwargs = {"model_path": config.mediapipe_model} if config.landmarks == "mediapipe" else {}
        self.landmarker = make_landmarker(config.landmarks, **kwargs)
        self.out_wh = output_size(config.roi, config.size)
        self.mix = MaskMix.parse(config.masks) if config.masks else None
        self.timings: Counter[str] = Counter()

    def _base_row(self, rec: Record) -> dict[str, Any]:
        c = self.config
        return {
            "dataset": rec.dataset,
            "identity": rec.identity,
            "src_path": rec.rel_path,
            "src_sha256": rec.sha256,
            "real_mask": rec.real_mask,
            "mask_shape": None,
            "face_policy": c.face_policy,
            "margin": c.margin,
            "landmarks_backend": c.landmarks,
            "roi": c.roi,
            "size": c.size,
            "seed": c.seed,
            "tool_version": __version__,
            "status": STATUS_OK,
            "reason": "",
        }

    def _variant_row(self, base: dict[str, Any], v: Variant) -> dict[str, Any]:
        row = dict(base)
        row.update(
            key=f"{base['src_path']}|{v.name}",
            variant=v.name,
            masked=v.masked,
            color=v.color,
            color_rgb=list(v.rgb) if v.rgb else None,
            mask_shape=self.config.mask_shape if v.masked else None,
        )
        if not v.masked:
            row["mask_polygon"] = None
        return row

    def _timed(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timings[stage] += t1 - t0  # type: ignore[assignment]  # typeshed: Counter counts are int
        return t1

    def process(self, rec: Record, out_rel: str) -> list[dict[str, Any]]:
        """All rows for one source image (one per variant), failures included."""
        return self.process_many([(rec, out_rel)])[0]

    def process_many(self, items: Sequence[tuple[Record, str]]) -> list[list[dict[str, Any]]]:
        """Rows per source image, as :meth:`process` gives them; detection batched.

        Decode every image, detect faces in all decoded ones with one batched cascade call
        (MTCNN shares its network passes across them), then landmark and render per image.
        """
        bases = [self._base_row(rec) for rec, _ in items]
        failed: dict[int, ImageError] = {}
        decoded: dict[int, np.ndarray] = {}
        for i, (rec, _) in enumerate(items):
            try:
                decoded[i] = self._decode(rec, bases[i])
            except ImageError as err:
                failed[i] = err
        t = time.perf_counter()
        detections = dict(
            zip(decoded, self.cascade.detect_many(list(decoded.values())), strict=True)
        )
        self._timed("detect", t)
        out = []
        for i, (_, out_rel) in enumerate(items):
            base = bases[i]
            try:
                if i in failed:
                    raise failed[i]
                geometry = self._locate(decoded[i], detections[i], base)
            except ImageError as err:
                base.update(status=err.status, reason=err.reason)
                out.append([self._variant_row(base, v) for v in self.variants])
                continue
            out.append(self._render_all(geometry, base, out_rel))
        return out

    def _render_all(
        self,
        geometry: tuple[np.ndarray, np.ndarray, np.ndarray],
        base: dict[str, Any],
        out_rel: str,
    ) -> list[dict[str, Any]]:
        """One row per variant of an image whose face was located."""
        rgb, polygon, canon = geometry
        mixed = self._mixed(rgb, canon, base["src_path"]) if self.mix is not None else None
        rows = []
        for v in self.variants:
            row = self._variant_row(base, v)
            try:
                self._render_variant(rgb, polygon, v, row, out_rel, mixed)
            except ImageError as err:
                row.update(status=err.status, reason=err.reason)
            rows.append(row)
        return rows

    def _decode(self, rec: Record, row: dict[str, Any]) -> np.ndarray:
        """Read, check and decode one source; fills the size fields. Raises ImageError."""
        c = self.config
        t = time.perf_counter()
        try:
            data = (self.root / rec.rel_path).read_bytes()
        except OSError as e:
            raise ImageError("read_error", f"cannot read file: {e.strerror or e}") from e
        if rec.sha256 and hashlib.sha256(data).hexdigest() != rec.sha256:
            raise ImageError("read_error", "file changed while the run was listing it")
        t = self._timed("read", t)
        decoded = decode_image(data, min_side=c.min_side)
        rgb = decoded.rgb
        w, h = decoded.width, decoded.height
        row.update(src_width=w, src_height=h, decode_notes=",".join(decoded.notes))
        self._timed("decode", t)
        return rgb

    def _locate(
        self, rgb: np.ndarray, detection: Detection, row: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pick the face, landmark it; fills the shared row fields. Raises ImageError.

        Returns (image, mask polygon, canonical 68 landmarks)."""
        c = self.config
        h, w = rgb.shape[:2]
        t = time.perf_counter()
        faces = detection.faces
        row["faces_found"] = len(faces)
        if not faces:
            raise ImageError("no_face", f"no face found by {', '.join(detection.tried)}")
        face, why = select_face(faces, c.face_policy, (w, h))
        if face is None:
            raise ImageError("multiple_faces", why)
        fbox = expand_box(face.box, c.margin, (w, h))
        row.update(
            detector=face.detector,
            det_score=float(face.score),
            det_box=[float(x) for x in face.box],
            det_points5=(
                [float(x) for x in np.asarray(face.landmarks5).ravel()]
                if face.landmarks5 is not None
                else None
            ),
            face_box=list(fbox),
        )
        points = self.landmarker(rgb, face.box)
        canon = to_canonical68(points, c.landmarks)
        t = self._timed("landmarks", t)
        box = roi_box(c.roi, fbox, canon, (w, h))
        polygon = mask_polygon(canon, c.mask_shape)
        row.update(
            landmarks=canon.astype(np.float32).ravel().tolist(),
            roi_box=list(box),
        )
        return rgb, polygon, canon

    def _mixed(self, rgb: np.ndarray, canon: np.ndarray, src_path: str) -> _Mixed:
        """This image's mask from the mix: drawn from (seed, source path) alone, so any worker
        count, chunking or executor gives the same mask; its augmented copies share it. It is
        fitted to the landmarks at whole pixels, as a protocol freezes them (``landmarks68``),
        so the frozen record and landmarks draw it again."""
        assert self.mix is not None
        rng = augment.make_rng(self.config.seed, f"{src_path}|{MIX_VARIANT}")
        frozen = np.rint(canon)
        masked, occ, record = apply_mask(rgb, frozen, self.mix, rng)
        kind = record["mask_type"]
        polygon = mask_polygon(frozen, kind) if record["style"] is None else None
        return _Mixed(masked, occ, record, polygon)

    def _render_variant(
        self,
        rgb: np.ndarray,
        polygon: np.ndarray,
        v: Variant,
        row: dict[str, Any],
        out_rel: str,
        mixed: _Mixed | None = None,
    ) -> None:
        c = self.config
        t = time.perf_counter()
        aug = None
        if v.aug_kind is not None:
            rng = augment.make_rng(c.seed, f"{row['src_path']}|{v.name}")
            aug = augment.sample_params(v.aug_kind, rng)
            row["augment"] = canonical_json({"kind": aug.kind, "params": aug.params})
        x1, y1, x2, y2 = (int(b) for b in row["roi_box"])
        box = (x1, y1, x2, y2)
        occ: np.ndarray | None = None
        if v.mix:
            assert mixed is not None
            img = render(mixed.rgb, box, self.out_wh, None, None, aug)
            occ = mixed.occlusion
            _record_mix(row, mixed.record)
            if mixed.polygon is not None:
                row["mask_polygon"] = mixed.polygon.ravel().tolist()
        else:
            img = render(rgb, box, self.out_wh, polygon if v.masked else None, v.rgb, aug)
            if v.masked:
                row["mask_polygon"] = polygon.ravel().tolist()
                if c.occlusion_masks:
                    occ = polygon_occlusion(rgb.shape, polygon)
        data = encode(img, c.image_format, c.jpeg_quality)
        t = self._timed("render", t)
        rel = f"images/{v.name}/{out_rel}"
        occ_rel = str(PurePosixPath(f"occlusion/{v.name}/{out_rel}").with_suffix(".png"))
        try:
            write_bytes_atomic(self.out / rel, data)
            if c.occlusion_masks and occ is not None:
                occ_out = crop_occlusion(occ, box, self.out_wh, aug)
                write_bytes_atomic(self.out / occ_rel, encode_occlusion(occ_out))
                row["occlusion_path"] = occ_rel
        except OSError as e:
            raise ImageError("write_error", f"cannot write {rel}: {e.strerror or e}") from e
        self._timed("write", t)
        row.update(
            out_path=rel,
            out_sha256=hashlib.sha256(data).hexdigest(),
            out_width=img.shape[1],
            out_height=img.shape[0],
        )


class _Mixed(NamedTuple):
    """A source image with its drawn mix mask: masked pixels, occlusion, record, polygon."""

    rgb: np.ndarray
    occlusion: np.ndarray
    record: MaskRecord
    polygon: np.ndarray | None


def _record_mix(row: dict[str, Any], record: MaskRecord) -> None:
    """A mix row's mask fields: kind, colour name and RGB, polygon (polygon kinds) or style."""
    color, rgb = record_color(record)
    row.update(
        mask_shape=record["mask_type"],
        color=color,
        color_rgb=rgb,
        mask_style=canonical_json(record),
    )


# ----------------------------------------------------------------------------- runner


@dataclass
class SynthResult:
    """What a run did: counts, where the manifest is, and where the time went."""

    manifest: Path
    sources: int
    rows: int
    resumed_sources: int
    status_counts: dict[str, int]
    detector_counts: dict[str, int]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0


@dataclass(frozen=True)
class _Chunk:
    index: int
    items: tuple[tuple[Record, str], ...]

    def digest(self) -> str:
        keys = "\n".join(f"{r.rel_path}\t{r.sha256}" for r, _ in self.items)
        return hashlib.sha256(keys.encode()).hexdigest()


_WORKER: SynthPipeline | None = None
_WORKER_ERROR: Exception | None = None


def uses_torch(config: SynthConfig) -> bool:
    """Whether a synth run needs torch: MTCNN in its cascade, or a GPU asked for."""
    return _has_mtcnn(config) or config.device != "cpu"


def _init_worker(config: SynthConfig, root: Path, out: Path) -> None:
    """Load the models once per worker. A failure is raised by the first chunk instead:
    an exception in a pool initializer would make the pool respawn workers forever."""
    global _WORKER, _WORKER_ERROR
    try:
        single_threaded(uses_torch(config))  # one thread per model: same numerics for any count
        _WORKER, _WORKER_ERROR = SynthPipeline(config, root, out), None
    except Exception as e:
        _WORKER, _WORKER_ERROR = None, e


def preflight(config: SynthConfig) -> None:
    """Find (or download, once, in this process) every model file before workers start."""
    if _has_mtcnn(config):
        from mfrbench.vision.mtcnn_weights import find_weights_dir

        find_weights_dir()
    if config.landmarks == "mediapipe":
        from mfrbench.vision.landmarks import resolve_mediapipe_model

        resolve_mediapipe_model(config.mediapipe_model)


def _run_chunk(chunk: _Chunk) -> tuple[int, list[dict[str, Any]], dict[str, float]]:
    if _WORKER is None:
        raise _WORKER_ERROR or RuntimeError("synth worker was not initialised")
    _WORKER.timings.clear()
    rows: list[dict[str, Any]] = []
    for image_rows in _WORKER.process_many(chunk.items):  # decode, batched detect, the rest
        rows.extend(image_rows)
    release_freed_memory()  # flat worker memory over any number of chunks
    return chunk.index, rows, dict(_WORKER.timings)


def _part_path(out: Path, index: int) -> Path:
    return out / ".parts" / f"part-{index:06d}.parquet"


def _part_is_done(path: Path, chunk: _Chunk, params_digest: str) -> bool:
    if not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # a damaged part is simply redone
        return False
    return (
        meta.get(b"chunk_digest") == chunk.digest().encode()
        and meta.get(b"params_digest") == params_digest.encode()
    )


def _prepare_out(out: Path, config: SynthConfig, overwrite: bool) -> None:
    """Create OUT, or check that an existing OUT was made with the same parameters."""
    run_file = out / "run.json"
    if out.exists() and overwrite:
        for sub in ("images", ".parts"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for f in ("manifest.parquet", "run.json"):
            (out / f).unlink(missing_ok=True)
    if run_file.is_file():
        previous = json.loads(run_file.read_text())
        if previous.get("params_digest") != config.digest():
            changed = sorted(
                k for k, v in config.params().items() if previous.get("params", {}).get(k) != v
            )
            raise UserError(
                f"{out} holds a run with different parameters ({', '.join(changed)}); "
                "use a new --out or pass --overwrite"
            )
    elif out.exists() and any(out.iterdir()) and not (out / ".parts").is_dir():
        raise UserError(f"{out} exists and is not an mfrbench synth output; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    run = {
        "params": config.params(),
        "params_digest": config.digest(),
        "tool_version": __version__,
        # for people only: never compared, never in the manifest
        "root": str(Path(config.root).expanduser().resolve()) if config.root else None,
    }
    write_json_atomic(run_file, run)


def load_records(config: SynthConfig, *, download: bool = False) -> tuple[Path, list[Record]]:
    """Resolve the dataset (downloading it when asked and supported) and list its records."""
    kwargs = {"download": True} if download else {}
    dataset = get_dataset(config.dataset, root=config.root, **kwargs)
    records = list(dataset.records())
    if config.limit is not None:
        records = records[: config.limit]
    return Path(dataset.root), records


def run_synth(
    config: SynthConfig,
    out: str | Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    download: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    executor: Executor = LOCAL,
) -> SynthResult:
    """Run the synth stage; resumable, deterministic, streaming.

    ``on_start(total_sources, already_done)`` and ``on_progress(sources_done, sources_failed)``
    let a caller draw progress; neither affects the output. ``executor`` says where the chunks
    run (the local pool of ``workers``, or Ray actors writing images under ``out``, which every
    node must reach); the driver writes the parts and manifest either way, so the bytes are
    the same.
    """
    t_start = time.perf_counter()
    config.validate()
    config = resolve_defaults(config)
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    preflight(config)
    root, records = load_records(config, download=download)
    if not records:
        raise UserError(f"no images found under {root}")
    _prepare_out(out, config, overwrite)

    names = output_names(records, config.image_format)
    items = [(r, names[r.rel_path]) for r in records]
    chunks = [
        _Chunk(i // CHUNK_SIZE, tuple(items[i : i + CHUNK_SIZE]))
        for i in range(0, len(items), CHUNK_SIZE)
    ]
    digest = config.digest()
    todo = [c for c in chunks if not _part_is_done(_part_path(out, c.index), c, digest)]
    resumed = len(records) - sum(len(c.items) for c in todo)
    if on_start:
        on_start(len(records), resumed)

    meta = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "tool_version": __version__,
        "params": config.params(),
        "params_digest": digest,
    }
    columns = synth_schema(*config.optional_columns())
    schema = with_metadata(columns, meta)
    stage_seconds: Counter[str] = Counter()
    done, failed = resumed, 0
    by_index = {c.index: c for c in todo}
    for index, rows, timings in _execute(todo, config, root, out, workers, executor):
        table = rows_to_table(rows, columns).replace_schema_metadata(
            {b"chunk_digest": by_index[index].digest().encode(), b"params_digest": digest.encode()}
        )
        write_table_atomic(table, _part_path(out, index))
        stage_seconds.update(timings)
        done += len(by_index[index].items)
        failed += sum(1 for r in rows if r["variant"] == "unmasked" and r["status"] != STATUS_OK)
        if on_progress:
            on_progress(done, failed)

    manifest = out / "manifest.parquet"
    n_rows = concat_parquet_atomic((_part_path(out, c.index) for c in chunks), manifest, schema)
    _remove_stale_parts(out, {c.index for c in chunks})
    status_counts, detector_counts = summarize(manifest)
    return SynthResult(
        manifest=manifest,
        sources=len(records),
        rows=n_rows,
        resumed_sources=resumed,
        status_counts=status_counts,
        detector_counts=detector_counts,
        stage_seconds=dict(stage_seconds),
        elapsed=time.perf_counter() - t_start,
    )


def _execute(
    todo: list[_Chunk],
    config: SynthConfig,
    root: Path,
    out: Path,
    workers: int,
    executor: Executor = LOCAL,
) -> Iterator[tuple[int, list[dict[str, Any]], dict[str, float]]]:
    """Yield chunk results in chunk order: in-process, from a pool of worker processes, or
    from Ray actors (given absolute paths: their working folder is not the driver's)."""
    if not todo:
        return
    if executor.is_ray:
        model = config.mediapipe_model
        if model is not None:  # the file, not its name, is recorded: same params
            config = replace(config, mediapipe_model=str(Path(model).expanduser().resolve()))
        initargs = (config, root.resolve(), out.resolve())
        yield from executor.map(
            _run_chunk, todo, workers=workers, initializer=_init_worker, initargs=initargs
        )
        return
    if workers == 1 or len(todo) == 1:
        saved = single_threaded(uses_torch(config))
        _init_worker(config, root, out)
        try:
            yield from map(_run_chunk, todo)
        finally:
            global _WORKER
            _WORKER = None
            restore_threads(saved)
        return
    yield from spawn_map(_run_chunk, todo, workers, _init_worker, (config, root, out))


def _remove_stale_parts(out: Path, keep: set[int]) -> None:
    for part in (out / ".parts").glob("part-*.parquet"):
        try:
            index = int(part.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if index not in keep:
            part.unlink(missing_ok=True)


def summarize(manifest: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per status, and source images per detector (over the ``unmasked`` rows)."""
    statuses: Counter[str] = Counter()
    detectors: Counter[str] = Counter()
    pf = pq.ParquetFile(manifest)
    for batch in pf.iter_batches(columns=["variant", "status", "detector"]):
        d = batch.to_pydict()
        for variant, status, det in zip(d["variant"], d["status"], d["detector"], strict=True):
            statuses[status] += 1
            if variant == "unmasked" and status == STATUS_OK:
                detectors[det] += 1
    return dict(sorted(statuses.items())), dict(sorted(detectors.items()))
