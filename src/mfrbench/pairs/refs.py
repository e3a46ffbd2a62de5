"""Image references: made from dataset records or a synth manifest; colour choice; duplicates.

Everything works on :class:`~mfrbench.records.ImageRef` mappings and never decodes an image,
so listing 100,000 files takes seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mfrbench.datasets.base import Record
from mfrbench.errors import UserError
from mfrbench.faces import face_fields
from mfrbench.manifest import STATUS_OK, read_manifest
from mfrbench.protocol import IMAGE_KEYS, OPTIONAL_IMAGE_KEYS  # the schema owns the keys
from mfrbench.records import MIX_VARIANT, ImageRef

_MANIFEST_COLUMNS = (
    "identity",
    "src_path",
    "src_sha256",
    "real_mask",
    "variant",
    "masked",
    "color",
    "color_rgb",
    "augment",
    "status",
    "mask_polygon",
    "face_box",
    "roi_box",
    "out_width",
    "out_height",
    "detector",
    "landmarks_backend",
    "det_box",
    "det_score",
    "det_points5",
    "landmarks",
)


def _image_ref(**kw: Any) -> ImageRef:
    """An ImageRef with its keys in canonical order; fields not given are null, optional
    keys (``mask_style``) present only when given."""
    ref = {k: kw.get(k) for k in IMAGE_KEYS}
    ref.update({k: kw[k] for k in OPTIONAL_IMAGE_KEYS if k in kw})
    return cast(ImageRef, ref)


def images_from_records(records: Iterable[Record]) -> list[ImageRef]:
    """Image references (variant ``real``) for dataset records, sorted by id.

    ``masked`` is ``bool(record.real_mask)`` (an unknown mask flag counts as unmasked). Records of
    unreadable files (empty sha256) are kept; strategies leave them out with a warning. No face
    is attached (``face_status`` null): ``faces.detect_faces`` runs the detector cascade once and
    freezes each image's face, as the ``pairs`` commands do.
    """
    out: list[ImageRef] = [
        {
            "id": f"real:{r.rel_path}",
            "identity": r.identity,
            "src_path": r.rel_path,
            "src_sha256": r.sha256,
            "variant": "real",
            "masked": bool(r.real_mask),
            "synthetic": False,
            "color": None,
            "color_rgb": None,
            "mask_polygon": None,
            "face_box": None,
            "roi_box": None,
            "out_wh": None,
            "detector": None,
            "landmarks": None,
            "face_status": None,
            "det_box": None,
            "det_score": None,
            "points5": None,
            "points5_source": None,
            "landmarks68": None,
            "mask_type": r.mask_type,
        }
        for r in records
    ]
    out.sort(key=lambda im: im["id"])
    return out


def images_from_manifest(
    path_or_table: str | Path | pa.Table, *, colors: Sequence[str] | None = None
) -> list[ImageRef]:
    """Image references for the usable rows of a synth manifest, sorted by id.

    Kept: rows with status ``ok`` and no augmentation (an augmented image cannot be frozen as
    geometry alone). With ``colors``, masked rows of other colours are dropped; a colour the
    manifest does not have raises :class:`UserError`. ``masked`` is true for a synthetic mask
    and also for a source photo showing a real mask (``real_mask``). The face found on the
    source photo before masking is frozen with it (:func:`face_fields`): box, detector box and
    score, five alignment points and the 68 anchors, with the detector and landmark backend.
    """
    if isinstance(path_or_table, pa.Table):
        table = path_or_table
    else:
        if not Path(path_or_table).is_file():
            raise UserError(f"manifest not found: {path_or_table}")
        has_style = "mask_style" in pq.read_schema(path_or_table).names
        cols = [*_MANIFEST_COLUMNS, *(["mask_style"] if has_style else [])]
        table = read_manifest(path_or_table, columns=cols)
    absent = [c for c in _MANIFEST_COLUMNS if c not in table.column_names]
    if absent:
        raise UserError(f"not a synth manifest: column(s) {', '.join(absent)} missing")
    styled = "mask_style" in table.column_names  # synth --masks: one drawn mask per image
    table = table.select([*_MANIFEST_COLUMNS, *(["mask_style"] if styled else [])])
    table = table.filter(
        pc.and_(pc.equal(table["status"], STATUS_OK), pc.is_null(table["augment"]))
    )
    if colors is not None:
        wanted = sorted(set(colors))
        masked_colors = pc.filter(table["color"], table["masked"]).unique().to_pylist()
        unknown = [c for c in wanted if c not in masked_colors]
        if unknown:
            have = ", ".join(sorted(c for c in masked_colors if c is not None)) or "none"
            raise UserError(
                f"colour(s) {', '.join(unknown)} not among the manifest's usable masked images "
                f"(it has: {have})"
            )
        keep = pc.or_(
            pc.invert(table["masked"]), pc.is_in(table["color"], value_set=pa.array(wanted))
        )
        table = table.filter(pc.fill_null(keep, False))
    out = []
    for row in table.to_pylist():
        poly = row["mask_polygon"]
        w, h = row["out_width"], row["out_height"]
        extra = {}
        if styled and row["variant"] == MIX_VARIANT:
            extra["mask_style"] = json.loads(row["mask_style"])
            extra["mask_type"] = extra["mask_style"]["mask_type"]  # eval breaks down by it
        out.append(
            _image_ref(
                **extra,
                id=f"{row['variant']}:{row['src_path']}",
                identity=row["identity"],
                src_path=row["src_path"],
                src_sha256=row["src_sha256"],
                variant=row["variant"],
                masked=bool(row["masked"]) or row["real_mask"] is True,
                synthetic=True,
                color=row["color"] if row["masked"] else None,
                color_rgb=list(row["color_rgb"]) if row["masked"] and row["color_rgb"] else None,
                mask_polygon=(
                    [[poly[i], poly[i + 1]] for i in range(0, len(poly) - 1, 2)]
                    if row["masked"] and poly
                    else None
                ),
                roi_box=list(row["roi_box"]) if row["roi_box"] is not None else None,
                out_wh=[w, h] if w is not None and h is not None else None,
                **face_fields(
                    face_box=row["face_box"],
                    det_box=row["det_box"],
                    det_score=row["det_score"],
                    detector=row["detector"],
                    landmarks_backend=row["landmarks_backend"],
                    landmarks68=row["landmarks"],
                    det_points5=row["det_points5"],
                ),
            )
        )
    out.sort(key=lambda im: im["id"])
    return out


def color_for(src_path: str, colors: Sequence[str], seed: int) -> str:
    """The mask colour of a source image: a seeded hash choice among ``colors``.

    Depends only on (seed, src_path, the set of colours) - not on list order, other images or
    which pair the image is in - so every colour gets about the same share of the images.
    """
    choices = sorted(set(colors))
    if not choices:
        raise UserError("no mask colours to choose from")
    digest = hashlib.sha256(f"{int(seed)}\x00color\x00{src_path}".encode()).digest()
    return choices[int.from_bytes(digest[:8], "little") % len(choices)]


def find_duplicates(images: Iterable[ImageRef]) -> list[str]:
    """Warnings for identical source content (same ``src_sha256``) under two or more identities."""
    images = list(images)
    first: dict[str, str] = {}
    dup: set[str] = set()
    for im in images:
        sha = im["src_sha256"]
        if sha and first.setdefault(sha, im["identity"]) != im["identity"]:
            dup.add(sha)
    if not dup:
        return []
    by_sha: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for im in images:
        if im["src_sha256"] in dup:
            by_sha[im["src_sha256"]].add((im["identity"], im["src_path"]))
    out = []
    for sha, members in sorted(by_sha.items()):
        n_ids = len({ident for ident, _ in members})
        paths = ", ".join(sorted(p for _, p in members))
        out.append(f"duplicate content under {n_ids} identities (sha256 {sha[:12]}): {paths}")
    return out
