"""The protocol schema: the key lists, splits and pair types, and :func:`validate`.

Everything a protocol must satisfy besides its digest (format reference: ``docs/protocols.md``):
keys in canonical order, ImageRef fields and the geometry each variant needs, pairs in canonical
order with resolvable references, and a dataset block that matches the images. Validators take
untrusted JSON (``Any``) and end with a one-line UserError on the first fault.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from mfrbench.errors import UserError
from mfrbench.protocol.digests import content_digest
from mfrbench.records import MIX_VARIANT

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
#: Top-level keys present only where they apply: ``supersedes`` on a re-frozen protocol.
OPTIONAL_TOP_KEYS = ("supersedes",)
#: One entry of ``supersedes``: a protocol this one replaces (same images and pairs).
SUPERSEDED_KEYS = ("name", "version", "digest")
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
#: ImageRef keys present only where they apply: ``mask_style`` on ``mask-mix`` images.
OPTIONAL_IMAGE_KEYS = ("mask_style",)
MASK_RECORD_KEYS = ("color", "color_rgb", "mask_type", "style")
PAIR_KEYS = ("id", "a", "b", "label", "split", "fold", "pair_type")
#: Splits in pair order.
SPLITS = ("train", "val", "test")
PAIR_TYPES = ("masked-unmasked", "masked-masked", "unmasked-unmasked", "listed")

#: Position of each split in pair order.
SPLIT_RANK = {s: i for i, s in enumerate(SPLITS)}
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


def fail(message: str) -> NoReturn:
    """Raise the one-line UserError every schema fault ends with."""
    raise UserError(f"invalid protocol: {message}")


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON true is not 1 in a protocol)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any, n: int | None, what: str) -> list[int]:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        fail(f"{what} must be a list of {n if n is not None else ''} integers, got {value!r}")
    for v in value:
        if not is_int(v) or not -_INT32 <= v < _INT32:
            fail(f"{what} must hold 32-bit integers, got {v!r}")
    return value


def _check_keys(obj: Any, keys: Sequence[str], what: str, optional: Sequence[str] = ()) -> None:
    if not isinstance(obj, dict):
        fail(f"{what} must be an object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    extra = sorted(str(k) for k in obj if k not in keys and k not in optional)
    if missing:
        fail(f"{what} lacks key(s) {', '.join(missing)}")
    if extra:
        fail(f"{what} has unknown key(s) {', '.join(extra)}")


def _check_src_path(path: Any, what: str) -> None:
    if not isinstance(path, str) or not path:
        fail(f"{what}: src_path must be a non-empty string")
    parts = path.split("/")
    if "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
        fail(f"{what}: src_path {path!r} is not a plain relative POSIX path")


def _float_list(value: Any, n: int, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        fail(f"{what} must be a list of {n} numbers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            fail(f"{what} must hold finite numbers, got {v!r}")
    return value


def _check_points(value: Any, n: int, what: str) -> None:
    if not isinstance(value, list) or len(value) != n:
        fail(f"{what} must be a list of {n} [x, y] points")
    for point in value:
        _float_list(point, 2, f"{what} point")


def _check_face(img: Mapping[str, Any], what: str) -> None:
    """The frozen face of an image whose face_status is "ok" (or all null when not)."""
    status = img["face_status"]
    if status not in (None, *FACE_STATUSES):
        fail(f"{what}: face_status must be null, ok or no_face, got {status!r}")
    if status != "ok":
        if any(img[k] is not None for k in (*FACE_KEYS, *_PROVENANCE)):
            fail(f"{what}: an image without a found face has no face geometry or detector")
        return
    for key in _PROVENANCE:
        if not isinstance(img[key], str) or not _BACKEND.fullmatch(img[key]):
            fail(f"{what}: {key} must be a backend name matching {_BACKEND.pattern}")
    x1, y1, x2, y2 = _int_list(img["face_box"], 4, f"{what}: face_box")
    if x2 <= x1 or y2 <= y1:
        fail(f"{what}: face_box {img['face_box']} is empty")
    d = _float_list(img["det_box"], 4, f"{what}: det_box")
    if d[2] <= d[0] or d[3] <= d[1]:
        fail(f"{what}: det_box {d} is empty")
    _float_list([img["det_score"]], 1, f"{what}: det_score")
    _check_points(img["points5"], 5, f"{what}: points5")
    if img["points5_source"] not in POINTS5_SOURCES:
        fail(f"{what}: points5_source must be one of {', '.join(POINTS5_SOURCES)}")
    marks = img["landmarks68"]
    if not isinstance(marks, list) or len(marks) != 68:
        fail(f"{what}: landmarks68 must be a list of 68 [x, y] integer points")
    for point in marks:
        _int_list(point, 2, f"{what}: landmarks68 point")


def _check_image(img: Any, index: int) -> None:
    """One ImageRef: keys, types, id format and the geometry its variant needs."""
    what = f"image {index}"
    _check_keys(img, IMAGE_KEYS, what, OPTIONAL_IMAGE_KEYS)
    what = f"image {img['id']!r}" if isinstance(img["id"], str) else what
    if ("mask_style" in img) != (img["variant"] == MIX_VARIANT):
        fail(f"{what}: mask_style is on {MIX_VARIANT} images, and only there")
    for key in ("id", "identity", "variant", "src_sha256"):
        if not isinstance(img[key], str) or not img[key]:
            fail(f"{what}: {key} must be a non-empty string")
    _check_src_path(img["src_path"], what)
    variant = img["variant"]
    if not _VARIANT.fullmatch(variant):
        fail(f"{what}: variant {variant!r} is not real, unmasked or mask-<colour>")
    if img["id"] != f"{variant}:{img['src_path']}":
        fail(f"{what}: id must be '<variant>:<src_path>'")
    if not _HEX64.fullmatch(img["src_sha256"]):
        fail(f"{what}: src_sha256 must be 64 lower-case hex digits")
    for key in ("masked", "synthetic"):
        if not isinstance(img[key], bool):
            fail(f"{what}: {key} must be true or false")
    mask_type = img["mask_type"]
    if mask_type is not None and (
        not isinstance(mask_type, str) or not _MASK_TYPE.fullmatch(mask_type)
    ):
        fail(f"{what}: mask_type must be null or a name matching {_MASK_TYPE.pattern}")
    _check_face(img, what)
    render = ("color", "color_rgb", "mask_polygon", "roi_box", "out_wh")
    if variant == "real":
        if img["synthetic"] or any(img[k] is not None for k in render):
            fail(f"{what}: a real image is not synthetic and has no mask or ROI geometry")
        return
    masked = variant.startswith("mask-")
    if not img["synthetic"] or img["masked"] != masked:
        fail(f"{what}: variant {variant} needs synthetic=true and masked={str(masked).lower()}")
    if img["face_status"] != "ok":
        fail(f"{what}: a synthetic image needs its face (face_status ok)")
    x1, y1, x2, y2 = _int_list(img["roi_box"], 4, f"{what}: roi_box")
    if x2 <= x1 or y2 <= y1:
        fail(f"{what}: roi_box {img['roi_box']} is empty")
    w, h = _int_list(img["out_wh"], 2, f"{what}: out_wh")
    if w < 1 or h < 1:
        fail(f"{what}: out_wh {img['out_wh']} must be positive")
    if not masked:
        if any(img[k] is not None for k in ("color", "color_rgb", "mask_polygon")):
            fail(f"{what}: an unmasked image has no colour or polygon")
        return
    if variant == MIX_VARIANT:
        if _check_mask_record(img["mask_style"], what):  # procedural: the style, no polygon
            if img["mask_polygon"] is not None:
                fail(f"{what}: a procedural mask has no mask_polygon")
            return
    elif img["color"] != variant[len("mask-") :]:
        fail(f"{what}: color must be {variant[len('mask-') :]!r} (from the variant)")
    rgb = _int_list(img["color_rgb"], 3, f"{what}: color_rgb")
    if not all(0 <= c <= 255 for c in rgb):
        fail(f"{what}: color_rgb {rgb} must be three values 0..255")
    poly = img["mask_polygon"]
    if not isinstance(poly, list) or len(poly) < 3:
        fail(f"{what}: mask_polygon must be a list of at least 3 [x, y] points")
    for point in poly:
        _int_list(point, 2, f"{what}: mask_polygon point")


def _check_mask_record(record: Any, what: str) -> bool:
    """A mask-mix image's mask_style; True for a procedural kind (its style is validated)."""
    from mfrbench.vision.mask_mix import MIX_KINDS
    from mfrbench.vision.mask_styles import MaskStyle

    _check_keys(record, MASK_RECORD_KEYS, f"{what}: mask_style")
    if record["mask_type"] not in MIX_KINDS:
        fail(f"{what}: mask_style.mask_type must be one of {', '.join(MIX_KINDS)}")
    if record["style"] is None:
        _int_list(record["color_rgb"], 3, f"{what}: mask_style.color_rgb")
        return False
    try:
        style = MaskStyle.from_json(record["style"])
    except UserError as err:
        fail(f"{what}: mask_style.style: {err}")
    if style.kind != record["mask_type"]:
        fail(f"{what}: mask_style.style is a {style.kind} mask, not {record['mask_type']}")
    return True


def _check_supersedes(protocol: Mapping[str, Any]) -> None:
    """``supersedes``: a non-empty list, oldest first, of the protocols this one was re-frozen
    from, each ``{name, version, digest}``; every (name, version) and digest named once, and
    none of them this protocol's own."""
    entries = protocol["supersedes"]
    if not isinstance(entries, list) or not entries:
        fail("supersedes must be a non-empty list (or absent)")
    seen_names = {(protocol["name"], protocol["version"])}
    seen_digests = {protocol["digest"]}
    for i, entry in enumerate(entries):
        what = f"supersedes[{i}]"
        _check_keys(entry, SUPERSEDED_KEYS, what)
        if not isinstance(entry["name"], str) or not _NAME.fullmatch(entry["name"]):
            fail(f"{what}: name {entry['name']!r} must match {_NAME.pattern}")
        if not isinstance(entry["version"], str) or not entry["version"]:
            fail(f"{what}: version must be a non-empty string")
        if not isinstance(entry["digest"], str) or not _HEX64.fullmatch(entry["digest"]):
            fail(f"{what}: digest must be 64 lower-case hex digits")
        key = (entry["name"], entry["version"])
        if key in seen_names or entry["digest"] in seen_digests:
            fail(
                f"{what}: version {entry['version']} of {entry['name']} (digest "
                f"{entry['digest'][:12]}) is named twice; each version names one digest"
            )
        seen_names.add(key)
        seen_digests.add(entry["digest"])


def pair_sort_key(pair: Mapping[str, Any]) -> tuple[Any, ...]:
    """The canonical pair order: split, fold, pair type, genuine first, then image ids."""
    fold = pair["fold"]
    return (
        SPLIT_RANK[pair["split"]],
        -1 if fold is None else fold,
        pair["pair_type"],
        -pair["label"],
        pair["a"],
        pair["b"],
    )


def _check_pair(pair: Any, index: int, images: Mapping[str, Mapping[str, Any]]) -> None:
    """One pair: keys, id = index, known distinct images, label/identity and type/mask agree."""
    what = f"pair {index}"
    _check_keys(pair, PAIR_KEYS, what)
    if not is_int(pair["id"]) or pair["id"] != index:
        fail(f"{what}: id must equal its position ({index}), got {pair['id']!r}")
    if pair["label"] not in (0, 1) or not is_int(pair["label"]):
        fail(f"{what}: label must be 0 or 1, got {pair['label']!r}")
    if pair["split"] not in SPLITS:
        fail(f"{what}: split {pair['split']!r} is not one of {', '.join(SPLITS)}")
    fold = pair["fold"]
    if fold is not None and (not is_int(fold) or fold < 0):
        fail(f"{what}: fold must be null or a non-negative integer, got {fold!r}")
    if pair["pair_type"] not in PAIR_TYPES:
        fail(f"{what}: pair_type {pair['pair_type']!r} is not one of {', '.join(PAIR_TYPES)}")
    for side in ("a", "b"):
        if not isinstance(pair[side], str) or pair[side] not in images:
            fail(f"{what} references unknown image {pair[side]!r}")
    a, b = images[pair["a"]], images[pair["b"]]
    if a["id"] == b["id"]:
        fail(f"{what} pairs image {a['id']!r} with itself")
    if (a["identity"] == b["identity"]) != (pair["label"] == 1):
        kind = "genuine" if pair["label"] == 1 else "impostor"
        fail(f"{what}: {kind} label but identities {a['identity']!r}, {b['identity']!r}")
    expected = {
        "masked-unmasked": (False, True),
        "masked-masked": (True, True),
        "unmasked-unmasked": (False, False),
    }.get(pair["pair_type"])
    if expected is not None and (a["masked"], b["masked"]) != expected:
        fail(f"{what}: {pair['pair_type']} needs masked (a, b) = {expected}")


def validate(protocol: Any) -> None:
    """Check a protocol's structure and consistency (not its digest); UserError on the first fault.

    Images are unique and sorted by id, each used by a pair; pairs are in canonical order with
    ``id`` = position; every reference resolves; the dataset block matches the images.
    """
    _check_keys(protocol, TOP_KEYS, "top-level", OPTIONAL_TOP_KEYS)
    if protocol["schema"] != SCHEMA or protocol["schema_version"] != SCHEMA_VERSION:
        fail(f"schema must be {SCHEMA} version {SCHEMA_VERSION}")
    if not isinstance(protocol["name"], str) or not _NAME.fullmatch(protocol["name"]):
        fail(f"name {protocol['name']!r} must match {_NAME.pattern}")
    for key in ("version", "mfrbench_version"):
        if not isinstance(protocol[key], str) or not protocol[key]:
            fail(f"{key} must be a non-empty string")
    for key in ("description", "citation"):
        if not isinstance(protocol[key], str):
            fail(f"{key} must be a string")
    if not isinstance(protocol["digest"], str) or not _HEX64.fullmatch(protocol["digest"]):
        fail("digest must be 64 lower-case hex digits")
    if "supersedes" in protocol:
        _check_supersedes(protocol)
    gen = protocol["generation"]
    _check_keys(gen, GENERATION_KEYS, "generation")
    if not isinstance(gen["strategy"], str) or not gen["strategy"]:
        fail("generation.strategy must be a non-empty string")
    if not isinstance(gen["params"], dict):
        fail("generation.params must be an object")
    warnings = gen["warnings"]
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        fail("generation.warnings must be a list of strings")
    if not isinstance(protocol["summary"], dict):
        fail("summary must be an object")

    images_list = protocol["images"]
    if not isinstance(images_list, list) or not images_list:
        fail("images must be a non-empty list")
    images: dict[str, dict[str, Any]] = {}
    sources: dict[str, tuple[str, str]] = {}
    previous = None
    for i, img in enumerate(images_list):
        _check_image(img, i)
        if img["id"] in images:
            fail(f"duplicate image id {img['id']!r}")
        if previous is not None and img["id"] < previous:
            fail(f"images must be sorted by id ({img['id']!r} after {previous!r})")
        previous = img["id"]
        images[img["id"]] = img
        src = (img["src_sha256"], img["identity"])
        if sources.setdefault(img["src_path"], src) != src:
            fail(f"source {img['src_path']!r} appears with two sha256 values or identities")

    pairs = protocol["pairs"]
    if not isinstance(pairs, list) or not pairs:
        fail("pairs must be a non-empty list")
    used: set[str] = set()
    prev_key = None
    for i, pair in enumerate(pairs):
        _check_pair(pair, i, images)
        pair_key = pair_sort_key(pair)
        if prev_key is not None and pair_key < prev_key:
            fail(f"pair {i} is out of order (see docs/protocols.md, pair ordering)")
        prev_key = pair_key
        used.update((pair["a"], pair["b"]))
    unused = [i for i in images if i not in used]
    if unused:
        fail(f"{len(unused)} image(s) not used by any pair, e.g. {unused[0]!r}")

    ds = protocol["dataset"]
    _check_keys(ds, DATASET_KEYS, "dataset")
    if not isinstance(ds["name"], str) or not ds["name"]:
        fail("dataset.name must be a non-empty string")
    if ds["content_digest"] != content_digest(images_list):
        fail("dataset.content_digest does not match the images")
    if ds["n_images"] != len(sources) or not is_int(ds["n_images"]):
        fail(f"dataset.n_images must be {len(sources)} (distinct source files)")
