"""Rendering a protocol's evaluation images from its frozen geometry.

:func:`render_image` rebuilds one image, byte-identical on any machine holding the same source
files; :func:`render_protocol` writes them all under one folder (names from
:func:`output_files`) with a Parquet index that is the authority on what is valid and lets an
interrupted run resume.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mfrbench.digest import protocol_bytes, sha256_bytes
from mfrbench.errors import ImageError, UserError
from mfrbench.executors import LOCAL, Executor
from mfrbench.manifest import write_bytes_atomic, write_table_atomic
from mfrbench.protocol.digests import protocol_id
from mfrbench.protocol.sources import check_root, check_workers, hash_or_none, load_source
from mfrbench.records import ImageRef, Protocol
from mfrbench.workers import thread_map

RENDER_FORMATS = ("png", "jpg")


def render_image(image: ImageRef, root: Path) -> np.ndarray:
    """The evaluation image of one ImageRef, as (H, W, 3) uint8 RGB.

    The source bytes are read and checked against ``src_sha256`` first (ImageError status
    ``missing`` or ``changed``), then decoded (``vision.decode``). A real image is returned as
    decoded; a synthetic one is rendered from its frozen geometry by ``vision.render.render``:
    mask fill, ROI crop with zero padding, INTER_AREA resize. A ``mask-mix`` image's mask is
    drawn again from its ``mask_style`` on the frozen ``landmarks68``
    (:func:`~mfrbench.vision.mask_mix.redraw_mask`), as synth --masks drew it.
    """
    from mfrbench.vision.render import render

    rgb = load_source(image, root)
    if not image["synthetic"]:
        return rgb
    roi, wh = image["roi_box"], image["out_wh"]
    if roi is None or wh is None:  # validate() refuses this; a hand-made ImageRef may not
        raise ValueError(f"{image['id']}: a synthetic image needs roi_box and out_wh")
    polygon, color = image.get("mask_polygon"), image.get("color_rgb")
    if "mask_style" in image:  # synth --masks: redraw the recorded mask on the frozen face
        rgb = redraw_recorded(image, rgb)
        polygon = color = None
    return render(
        rgb,
        (roi[0], roi[1], roi[2], roi[3]),
        (wh[0], wh[1]),
        np.asarray(polygon, dtype=np.int32).reshape(-1, 2) if polygon is not None else None,
        (color[0], color[1], color[2]) if color is not None else None,
    )


def redraw_recorded(image: ImageRef | Mapping[str, Any], rgb: np.ndarray) -> np.ndarray:
    """The source photo with a ``mask-mix`` image's recorded mask (``mask_style``) drawn on its
    frozen ``landmarks68``, as synth --masks drew it."""
    from mfrbench.vision.mask_mix import redraw_mask

    canon = np.asarray(image["landmarks68"], dtype=np.float64)
    return redraw_mask(rgb, canon, image["mask_style"])[0]


def _stem_name(name: str) -> str:
    """A file name without its last extension (a leading or trailing dot is not an extension)."""
    i = name.rfind(".")
    return name[:i] if 0 < i < len(name) - 1 else name


def output_files(images: Iterable[ImageRef], fmt: str = "png") -> dict[str, str]:
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


def _image_sha(image: ImageRef) -> str:
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
    image: ImageRef,
    root: Path,
    out: Path,
    rel: str,
    fmt: str,
    previous: dict[str, Any] | None,
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
        and hash_or_none(dest) == previous.get("sha256")
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
    protocol: Protocol,
    root: Path,
    out: Path,
    *,
    fmt: str = "png",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor = LOCAL,
) -> RenderReport:
    """Render every image of ``protocol`` into ``out`` (see :func:`output_files` for names).

    Writes are atomic; ``out/index.parquet`` lists each image's id, file, sha256 of the written
    bytes, status and reason, and is the authority on what is valid. Failures (missing or
    changed source, undecodable file, write error) become rows, never abort. A re-run skips
    images whose file still has the sha256 its index row recorded for the same ImageRef; the
    index is checkpointed every 256 images, so an interrupted run resumes. ``progress(done,
    failed)`` is called after each image. Output bytes do not depend on ``workers`` or on
    ``executor`` (local: ``workers`` threads; ray: chunks of images on Ray actors, which read
    ``root`` and write ``out`` at the same absolute paths, so both must be on shared storage).
    """
    root = check_root(root)
    workers = check_workers(workers)
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
    written = skipped = failed = 0

    if executor.is_ray:
        root, out = root.resolve(), out.resolve()

    def job(img: ImageRef) -> tuple[dict[str, Any], bool]:
        return _render_one(img, root, out, files[img["id"]], fmt, previous.get(img["id"]))

    if executor.is_ray:
        rendered = _on_ray(job, images, executor, workers)
    else:
        rendered = thread_map(job, images, workers)
    results = zip(images, rendered, strict=True)
    for done, (img, (row, wrote)) in enumerate(results, start=1):
        rows[img["id"]] = row
        if row["status"] != "ok":
            failed += 1
        elif wrote:
            written += 1
        else:
            skipped += 1
        if progress:
            progress(done, failed)
        if done % _CHECKPOINT == 0 or done == len(images):
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


#: Images per Ray task (one task per image would spend more on scheduling than on rendering).
RAY_CHUNK = 16


def _on_ray(
    job: Callable[[ImageRef], tuple[dict[str, Any], bool]],
    images: Sequence[ImageRef],
    executor: Executor,
    workers: int,
) -> Iterator[tuple[dict[str, Any], bool]]:
    """``job`` over ``images`` on Ray actors, :data:`RAY_CHUNK` at a time, in input order."""
    chunks = [images[i : i + RAY_CHUNK] for i in range(0, len(images), RAY_CHUNK)]

    def run(chunk: Sequence[ImageRef]) -> list[tuple[dict[str, Any], bool]]:
        return [job(img) for img in chunk]

    for results in executor.map(run, chunks, workers=workers):
        yield from results
