"""Protocol files: the frozen, hashed contract between pair generation and the evaluator.

A protocol is one canonical JSON file (format reference: ``docs/protocols.md``) holding every
image a benchmark uses, with the source file's sha256 and, for synthetic images, the frozen
geometry (mask polygon, colour, ROI box, output size), plus every pair and how they were made.
Its ``digest`` (sha256 of the canonical JSON without the ``digest`` key) names it: the protocol
id ``name@<first 12 hex digits>`` is what reports cite.

- :func:`freeze` turns a pair set into a validated protocol dict; :func:`write_protocol` writes
  it; :func:`load_protocol` refuses anything edited, re-formatted or inconsistent.
- :func:`verify` checks a copy of the data against the recorded source hashes.
- :func:`render_image` / :func:`render_protocol` rebuild the evaluation images from the frozen
  geometry, byte-identical on any machine holding the same source files.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mfrbench import __version__
from mfrbench.digest import jsonable, protocol_bytes, sha256_bytes, sha256_file, sha256_text
from mfrbench.errors import ImageError, UserError
from mfrbench.manifest import write_bytes_atomic, write_table_atomic

SCHEMA = "mfrbench-protocol"
SCHEMA_VERSION = 2

TOP_KEYS = (
    "schema",
    "schema_version",
    "name",
    "version",
    "description",
    "citation",
    "mfrbench_version",
    "dataset",
    "generation",
    "summary",
    "images",
    "pairs",
    "digest",
)
DATASET_KEYS = ("name", "content_digest", "n_images")
GENERATION_KEYS = ("strategy", "params", "warnings")
IMAGE_KEYS = (
    "id",
    "identity",
    "src_path",
    "src_sha256",
    "variant",
    "masked",
    "synthetic",
    "color",
    "color_rgb",
    "mask_polygon",
    "face_box",
    "roi_box",
    "out_wh",
    "detector",
    "landmarks",
    "face_status",
    "det_box",
    "det_score",
    "points5",
    "points5_source",
    "landmarks68",
    "mask_type",
)
PAIR_KEYS = ("id", "a", "b", "label", "split", "fold", "pair_type")
#: Splits in pair order.
SPLITS = ("train", "val", "test")
PAIR_TYPES = ("masked-unmasked", "masked-masked", "unmasked-unmasked", "listed")
RENDER_FORMATS = ("png", "jpg")

_SPLIT_RANK = {s: i for i, s in enumerate(SPLITS)}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VARIANT = re.compile(r"real|unmasked|mask-[a-z0-9][a-z0-9_.-]*")
_BACKEND = re.compile(r"[a-z0-9][a-z0-9_.-]*")  # detector / landmark backend names (no "+")
#: ImageRef keys naming how an image's face was found (null where no face was found).
_PROVENANCE = ("detector", "landmarks")
#: The face found on the source photo (before any mask), frozen for alignment and ROIs.
FACE_KEYS = ("face_box", "det_box", "det_score", "points5", "points5_source", "landmarks68")
#: face_status values: a face was found ("ok") or the cascade found none ("no_face"); null on
#: a real image means it was never run (the protocol was built without detection).
FACE_STATUSES = ("ok", "no_face")
#: Where points5 come from: the detector's own five points, or derived from the 68 anchors.
POINTS5_SOURCES = ("mtcnn", "landmarks68")
_MASK_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_INT32 = 2**31


# ----------------------------------------------------------------------------- canonical JSON


#: The protocol variant of :mod:`mfrbench.digest` (sorted keys, no spaces, UTF-8 kept, NaN,
#: non-JSON types and non-string keys refused, one trailing newline): pinned by every digest.
canonical_bytes = protocol_bytes


def compute_digest(protocol: dict) -> str:
    """sha256 hex of the canonical bytes of ``protocol`` without its ``digest`` key."""
    body = {k: v for k, v in protocol.items() if k != "digest"}
    return sha256_bytes(protocol_bytes(body))


def content_digest(images: Iterable[Mapping[str, Any]]) -> str:
    """sha256 hex over ``"<src_path>:<src_sha256>\\n"`` of each distinct source, sorted by path.

    Independent of image order and of how many variants share one source. A source path seen
    with two different hashes raises ValueError.
    """
    sources: dict[str, str] = {}
    for image in images:
        path, sha = image["src_path"], image["src_sha256"]
        if sources.setdefault(path, sha) != sha:
            raise ValueError(f"source {path!r} has two sha256 values: {sources[path]} and {sha}")
    return sha256_text("".join(f"{p}:{sources[p]}\n" for p in sorted(sources)))


def protocol_id(protocol: dict) -> str:
    """``name@`` plus the first 12 hex digits of the digest: what every report cites."""
    return f"{protocol['name']}@{protocol['digest'][:12]}"


# ----------------------------------------------------------------------------- validation


def _fail(message: str) -> None:
    raise UserError(f"invalid protocol: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any, n: int | None, what: str) -> list[int]:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        _fail(f"{what} must be a list of {n if n is not None else ''} integers, got {value!r}")
    for v in value:
        if not _is_int(v) or not -_INT32 <= v < _INT32:
            _fail(f"{what} must hold 32-bit integers, got {v!r}")
    return value


def _check_keys(obj: Any, keys: Sequence[str], what: str) -> None:
    if not isinstance(obj, dict):
        _fail(f"{what} must be an object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    extra = sorted(str(k) for k in obj if k not in keys)
    if missing:
        _fail(f"{what} lacks key(s) {', '.join(missing)}")
    if extra:
        _fail(f"{what} has unknown key(s) {', '.join(extra)}")


def _check_src_path(path: Any, what: str) -> None:
    if not isinstance(path, str) or not path:
        _fail(f"{what}: src_path must be a non-empty string")
    parts = path.split("/")
    if "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
        _fail(f"{what}: src_path {path!r} is not a plain relative POSIX path")


def _float_list(value: Any, n: int, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        _fail(f"{what} must be a list of {n} numbers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            _fail(f"{what} must hold finite numbers, got {v!r}")
    return value


def _check_points(value: Any, n: int, what: str) -> None:
    if not isinstance(value, list) or len(value) != n:
        _fail(f"{what} must be a list of {n} [x, y] points")
    for point in value:
        _float_list(point, 2, f"{what} point")


def _check_face(img: dict, what: str) -> None:
    """The frozen face of an image whose face_status is "ok" (or all null when not)."""
    status = img["face_status"]
    if status not in (None, *FACE_STATUSES):
        _fail(f"{what}: face_status must be null, ok or no_face, got {status!r}")
    if status != "ok":
        if any(img[k] is not None for k in (*FACE_KEYS, *_PROVENANCE)):
            _fail(f"{what}: an image without a found face has no face geometry or detector")
        return
    for key in _PROVENANCE:
        if not isinstance(img[key], str) or not _BACKEND.fullmatch(img[key]):
            _fail(f"{what}: {key} must be a backend name matching {_BACKEND.pattern}")
    x1, y1, x2, y2 = _int_list(img["face_box"], 4, f"{what}: face_box")
    if x2 <= x1 or y2 <= y1:
        _fail(f"{what}: face_box {img['face_box']} is empty")
    d = _float_list(img["det_box"], 4, f"{what}: det_box")
    if d[2] <= d[0] or d[3] <= d[1]:
        _fail(f"{what}: det_box {d} is empty")
    _float_list([img["det_score"]], 1, f"{what}: det_score")
    _check_points(img["points5"], 5, f"{what}: points5")
    if img["points5_source"] not in POINTS5_SOURCES:
        _fail(f"{what}: points5_source must be one of {', '.join(POINTS5_SOURCES)}")
    marks = img["landmarks68"]
    if not isinstance(marks, list) or len(marks) != 68:
        _fail(f"{what}: landmarks68 must be a list of 68 [x, y] integer points")
    for point in marks:
        _int_list(point, 2, f"{what}: landmarks68 point")


def _check_image(img: Any, index: int) -> None:
    """One ImageRef: keys, types, id format and the geometry its variant needs."""
    what = f"image {index}"
    _check_keys(img, IMAGE_KEYS, what)
    what = f"image {img['id']!r}" if isinstance(img["id"], str) else what
    for key in ("id", "identity", "variant", "src_sha256"):
        if not isinstance(img[key], str) or not img[key]:
            _fail(f"{what}: {key} must be a non-empty string")
    _check_src_path(img["src_path"], what)
    variant = img["variant"]
    if not _VARIANT.fullmatch(variant):
        _fail(f"{what}: variant {variant!r} is not real, unmasked or mask-<colour>")
    if img["id"] != f"{variant}:{img['src_path']}":
        _fail(f"{what}: id must be '<variant>:<src_path>'")
    if not _HEX64.fullmatch(img["src_sha256"]):
        _fail(f"{what}: src_sha256 must be 64 lower-case hex digits")
    for key in ("masked", "synthetic"):
        if not isinstance(img[key], bool):
            _fail(f"{what}: {key} must be true or false")
    mask_type = img["mask_type"]
    if mask_type is not None and (
        not isinstance(mask_type, str) or not _MASK_TYPE.fullmatch(mask_type)
    ):
        _fail(f"{what}: mask_type must be null or a name matching {_MASK_TYPE.pattern}")
    _check_face(img, what)
    render = ("color", "color_rgb", "mask_polygon", "roi_box", "out_wh")
    if variant == "real":
        if img["synthetic"] or any(img[k] is not None for k in render):
            _fail(f"{what}: a real image is not synthetic and has no mask or ROI geometry")
        return
    masked = variant.startswith("mask-")
    if not img["synthetic"] or img["masked"] != masked:
        _fail(f"{what}: variant {variant} needs synthetic=true and masked={str(masked).lower()}")
    if img["face_status"] != "ok":
        _fail(f"{what}: a synthetic image needs its face (face_status ok)")
    x1, y1, x2, y2 = _int_list(img["roi_box"], 4, f"{what}: roi_box")
    if x2 <= x1 or y2 <= y1:
        _fail(f"{what}: roi_box {img['roi_box']} is empty")
    w, h = _int_list(img["out_wh"], 2, f"{what}: out_wh")
    if w < 1 or h < 1:
        _fail(f"{what}: out_wh {img['out_wh']} must be positive")
    if not masked:
        if any(img[k] is not None for k in ("color", "color_rgb", "mask_polygon")):
            _fail(f"{what}: an unmasked image has no colour or polygon")
        return
    if img["color"] != variant[len("mask-") :]:
        _fail(f"{what}: color must be {variant[len('mask-') :]!r} (from the variant)")
    rgb = _int_list(img["color_rgb"], 3, f"{what}: color_rgb")
    if not all(0 <= c <= 255 for c in rgb):
        _fail(f"{what}: color_rgb {rgb} must be three values 0..255")
    poly = img["mask_polygon"]
    if not isinstance(poly, list) or len(poly) < 3:
        _fail(f"{what}: mask_polygon must be a list of at least 3 [x, y] points")
    for point in poly:
        _int_list(point, 2, f"{what}: mask_polygon point")


def _pair_sort_key(pair: Mapping[str, Any]) -> tuple:
    fold = pair["fold"]
    return (
        _SPLIT_RANK[pair["split"]],
        -1 if fold is None else fold,
        pair["pair_type"],
        -pair["label"],
        pair["a"],
        pair["b"],
    )


def _check_pair(pair: Any, index: int, images: dict[str, dict]) -> None:
    """One pair: keys, id = index, known distinct images, label/identity and type/mask agree."""
    what = f"pair {index}"
    _check_keys(pair, PAIR_KEYS, what)
    if not _is_int(pair["id"]) or pair["id"] != index:
        _fail(f"{what}: id must equal its position ({index}), got {pair['id']!r}")
    if pair["label"] not in (0, 1) or not _is_int(pair["label"]):
        _fail(f"{what}: label must be 0 or 1, got {pair['label']!r}")
    if pair["split"] not in SPLITS:
        _fail(f"{what}: split {pair['split']!r} is not one of {', '.join(SPLITS)}")
    fold = pair["fold"]
    if fold is not None and (not _is_int(fold) or fold < 0):
        _fail(f"{what}: fold must be null or a non-negative integer, got {fold!r}")
    if pair["pair_type"] not in PAIR_TYPES:
        _fail(f"{what}: pair_type {pair['pair_type']!r} is not one of {', '.join(PAIR_TYPES)}")
    for side in ("a", "b"):
        if not isinstance(pair[side], str) or pair[side] not in images:
            _fail(f"{what} references unknown image {pair[side]!r}")
    a, b = images[pair["a"]], images[pair["b"]]
    if a["id"] == b["id"]:
        _fail(f"{what} pairs image {a['id']!r} with itself")
    if (a["identity"] == b["identity"]) != (pair["label"] == 1):
        kind = "genuine" if pair["label"] == 1 else "impostor"
        _fail(f"{what}: {kind} label but identities {a['identity']!r}, {b['identity']!r}")
    expected = {
        "masked-unmasked": (False, True),
        "masked-masked": (True, True),
        "unmasked-unmasked": (False, False),
    }.get(pair["pair_type"])
    if expected is not None and (a["masked"], b["masked"]) != expected:
        _fail(f"{what}: {pair['pair_type']} needs masked (a, b) = {expected}")


def validate(protocol: Any) -> None:
    """Check a protocol's structure and consistency (not its digest); UserError on the first fault.

    Images are unique and sorted by id, each used by a pair; pairs are in canonical order with
    ``id`` = position; every reference resolves; the dataset block matches the images.
    """
    _check_keys(protocol, TOP_KEYS, "top-level")
    if protocol["schema"] != SCHEMA or protocol["schema_version"] != SCHEMA_VERSION:
        _fail(f"schema must be {SCHEMA} version {SCHEMA_VERSION}")
    if not isinstance(protocol["name"], str) or not _NAME.fullmatch(protocol["name"]):
        _fail(f"name {protocol['name']!r} must match {_NAME.pattern}")
    for key in ("version", "mfrbench_version"):
        if not isinstance(protocol[key], str) or not protocol[key]:
            _fail(f"{key} must be a non-empty string")
    for key in ("description", "citation"):
        if not isinstance(protocol[key], str):
            _fail(f"{key} must be a string")
    if not isinstance(protocol["digest"], str) or not _HEX64.fullmatch(protocol["digest"]):
        _fail("digest must be 64 lower-case hex digits")
    gen = protocol["generation"]
    _check_keys(gen, GENERATION_KEYS, "generation")
    if not isinstance(gen["strategy"], str) or not gen["strategy"]:
        _fail("generation.strategy must be a non-empty string")
    if not isinstance(gen["params"], dict):
        _fail("generation.params must be an object")
    warnings = gen["warnings"]
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        _fail("generation.warnings must be a list of strings")
    if not isinstance(protocol["summary"], dict):
        _fail("summary must be an object")

    images_list = protocol["images"]
    if not isinstance(images_list, list) or not images_list:
        _fail("images must be a non-empty list")
    images: dict[str, dict] = {}
    sources: dict[str, tuple[str, str]] = {}
    previous = None
    for i, img in enumerate(images_list):
        _check_image(img, i)
        if img["id"] in images:
            _fail(f"duplicate image id {img['id']!r}")
        if previous is not None and img["id"] < previous:
            _fail(f"images must be sorted by id ({img['id']!r} after {previous!r})")
        previous = img["id"]
        images[img["id"]] = img
        src = (img["src_sha256"], img["identity"])
        if sources.setdefault(img["src_path"], src) != src:
            _fail(f"source {img['src_path']!r} appears with two sha256 values or identities")

    pairs = protocol["pairs"]
    if not isinstance(pairs, list) or not pairs:
        _fail("pairs must be a non-empty list")
    used: set[str] = set()
    prev_key = None
    for i, pair in enumerate(pairs):
        _check_pair(pair, i, images)
        pair_key = _pair_sort_key(pair)
        if prev_key is not None and pair_key < prev_key:
            _fail(f"pair {i} is out of order (see docs/protocols.md, pair ordering)")
        prev_key = pair_key
        used.update((pair["a"], pair["b"]))
    unused = [i for i in images if i not in used]
    if unused:
        _fail(f"{len(unused)} image(s) not used by any pair, e.g. {unused[0]!r}")

    ds = protocol["dataset"]
    _check_keys(ds, DATASET_KEYS, "dataset")
    if not isinstance(ds["name"], str) or not ds["name"]:
        _fail("dataset.name must be a non-empty string")
    if ds["content_digest"] != content_digest(images_list):
        _fail("dataset.content_digest does not match the images")
    if ds["n_images"] != len(sources) or not _is_int(ds["n_images"]):
        _fail(f"dataset.n_images must be {len(sources)} (distinct source files)")


# ----------------------------------------------------------------------------- freeze, write, load


def _plain(value: Any) -> Any:
    """Tuples, numpy arrays and numpy scalars as plain lists and Python numbers (for freeze).

    Keys are kept as they are, so validation refuses a non-string key instead of renaming it.
    """
    return jsonable(value, str_keys=False)


def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _normalise(item: Mapping[str, Any], keys: Sequence[str], what: str) -> dict[str, Any]:
    """Exactly ``keys`` (absent ones as None); an unknown key is an error, never dropped."""
    if not isinstance(item, Mapping):
        _fail(f"{what} must be a mapping, got {type(item).__name__}")
    extra = sorted(str(k) for k in item if k not in keys)
    if extra:
        _fail(f"{what} has unknown key(s) {', '.join(extra)}")
    return {k: _plain(item.get(k)) for k in keys}


def freeze(
    pairset: Any,
    *,
    name: str,
    version: str = "1",
    description: str = "",
    citation: str = "",
    dataset: str,
    mfrbench_version: str | None = None,
) -> dict:
    """Build a complete, validated protocol dict (digest included) from a pair set.

    ``pairset`` is anything with ``strategy``, ``params``, ``images``, ``pairs``, ``summary``
    (and optionally ``warnings``), as attributes or mapping keys. Images are sorted by id and
    pairs by the canonical pair order, then numbered; the input is not modified.
    ``mfrbench_version`` defaults to the running version (it is part of the digest).
    """
    images = sorted(
        (_normalise(img, IMAGE_KEYS, "image") for img in _field(pairset, "images")),
        key=lambda img: str(img["id"]),
    )
    pairs = [_normalise(p, PAIR_KEYS, "pair") for p in _field(pairset, "pairs")]
    for p in pairs:
        if p["split"] not in SPLITS or not isinstance(p["pair_type"], str):
            _fail(f"pair {p['a']!r}/{p['b']!r}: bad split {p['split']!r} or pair_type")
        if not _is_int(p["label"]) or not (p["fold"] is None or _is_int(p["fold"])):
            _fail(f"pair {p['a']!r}/{p['b']!r}: label and fold must be integers")
        if not isinstance(p["a"], str) or not isinstance(p["b"], str):
            _fail(f"pair ids must be strings, got {p['a']!r}, {p['b']!r}")
    pairs.sort(key=_pair_sort_key)
    for i, p in enumerate(pairs):
        p["id"] = i
    warnings = _field(pairset, "warnings") if _has(pairset, "warnings") else []
    sources = {img["src_path"] for img in images}
    try:
        cdigest = content_digest(images)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"invalid protocol: {exc}") from None
    protocol: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "description": description,
        "citation": citation,
        "mfrbench_version": mfrbench_version or __version__,
        "dataset": {"name": dataset, "content_digest": cdigest, "n_images": len(sources)},
        "generation": {
            "strategy": _field(pairset, "strategy"),
            "params": _plain(dict(_field(pairset, "params"))),
            "warnings": [str(w) for w in warnings],
        },
        "summary": _plain(dict(_field(pairset, "summary"))),
        "images": images,
        "pairs": pairs,
    }
    protocol["digest"] = compute_digest(protocol)
    validate(protocol)
    return protocol


def _has(obj: Any, name: str) -> bool:
    return name in obj if isinstance(obj, Mapping) else hasattr(obj, name)


def write_protocol(protocol: dict, path: Path) -> None:
    """Write the canonical bytes atomically; refuses a protocol whose digest is stale."""
    if protocol.get("digest") != compute_digest(protocol):
        raise ValueError("protocol digest does not match its content; build it with freeze()")
    write_bytes_atomic(Path(path), protocol_bytes(protocol))


def load_protocol(path: Path) -> dict:
    """Read and check a protocol file; every problem is a one-line UserError naming the file.

    Refused: a missing file, non-JSON, another schema or schema version, a digest that does not
    match the content (edited), bytes that are not the canonical form (re-formatted), and any
    structural fault (unknown or duplicate image ids, bad labels, missing geometry...).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"protocol file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read protocol file {path}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise UserError(f"{path}: not an mfrbench protocol (schema must be {SCHEMA!r})")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{path}: unsupported protocol schema_version {obj.get('schema_version')!r} "
            f"(this mfrbench {__version__} reads version {SCHEMA_VERSION})"
        )
    recorded = obj.get("digest")
    if not isinstance(recorded, str):
        raise UserError(f"{path}: protocol has no digest")
    try:
        actual = compute_digest(obj)
        canonical = protocol_bytes(obj)
    except ValueError as exc:
        raise UserError(f"{path}: not a canonical protocol: {exc}") from None
    if actual != recorded:
        raise UserError(f"{path}: protocol file was edited: digest {actual} != recorded {recorded}")
    if canonical != data:
        raise UserError(
            f"{path}: protocol file is not in canonical form (re-formatted or re-encoded); "
            "its digest only holds for the canonical bytes"
        )
    try:
        validate(obj)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a protocol")


# ----------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """Result of checking a data root against a protocol's source hashes.

    ``missing``: source paths that are absent or unreadable; ``changed``: (path, expected
    sha256, actual sha256) for files whose bytes differ. Both sorted by path.
    """

    protocol_id: str
    checked: int
    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    #: what the mismatch looks like and what to do (e.g. another LFW variant), or ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def message(self, limit: int = 3) -> str:
        """One line: all good, or how many files are missing/changed with the first few named."""
        if self.ok:
            return f"{self.protocol_id}: all {self.checked} source images match"
        parts = []
        for label, paths in (
            ("missing", self.missing),
            ("changed", [c[0] for c in self.changed]),
        ):
            if paths:
                more = f", +{len(paths) - limit} more" if len(paths) > limit else ""
                parts.append(f"{len(paths)} {label} ({', '.join(paths[:limit])}{more})")
        text = (
            f"{self.protocol_id}: {'; '.join(parts)} of {self.checked} source images "
            "do not match the protocol"
        )
        return f"{text}; {self.hint}" if self.hint else text

    def raise_for_mismatch(self) -> None:
        """UserError with :meth:`message` when anything is missing or changed (for evaluators)."""
        if not self.ok:
            raise UserError(self.message())


def _sources(protocol: dict) -> list[tuple[str, str]]:
    """Distinct (src_path, src_sha256), sorted by path."""
    return sorted({(img["src_path"], img["src_sha256"]) for img in protocol["images"]})


def _source_file(root: Path, src_path: str) -> Path:
    return root.joinpath(*src_path.split("/"))


def _hash_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _check_root(root: Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data root is not a directory: {root}")
    return root


def _check_workers(workers: int) -> int:
    if not _is_int(workers) or workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    return workers


def verify(protocol: dict, root: Path, *, workers: int = 1) -> VerifyReport:
    """Hash every distinct source file under ``root`` and compare with the protocol.

    A file that does not exist or cannot be read is missing; one whose sha256 differs is
    changed. Extra files under ``root`` are ignored. Threads hash in parallel (hashlib releases
    the GIL); the report does not depend on ``workers``.
    """
    root = _check_root(root)
    sources = _sources(protocol)
    paths = [_source_file(root, p) for p, _ in sources]
    with ThreadPoolExecutor(max_workers=_check_workers(workers)) as pool:
        actual = list(pool.map(_hash_or_none, paths))
    report = VerifyReport(protocol_id(protocol), len(sources))
    for (path, expected), sha in zip(sources, actual, strict=True):
        if sha is None:
            report.missing.append(path)
        elif sha != expected:
            report.changed.append((path, expected, sha))
    report.hint = _variant_hint(protocol, report)
    return report


@dataclass(frozen=True)
class OpenedProtocol:
    """A protocol file loaded (digest checked) and its sources verified under ``root``: what
    evaluation and training both start from, with the image index built once."""

    path: Path
    protocol: dict
    id: str
    root: Path
    images: Mapping[str, dict]

    @property
    def pairs(self) -> list[dict]:
        return self.protocol["pairs"]


def open_protocol(path: str | Path, root: str | Path, *, workers: int = 2) -> OpenedProtocol:
    """Load ``path`` and verify every source image under ``root``; one-line UserError when a
    file is missing or changed, naming the command that lists them all."""
    path, root = Path(path), Path(root).expanduser()
    protocol = load_protocol(path)
    rep = verify(protocol, root, workers=max(2, workers))
    if not rep.ok:
        n = len(rep.missing) + len(rep.changed)
        first = (rep.missing + [c[0] for c in rep.changed])[0]
        raise UserError(
            f"{n} files changed/missing under {root} (e.g. {first}); "
            f"run mfrbench protocol verify {path} --root {root}"
        )
    images = {img["id"]: img for img in protocol["images"]}
    return OpenedProtocol(path, protocol, protocol_id(protocol), root, images)


def _variant_hint(protocol: dict, report: VerifyReport) -> str:
    """For LFW: nearly every file present under its name but with other bytes means another
    LFW variant (original, funneled, deep-funneled) than the protocol's; say how to rebuild."""
    if protocol["dataset"]["name"] != "lfw" or not report.checked:
        return ""
    present = report.checked - len(report.missing)
    if present < 0.9 * report.checked or len(report.changed) < 0.9 * present:
        return ""
    return (
        "the files are there under LFW's names but with other bytes: this looks like another "
        "LFW variant (original, funneled, deep-funneled) than the protocol's; rebuild the "
        "protocols over your copy with `bash protocols/rebuild.sh ROOT`"
    )


# ----------------------------------------------------------------------------- render


def load_source(image: Mapping[str, Any], root: Path) -> np.ndarray:
    """Read, hash-check and decode an ImageRef's source file as (H, W, 3) uint8 RGB.

    The one reader behind :func:`render_image` and ``evaluate.prepare``: ImageError
    ``missing`` (unreadable), ``changed`` (sha256 differs from ``src_sha256``) or a decode
    status from ``vision.decode.decode_image``.
    """
    from mfrbench.vision.decode import decode_image

    rel = image["src_path"]
    try:
        data = _source_file(Path(root), rel).read_bytes()
    except OSError as exc:
        raise ImageError("missing", f"cannot read {rel}: {exc.strerror or exc}") from None
    sha = sha256_bytes(data)
    if sha != image["src_sha256"]:
        raise ImageError("changed", f"{rel}: sha256 {sha} != recorded {image['src_sha256']}")
    return decode_image(data, min_side=1).rgb


def render_image(image: Mapping[str, Any], root: Path) -> np.ndarray:
    """The evaluation image of one ImageRef, as (H, W, 3) uint8 RGB.

    The source bytes are read and checked against ``src_sha256`` first (ImageError status
    ``missing`` or ``changed``), then decoded (``vision.decode``). A real image is returned as
    decoded; a synthetic one is rendered from its frozen geometry by ``vision.render.render``:
    mask fill, ROI crop with zero padding, INTER_AREA resize.
    """
    from mfrbench.vision.render import render

    rgb = load_source(image, root)
    if not image["synthetic"]:
        return rgb
    polygon, color = image.get("mask_polygon"), image.get("color_rgb")
    return render(
        rgb,
        tuple(image["roi_box"]),
        tuple(image["out_wh"]),
        np.asarray(polygon, dtype=np.int32).reshape(-1, 2) if polygon is not None else None,
        tuple(color) if color is not None else None,
    )


def _stem_name(name: str) -> str:
    """A file name without its last extension (a leading or trailing dot is not an extension)."""
    i = name.rfind(".")
    return name[:i] if 0 < i < len(name) - 1 else name


def output_files(images: Iterable[Mapping[str, Any]], fmt: str = "png") -> dict[str, str]:
    """Map image id -> rendered file path relative to the output folder.

    ``<variant>/<src_path with its extension replaced by .fmt>``; when two images of one
    variant would share a name (``a.jpg`` and ``a.png``), both keep their extension:
    ``<variant>/<src_path>.fmt``.
    """
    if fmt not in RENDER_FORMATS:
        raise UserError(f"unknown image format {fmt!r}; choose one of: {', '.join(RENDER_FORMATS)}")
    plain: dict[str, str] = {}
    for img in images:
        folder, _, name = img["src_path"].rpartition("/")
        stem = f"{folder}/{_stem_name(name)}" if folder else _stem_name(name)
        plain[img["id"]] = f"{img['variant']}/{stem}.{fmt}"
    counts = Counter(plain.values())
    return {
        i: f"{i.split(':', 1)[0]}/{i.split(':', 1)[1]}.{fmt}" if counts[rel] > 1 else rel
        for i, rel in plain.items()
    }


INDEX_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("file", pa.string()),  # relative to the output folder; null when failed
        pa.field("sha256", pa.string()),  # of the written bytes; null when failed
        pa.field("status", pa.string(), nullable=False),  # "ok" or an ImageError status
        pa.field("reason", pa.string(), nullable=False),
        pa.field("image_sha256", pa.string(), nullable=False),  # sha256 of the ImageRef's JSON
    ]
)
INDEX_NAME = "index.parquet"
_CHECKPOINT = 256


@dataclass
class RenderReport:
    """What :func:`render_protocol` did. ``status_counts`` counts every image's final status."""

    protocol_id: str
    out: Path
    index: Path
    total: int
    written: int
    skipped: int
    failed: int
    status_counts: dict[str, int]
    elapsed: float


def _image_sha(image: Mapping[str, Any]) -> str:
    return sha256_bytes(protocol_bytes(dict(image)))


def _read_index(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of a previous index by image id (empty when absent or unreadable)."""
    if not path.is_file():
        return {}
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception:  # a damaged index only costs a re-render
        return {}
    return {r["id"]: r for r in rows if isinstance(r.get("id"), str)}


def _write_index(rows: list[dict[str, Any]], path: Path, pid: str, fmt: str) -> None:
    meta = {b"mfrbench": protocol_bytes({"protocol_id": pid, "format": fmt}).strip()}
    table = pa.Table.from_pylist(rows, schema=INDEX_SCHEMA).replace_schema_metadata(meta)
    write_table_atomic(table, path)


def _render_one(
    image: Mapping[str, Any], root: Path, out: Path, rel: str, fmt: str, previous: dict | None
) -> tuple[dict[str, Any], bool]:
    """Render and write one image unless ``previous`` already vouches for its file.

    Returns (index row, whether the file was written).
    """
    from mfrbench.vision.render import encode

    spec = _image_sha(image)
    dest = out / rel
    if (
        previous is not None
        and previous.get("status") == "ok"
        and previous.get("file") == rel
        and previous.get("image_sha256") == spec
        and _hash_or_none(dest) == previous.get("sha256")
    ):
        return previous, False
    row: dict[str, Any] = {"id": image["id"], "file": None, "sha256": None, "image_sha256": spec}
    try:
        data = encode(render_image(image, root), fmt)
        try:
            write_bytes_atomic(dest, data)
        except OSError as exc:
            raise ImageError("write_error", f"cannot write {rel}: {exc.strerror or exc}") from None
    except ImageError as err:
        row.update(status=err.status, reason=err.reason)
        return row, False
    row.update(file=rel, sha256=sha256_bytes(data), status="ok", reason="")
    return row, True


def render_protocol(
    protocol: dict,
    root: Path,
    out: Path,
    *,
    fmt: str = "png",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> RenderReport:
    """Render every image of ``protocol`` into ``out`` (see :func:`output_files` for names).

    Writes are atomic; ``out/index.parquet`` lists each image's id, file, sha256 of the written
    bytes, status and reason, and is the authority on what is valid. Failures (missing or
    changed source, undecodable file, write error) become rows, never abort. A re-run skips
    images whose file still has the sha256 its index row recorded for the same ImageRef; the
    index is checkpointed every 256 images, so an interrupted run resumes. ``progress(done,
    failed)`` is called after each image. Output bytes do not depend on ``workers``.
    """
    root = _check_root(root)
    workers = _check_workers(workers)
    t0 = time.perf_counter()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    index_path = out / INDEX_NAME
    images = protocol["images"]
    files = output_files(images, fmt)
    pid = protocol_id(protocol)
    previous = _read_index(index_path)
    rows: dict[str, dict[str, Any]] = {i: r for i, r in previous.items() if i in files}
    order = [img["id"] for img in images]
    written = skipped = failed = done = 0

    def job(img: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        return _render_one(img, root, out, files[img["id"]], fmt, previous.get(img["id"]))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(images), _CHECKPOINT):
            chunk = images[start : start + _CHECKPOINT]
            for img, (row, wrote) in zip(chunk, pool.map(job, chunk), strict=True):
                rows[img["id"]] = row
                done += 1
                if row["status"] != "ok":
                    failed += 1
                elif wrote:
                    written += 1
                else:
                    skipped += 1
                if progress:
                    progress(done, failed)
            _write_index([rows[i] for i in order if i in rows], index_path, pid, fmt)
    final = [rows[i] for i in order]
    return RenderReport(
        protocol_id=pid,
        out=out,
        index=index_path,
        total=len(images),
        written=written,
        skipped=skipped,
        failed=failed,
        status_counts=dict(sorted(Counter(r["status"] for r in final).items())),
        elapsed=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------- show


def _tally(pairs: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]) -> dict:
    out: dict[Any, dict[str, int]] = {}
    for p in pairs:
        row = out.setdefault(key(p), {"pairs": 0, "genuine": 0, "impostor": 0})
        row["pairs"] += 1
        row["genuine" if p["label"] == 1 else "impostor"] += 1
    return out


def _count(images: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    return dict(sorted(Counter(im[key] for im in images if im.get(key)).items()))


def show(protocol: dict) -> dict:
    """A printable summary: identity, dataset, and pair counts by split, fold, type and label.

    ``colors`` counts masked synthetic images per colour; ``detectors`` and ``landmarks`` count
    images per face detector and landmark backend; ``face_status`` counts images with a frozen
    face (``ok``), none found (``no_face``) or never detected (``None``); ``points5_source``
    where their five points come from; ``mask_types`` counts images per dataset mask label;
    ``identities`` counts distinct identities overall and per split.
    """
    pairs = protocol["pairs"]
    images = {img["id"]: img for img in protocol["images"]}
    by_split = _tally(pairs, lambda p: p["split"])
    ids_per_split: dict[str, set[str]] = {}
    for p in pairs:
        ids = ids_per_split.setdefault(p["split"], set())
        ids.update((images[p["a"]]["identity"], images[p["b"]]["identity"]))
    for split, ids in ids_per_split.items():
        by_split[split]["identities"] = len(ids)
    by_fold = _tally((p for p in pairs if p["fold"] is not None), lambda p: p["fold"])
    labels = Counter("genuine" if p["label"] == 1 else "impostor" for p in pairs)
    colors = Counter(img["color"] for img in images.values() if img["color"] is not None)
    backends = {
        key: Counter(img[key] for img in images.values() if img.get(key) is not None)
        for key in _PROVENANCE
    }
    return {
        "id": protocol_id(protocol),
        "name": protocol["name"],
        "version": protocol["version"],
        "description": protocol["description"],
        "mfrbench_version": protocol["mfrbench_version"],
        "dataset": protocol["dataset"]["name"],
        "content_digest": protocol["dataset"]["content_digest"],
        "source_images": protocol["dataset"]["n_images"],
        "images": len(images),
        "identities": len({img["identity"] for img in images.values()}),
        "pairs": len(pairs),
        "strategy": protocol["generation"]["strategy"],
        "by_split": dict(sorted(by_split.items(), key=lambda kv: _SPLIT_RANK[kv[0]])),
        "by_fold": dict(sorted(by_fold.items())),
        "by_pair_type": dict(sorted(_tally(pairs, lambda p: p["pair_type"]).items())),
        "by_label": {"genuine": labels["genuine"], "impostor": labels["impostor"]},
        "variants": dict(sorted(Counter(img["variant"] for img in images.values()).items())),
        "colors": dict(sorted(colors.items())),
        "detectors": dict(sorted(backends["detector"].items())),
        "landmarks": dict(sorted(backends["landmarks"].items())),
        "face_status": dict(
            sorted(Counter(str(img["face_status"]) for img in images.values()).items())
        ),
        "points5_source": dict(
            sorted(
                Counter(
                    img["points5_source"] for img in images.values() if img["points5_source"]
                ).items()
            )
        ),
        "mask_types": dict(
            sorted(Counter(img["mask_type"] for img in images.values() if img["mask_type"]).items())
        ),
        "warnings": list(protocol["generation"]["warnings"]),
    }
