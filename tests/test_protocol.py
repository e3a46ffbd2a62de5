"""Protocol files: canonical bytes, digests, freeze/load validation, tampering, verify, render."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from faceref import face
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrbench.errors import ImageError, UserError
from mfrbench.fetch import sha256_file
from mfrbench.protocol import (
    SCHEMA,
    SCHEMA_VERSION,
    canonical_bytes,
    compute_digest,
    content_digest,
    freeze,
    load_protocol,
    open_protocol,
    output_files,
    protocol_id,
    render_image,
    render_protocol,
    show,
    verify,
    write_protocol,
)
from mfrbench.vision.decode import decode_image

REPO = Path(__file__).resolve().parents[1]
SOURCES = (
    "Al_Gore/Al_Gore_0001.jpg",
    "Al_Gore/Al_Gore_0002.jpg",
    "Andy_Roddick/Andy_Roddick_0001.jpg",
    "Andy_Roddick/Andy_Roddick_0002.jpg",
)
POLYGON = [[80, 150], [170, 150], [185, 215], [125, 240], [65, 215]]
BLUE = [135, 206, 250]


def image_ref(variant: str, src: str, sha: str) -> dict[str, Any]:
    """A hand-made ImageRef with LFW-like geometry (upper face ROI box, 112x112 output)."""
    ref: dict[str, Any] = {
        "id": f"{variant}:{src}",
        "identity": src.split("/")[0],
        "src_path": src,
        "src_sha256": sha,
        "variant": variant,
        "masked": variant.startswith("mask-"),
        "synthetic": variant != "real",
    }
    if variant != "real":
        ref.update(roi_box=[50, 40, 200, 190], out_wh=[112, 112])
        ref.update(face([50, 40, 200, 190]))
    if variant.startswith("mask-"):
        ref.update(color="blue", color_rgb=list(BLUE), mask_polygon=copy.deepcopy(POLYGON))
    return ref


def pair(a: dict, b: dict, label: int, fold: int | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "a": a["id"],
        "b": b["id"],
        "label": label,
        "split": kw.get("split", "test"),
        "fold": fold,
        "pair_type": kw.get("pair_type", "masked-unmasked"),
    }


def make_pairset(shas: dict[str, str]) -> dict[str, Any]:
    """Two identities, masked probes vs unmasked references: 2 genuine, 2 impostor pairs."""
    g1, g2, r1, r2 = SOURCES
    ua, ma = image_ref("unmasked", g1, shas[g1]), image_ref("mask-blue", g2, shas[g2])
    ub, mb = image_ref("unmasked", r1, shas[r1]), image_ref("mask-blue", r2, shas[r2])
    return {
        "strategy": "hand",
        "params": {"seed": 7, "test_frac": 0.2},
        "images": [ma, ub, ua, mb],
        "pairs": [pair(ua, ma, 1, 0), pair(ub, mb, 1, 1), pair(ua, mb, 0, 0), pair(ub, ma, 0, 1)],
        "summary": {"test": {"genuine": 2, "impostor": 2, "subjects": 2}},
        "warnings": [],
    }


FAKE_SHAS = {s: hashlib.sha256(s.encode()).hexdigest() for s in SOURCES}


@pytest.fixture
def fake() -> dict[str, Any]:
    return freeze(make_pairset(FAKE_SHAS), name="tiny", dataset="lfw", mfrbench_version="0.1.0")


@pytest.fixture
def data(tmp_path: Path, lfw_mini: Path) -> Path:
    """A throwaway data root holding copies of a few lfw-mini files."""
    root = tmp_path / "data"
    for src in SOURCES:
        (root / src).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw_mini / src, root / src)
    return root


@pytest.fixture
def real(data: Path) -> dict[str, Any]:
    shas = {s: sha256_file(data / s) for s in SOURCES}
    return freeze(make_pairset(shas), name="tiny-real", dataset="lfw")


# ----------------------------------------------------------------------------- canonical JSON


def test_canonical_bytes_exact() -> None:
    assert canonical_bytes({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}\n'
    assert canonical_bytes({"b": 1, "a": 2}) == canonical_bytes({"a": 2, "b": 1})
    # Unicode is written as raw UTF-8, never \u escapes; control characters are escaped.
    assert canonical_bytes({"n": "José 李"}) == '{"n":"José 李"}\n'.encode()
    assert canonical_bytes({"s": 'q"\\\n\x01'}) == b'{"s":"q\\"\\\\\\n\\u0001"}\n'
    # Keys sort by code point: upper case before lower case, "é" after "z".
    assert canonical_bytes({"z": 0, "é": 0, "Z": 0}) == '{"Z":0,"z":0,"é":0}\n'.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1.0, "1.0"), (-0.0, "-0.0"), (1e-07, "1e-07"), (1e16, "1e+16"),
     (123456.789, "123456.789"), (2.5e-05, "2.5e-05"), (1 / 3, "0.3333333333333333"),
     (10**20, "100000000000000000000")],
)  # fmt: skip
def test_canonical_numbers(value: float, text: str) -> None:
    assert canonical_bytes({"x": value}) == f'{{"x":{text}}}\n'.encode()
    assert json.loads(canonical_bytes({"x": value}))["x"] == value


@pytest.mark.parametrize(
    "bad",
    [{"x": float("nan")}, {"x": [float("inf")]}, {"x": {1: 2}}, {"x": np.int64(3)}, {"x": {0.5}}],
)
def test_canonical_rejects_non_json(bad: dict) -> None:
    with pytest.raises(ValueError, match=r"\$\.x"):
        canonical_bytes(bad)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=5))
def test_canonical_bytes_round_trip(obj: dict) -> None:
    """Parsing canonical bytes gives the value back, and re-serialising gives the same bytes."""
    data = canonical_bytes(obj)
    parsed = json.loads(data.decode("utf-8"))
    assert canonical_bytes(parsed) == data
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    shuffled = dict(reversed(list(obj.items())))
    assert canonical_bytes(shuffled) == data


# ----------------------------------------------------------------------------- digests and ids


def test_protocol_shape_and_id(fake: dict) -> None:
    assert fake["schema"] == SCHEMA and fake["schema_version"] == SCHEMA_VERSION
    assert re.fullmatch(r"tiny@[0-9a-f]{12}", protocol_id(fake))
    assert protocol_id(fake) == f"tiny@{fake['digest'][:12]}"
    assert fake["digest"] == compute_digest(fake)
    body = {k: v for k, v in fake.items() if k != "digest"}
    assert fake["digest"] == hashlib.sha256(canonical_bytes(body)).hexdigest()
    assert fake["dataset"] == {
        "name": "lfw",
        "content_digest": content_digest(fake["images"]),
        "n_images": 4,
    }
    # Images sorted by id, pairs in canonical order (fold, then genuine first) with ids.
    assert [i["id"] for i in fake["images"]] == sorted(i["id"] for i in fake["images"])
    assert [(p["id"], p["fold"], p["label"]) for p in fake["pairs"]] == [
        (0, 0, 1),
        (1, 0, 0),
        (2, 1, 1),
        (3, 1, 0),
    ]


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p.update(name="tiny2"),
        lambda p: p.update(version="2"),
        lambda p: p.update(description="x"),
        lambda p: p.update(citation="@misc{x}"),
        lambda p: p.update(mfrbench_version="9.9"),
        lambda p: p["generation"]["params"].update(seed=8),
        lambda p: p["generation"]["params"].update(test_frac=0.2000000001),
        lambda p: p["summary"]["test"].update(genuine=3),
        lambda p: p["pairs"][1].update(label=1),
        lambda p: p["pairs"][0].update(fold=5),
        lambda p: p["images"][0]["mask_polygon"][0].__setitem__(0, 81),
        lambda p: p["images"][0]["color_rgb"].__setitem__(2, 251),
        lambda p: p["images"][2]["roi_box"].__setitem__(3, 191),
        lambda p: p["images"][2].update(src_sha256="0" * 64),
        lambda p: p["images"][2].update(detector="dlib"),
        lambda p: p["images"][0].update(landmarks="mediapipe"),
    ],
)
def test_digest_changes_with_any_field(fake: dict, edit: Any) -> None:
    edited = copy.deepcopy(fake)
    edit(edited)
    assert compute_digest(edited) != fake["digest"]
    assert compute_digest(copy.deepcopy(fake)) == fake["digest"]


def test_content_digest_algorithm_and_order() -> None:
    images = make_pairset(FAKE_SHAS)["images"]
    expected = "".join(f"{s}:{FAKE_SHAS[s]}\n" for s in sorted(SOURCES))
    assert content_digest(images) == hashlib.sha256(expected.encode()).hexdigest()
    shuffled = [*images[::-1], image_ref("real", SOURCES[0], FAKE_SHAS[SOURCES[0]])]
    assert content_digest(shuffled) == content_digest(images)  # order, repeats do not matter
    with pytest.raises(ValueError, match="two sha256"):
        content_digest([*images, image_ref("real", SOURCES[0], "0" * 64)])


def test_freeze_independent_of_input_order(fake: dict) -> None:
    ps = make_pairset(FAKE_SHAS)
    rng = random.Random(3)
    for _ in range(5):
        rng.shuffle(ps["images"])
        rng.shuffle(ps["pairs"])
        again = freeze(ps, name="tiny", dataset="lfw", mfrbench_version="0.1.0")
        assert canonical_bytes(again) == canonical_bytes(fake)
    # Tuples and numpy values from a pair generator become plain JSON lists and ints.
    ps["images"][0]["roi_box"] = tuple(np.array(ps["images"][0]["roi_box"], dtype=np.int32))
    assert freeze(ps, name="tiny", dataset="lfw", mfrbench_version="0.1.0") == fake


def test_freeze_accepts_pairset_objects(fake: dict) -> None:
    obj = SimpleNamespace(**make_pairset(FAKE_SHAS))
    assert freeze(obj, name="tiny", dataset="lfw", mfrbench_version="0.1.0") == fake


def _no_face() -> dict[str, Any]:
    from mfrbench.faces import no_face

    return {**no_face(), "face_status": None}


def _add_real(ps: dict, **fields: Any) -> None:
    """Add a real image (with ``fields`` on it) and an unmasked-unmasked pair that uses it."""
    src = "Andy_Roddick/Andy_Roddick_0003.jpg"
    real = {**image_ref("real", src, FAKE_SHAS[SOURCES[0]][::-1]), **fields}
    ps["images"].append(real)
    ps["pairs"].append(pair(ps["images"][2], real, 0, pair_type="listed"))


def test_real_images_carry_no_detector_or_landmarks() -> None:
    ps = make_pairset(FAKE_SHAS)
    _add_real(ps)
    protocol = freeze(ps, name="tiny", dataset="lfw")  # absent keys are frozen as null
    real = next(i for i in protocol["images"] if i["variant"] == "real")
    assert real["detector"] is None and real["landmarks"] is None
    synthetic = [i for i in protocol["images"] if i["synthetic"]]
    assert {(i["detector"], i["landmarks"]) for i in synthetic} == {("mtcnn", "dlib")}


def _edit_pairset(edit: Any) -> dict:
    ps = make_pairset(FAKE_SHAS)
    edit(ps)
    return ps


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda ps: ps["pairs"][0].update(label=2), "label"),
        (lambda ps: ps["pairs"][0].update(label=True), "label"),
        (lambda ps: ps["pairs"][0].update(b="mask-blue:nobody.jpg"), "unknown image"),
        (lambda ps: ps["pairs"][0].update(split="dev"), "split"),
        (lambda ps: ps["pairs"][0].update(pair_type="masked-masked"), "masked-masked"),
        (lambda ps: ps["pairs"][2].update(label=1), "genuine label but identities"),
        (lambda ps: ps["pairs"][0].update(extra=1), "unknown key"),
        (lambda ps: ps["images"].append(dict(ps["images"][0])), "duplicate image id"),
        (lambda ps: ps["images"][1].update(roi_box=None), "roi_box"),
        (lambda ps: ps["images"][1].update(out_wh=[112.0, 112]), "out_wh"),
        (lambda ps: ps["images"][0].update(mask_polygon=None), "mask_polygon"),
        (lambda ps: ps["images"][0].update(mask_polygon=[[1, 2], [3, 4]]), "mask_polygon"),
        (lambda ps: ps["images"][0].update(mask_polygon=[[1, 2], [3, 4], [5.5, 6]]), "polygon"),
        (lambda ps: ps["images"][0].update(color_rgb=None), "color_rgb"),
        (lambda ps: ps["images"][0].update(color_rgb=[0, 0, 256]), "color_rgb"),
        (lambda ps: ps["images"][0].update(color="black"), "color"),
        (lambda ps: ps["images"][0].update(augment="rotate"), "unknown key"),
        (lambda ps: ps["images"][0].update(detector=None), "detector"),
        (lambda ps: ps["images"][1].update(landmarks=""), "landmarks"),
        (lambda ps: ps["images"][1].update(detector="dlib+mtcnn"), "detector"),
        (lambda ps: ps["images"][0].update(landmarks=68), "landmarks"),
        (lambda ps: _add_real(ps, detector="mtcnn"), "no face geometry or detector"),
        (lambda ps: _add_real(ps, landmarks="dlib"), "no face geometry or detector"),
        (lambda ps: _add_real(ps, roi_box=[0, 0, 9, 9]), "no mask or ROI geometry"),
        (lambda ps: _add_real(ps, face_status="maybe"), "face_status"),
        (lambda ps: ps["images"][0].update(_no_face()), "face_status ok"),
        (lambda ps: ps["images"][0].update(points5=[[1, 2]] * 4), "points5"),
        (lambda ps: ps["images"][0].update(points5_source="guess"), "points5_source"),
        (lambda ps: ps["images"][0].update(landmarks68=[[1, 2]] * 67), "landmarks68"),
        (lambda ps: ps["images"][0].update(det_box=[5, 5, 1, 9]), "det_box"),
        (lambda ps: ps["images"][0].update(det_score="high"), "det_score"),
        (lambda ps: ps["images"][0].update(mask_type="a b"), "mask_type"),
        (lambda ps: ps["images"][0].update(src_sha256="ABC"), "src_sha256"),
        (lambda ps: ps["images"][0].update(id="x"), "id must be"),
        (lambda ps: ps["images"].append(image_ref("real", "../etc/x.jpg", "0" * 64)), "src_path"),
        (lambda ps: ps["images"].append(image_ref("real", "A/b.jpg", "0" * 64)), "not used"),
    ],
)
def test_freeze_refuses_invalid(edit: Any, needle: str) -> None:
    with pytest.raises(UserError, match=needle) as exc:
        freeze(_edit_pairset(edit), name="tiny", dataset="lfw")
    assert "\n" not in str(exc.value)


def test_freeze_refuses_bad_name_and_non_json_summary() -> None:
    with pytest.raises(UserError, match="name"):
        freeze(make_pairset(FAKE_SHAS), name="bad name/1", dataset="lfw")
    ps = make_pairset(FAKE_SHAS)
    ps["summary"]["ratio"] = float("nan")
    with pytest.raises(ValueError, match=r"summary\.ratio"):
        freeze(ps, name="tiny", dataset="lfw")


# ----------------------------------------------------------------------------- write / load


def test_write_load_round_trip(fake: dict, tmp_path: Path) -> None:
    path = tmp_path / "p" / "tiny.json"
    write_protocol(fake, path)
    assert path.read_bytes() == canonical_bytes(fake)
    assert path.read_bytes().endswith(b"}\n") and path.read_bytes().count(b"\n") == 1
    assert load_protocol(path) == fake
    assert [p.name for p in path.parent.iterdir()] == ["tiny.json"]  # no temp files left
    stale = copy.deepcopy(fake)
    stale["name"] = "other"
    with pytest.raises(ValueError, match="digest"):
        write_protocol(stale, tmp_path / "stale.json")


def _load_error(path: Path) -> str:
    with pytest.raises(UserError) as exc:
        load_protocol(path)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    return message


def test_load_refuses_edited_file(fake: dict, tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    write_protocol(fake, path)
    text = path.read_text(encoding="utf-8")
    # (1) one pair label flipped in the JSON text: still canonical, digest no longer matches.
    edited = text.replace('"id":1,"label":0', '"id":1,"label":1', 1)
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    message = _load_error(path)
    assert "protocol file was edited" in message and fake["digest"] in message
    # (2) re-indented: same content and digest, but not the canonical bytes.
    path.write_text(json.dumps(fake, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert "not in canonical form" in _load_error(path)
    # (3) the canonical text with a trailing space or a missing final newline.
    path.write_text(text + " ", encoding="utf-8")
    assert "not in canonical form" in _load_error(path)
    path.write_text(text.rstrip("\n"), encoding="utf-8")
    assert "not in canonical form" in _load_error(path)


def _rewrite(protocol: dict, path: Path) -> None:
    """Write ``protocol`` canonically with a freshly computed digest (a buggy writer)."""
    protocol["digest"] = compute_digest(protocol)
    path.write_bytes(canonical_bytes(protocol))


def test_load_refuses_inconsistent_files(fake: dict, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    assert "not found" in _load_error(path)
    path.write_text("{not json", encoding="utf-8")
    assert "not valid JSON" in _load_error(path)
    path.write_bytes(b'{"a":"\xff"}\n')
    assert "UTF-8" in _load_error(path)
    path.write_text('{"schema":"other"}\n', encoding="utf-8")
    assert "not an mfrbench protocol" in _load_error(path)
    _rewrite({**fake, "schema_version": SCHEMA_VERSION + 1}, path)
    assert f"schema_version {SCHEMA_VERSION + 1}" in _load_error(path)
    path.write_text(json.dumps({**fake, "x": float("nan")}), encoding="utf-8")
    assert "NaN" in _load_error(path)

    bad = copy.deepcopy(fake)
    bad["pairs"][0]["b"] = "mask-blue:Nobody/Nobody_0001.jpg"
    _rewrite(bad, path)
    assert "unknown image 'mask-blue:Nobody/Nobody_0001.jpg'" in _load_error(path)
    bad = copy.deepcopy(fake)
    bad["images"].insert(1, copy.deepcopy(bad["images"][0]))
    _rewrite(bad, path)
    assert "duplicate image id" in _load_error(path)
    bad = copy.deepcopy(fake)
    bad["pairs"].reverse()
    _rewrite(bad, path)
    assert "id must equal its position" in _load_error(path)
    bad = copy.deepcopy(fake)
    bad["dataset"]["content_digest"] = "0" * 64
    _rewrite(bad, path)
    assert "content_digest" in _load_error(path)


# ----------------------------------------------------------------------------- verify


def test_verify_on_lfw_mini(real: dict, data: Path, lfw_mini: Path) -> None:
    report = verify(real, lfw_mini)  # the shared copy, read only
    assert report.ok and report.checked == 4 and report.protocol_id == protocol_id(real)
    assert verify(real, data, workers=2) == report
    assert "all 4 source images match" in report.message()
    report.raise_for_mismatch()


def test_verify_lists_changed_and_missing(real: dict, data: Path) -> None:
    changed, gone = data / SOURCES[1], data / SOURCES[3]
    raw = bytearray(changed.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one changed byte
    changed.write_bytes(bytes(raw))
    gone.unlink()
    report = verify(real, data, workers=2)
    assert not report.ok and report.checked == 4
    assert report.missing == [SOURCES[3]]
    expected = sha256_file(changed)
    assert report.changed == [(SOURCES[1], real["images"][0]["src_sha256"], expected)]
    message = report.message()
    assert "1 missing" in message and "1 changed" in message and SOURCES[1] in message
    with pytest.raises(UserError, match="do not match"):
        report.raise_for_mismatch()
    with pytest.raises(UserError, match="not a directory"):
        verify(real, data / "nope")
    assert "variant" not in message  # a few damaged files are not another LFW variant


def test_verify_recognises_another_lfw_variant(real: dict, data: Path) -> None:
    """Every file there under LFW's names, none with the protocol's bytes: another variant."""
    import cv2

    for src in SOURCES:  # re-encoded copies stand in for the funneled or original photos
        img = cv2.imread(str(data / src))
        cv2.imwrite(str(data / src), cv2.flip(img, 1))
    report = verify(real, data)
    assert len(report.changed) == 4 and not report.missing
    message = report.message()
    assert "another LFW variant" in message and "protocols/rebuild.sh" in message
    assert "\n" not in message


# ----------------------------------------------------------------------------- render


def test_render_fills_polygon_with_colour(lfw_mini: Path) -> None:
    src = SOURCES[0]
    ref = image_ref("mask-blue", src, sha256_file(lfw_mini / src))
    ref.update(roi_box=[0, 0, 250, 250], out_wh=[250, 250])  # identity crop: no resize
    out = render_image(ref, lfw_mini)
    source = decode_image((lfw_mini / src).read_bytes()).rgb
    inside = np.zeros((250, 250), np.uint8)
    cv2.fillPoly(inside, [np.array(POLYGON, np.int32)], 1, lineType=cv2.LINE_8)
    inside = inside.astype(bool)
    assert inside.sum() > 5000
    assert (out[inside] == BLUE).all()
    assert (out[~inside] == source[~inside]).all()
    # With a crop and resize the colour stays exact deep inside the polygon.
    ref.update(roi_box=[50, 40, 200, 190], out_wh=[112, 112])
    small = render_image(ref, lfw_mini)
    assert small.shape == (112, 112, 3)
    cx, cy = (125 - 50) * 112 // 150, (200 - 40) * 112 // 150
    assert (small[cy - 3 : cy + 3, cx - 3 : cx + 3] == BLUE).all()


def test_render_zero_pads_and_real_is_source(lfw_mini: Path) -> None:
    src = SOURCES[2]
    sha = sha256_file(lfw_mini / src)
    ref = image_ref("unmasked", src, sha)
    ref.update(roi_box=[-50, 0, 200, 250], out_wh=[250, 250])  # 50 columns left of the image
    out = render_image(ref, lfw_mini)
    source = decode_image((lfw_mini / src).read_bytes()).rgb
    assert (out[:, :50] == 0).all() and (out[:, 50:] == source[:, :200]).all()
    assert np.array_equal(render_image(image_ref("real", src, sha), lfw_mini), source)


def test_render_image_checks_source_hash(real: dict, data: Path) -> None:
    image = real["images"][0]
    with pytest.raises(ImageError) as exc:
        render_image({**image, "src_sha256": "0" * 64}, data)
    assert exc.value.status == "changed"
    (data / image["src_path"]).unlink()
    with pytest.raises(ImageError) as exc:
        render_image(image, data)
    assert exc.value.status == "missing"


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_render_protocol_twice_is_byte_identical(real: dict, data: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    r1 = render_protocol(real, data, tmp_path / "o1", progress=lambda d, f: calls.append((d, f)))
    r2 = render_protocol(real, data, tmp_path / "o2", workers=2)
    assert (r1.total, r1.written, r1.failed, r1.status_counts) == (4, 4, 0, {"ok": 4})
    assert (r2.written, r2.status_counts) == (4, {"ok": 4})
    assert calls[-1] == (4, 0) and len(calls) == 4
    t1, t2 = _tree(tmp_path / "o1"), _tree(tmp_path / "o2")
    assert t1 == t2
    files = output_files(real["images"])
    assert sorted(t1) == sorted([*files.values(), "index.parquet"])
    assert files["mask-blue:Al_Gore/Al_Gore_0002.jpg"] == "mask-blue/Al_Gore/Al_Gore_0002.png"
    rows = pq.read_table(tmp_path / "o1" / "index.parquet").to_pylist()
    assert [r["id"] for r in rows] == [i["id"] for i in real["images"]]
    for row in rows:
        assert row["status"] == "ok" and row["reason"] == ""
        assert row["sha256"] == hashlib.sha256(t1[row["file"]]).hexdigest()
    img = decode_image(t1[files["mask-blue:Al_Gore/Al_Gore_0002.jpg"]]).rgb
    assert img.shape == (112, 112, 3)

    # Re-running skips everything and leaves identical bytes; a damaged output is redone.
    again = render_protocol(real, data, tmp_path / "o1", workers=2)
    assert (again.written, again.skipped) == (0, 4) and _tree(tmp_path / "o1") == t1
    damaged = tmp_path / "o1" / rows[0]["file"]
    damaged.write_bytes(b"x")
    again = render_protocol(real, data, tmp_path / "o1")
    assert (again.written, again.skipped) == (1, 3) and _tree(tmp_path / "o1") == t1


def test_render_protocol_records_failures(real: dict, data: Path, tmp_path: Path) -> None:
    (data / SOURCES[0]).unlink()
    (data / SOURCES[3]).write_bytes(b"not the original")
    report = render_protocol(real, data, tmp_path / "out")
    assert (report.total, report.written, report.failed) == (4, 2, 2)
    assert report.status_counts == {"changed": 1, "missing": 1, "ok": 2}
    rows = {r["id"]: r for r in pq.read_table(report.index).to_pylist()}
    assert rows[f"unmasked:{SOURCES[0]}"]["status"] == "missing"
    assert rows[f"mask-blue:{SOURCES[3]}"]["status"] == "changed"
    assert rows[f"mask-blue:{SOURCES[3]}"]["file"] is None
    assert "recorded" in rows[f"mask-blue:{SOURCES[3]}"]["reason"]
    with pytest.raises(UserError, match="format"):
        render_protocol(real, data, tmp_path / "out", fmt="gif")


def test_output_files_resolve_collisions() -> None:
    images = [
        image_ref("real", "A/x.jpg", "0" * 64),
        image_ref("real", "A/x.png", "0" * 64),
        image_ref("unmasked", "A/x.jpg", "0" * 64),
        image_ref("real", "B/.hidden", "0" * 64),
        image_ref("real", "B/noext", "0" * 64),
    ]
    assert output_files(images) == {
        "real:A/x.jpg": "real/A/x.jpg.png",
        "real:A/x.png": "real/A/x.png.png",
        "unmasked:A/x.jpg": "unmasked/A/x.png",
        "real:B/.hidden": "real/B/.hidden.png",
        "real:B/noext": "real/B/noext.png",
    }
    assert output_files(images[2:3], "jpg") == {"unmasked:A/x.jpg": "unmasked/A/x.jpg"}


# ----------------------------------------------------------------------------- show, docs


def test_show_counts(fake: dict) -> None:
    s = show(fake)
    assert s["id"] == protocol_id(fake) and s["dataset"] == "lfw"
    assert (s["pairs"], s["images"], s["source_images"], s["identities"]) == (4, 4, 4, 2)
    assert s["by_split"] == {"test": {"pairs": 4, "genuine": 2, "impostor": 2, "identities": 2}}
    assert s["by_fold"] == {
        0: {"pairs": 2, "genuine": 1, "impostor": 1},
        1: {"pairs": 2, "genuine": 1, "impostor": 1},
    }
    assert s["by_pair_type"] == {"masked-unmasked": {"pairs": 4, "genuine": 2, "impostor": 2}}
    assert s["by_label"] == {"genuine": 2, "impostor": 2}
    assert s["colors"] == {"blue": 2} and s["variants"] == {"mask-blue": 2, "unmasked": 2}
    assert s["detectors"] == {"mtcnn": 4} and s["landmarks"] == {"dlib": 4}


def test_docs_example_is_a_valid_protocol(tmp_path: Path) -> None:
    """The example in docs/protocols.md loads, and its stated digest and id are right."""
    doc = (REPO / "docs" / "protocols.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- example-protocol -->\s*```json\n(.*?)\n```", doc, re.S)
    assert block, "docs/protocols.md lost its example protocol"
    path = tmp_path / "example.json"
    path.write_bytes(block.group(1).encode("utf-8") + b"\n")
    protocol = load_protocol(path)
    assert f"`{protocol_id(protocol)}`" in doc
    assert f"`{protocol['dataset']['content_digest']}`" in doc
    # The digest preimage really is the file minus its `"digest":"<hex>",` member.
    member = f'"digest":"{protocol["digest"]}",'.encode()
    preimage = path.read_bytes().replace(member, b"", 1)
    assert hashlib.sha256(preimage).hexdigest() == protocol["digest"]


def test_docs_render_vectors(tmp_path: Path, lfw_mini: Path) -> None:
    """The pixel hashes docs/protocols.md gives implementers are what the renderer produces."""
    doc = (REPO / "docs" / "protocols.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- example-protocol -->\s*```json\n(.*?)\n```", doc, re.S)
    assert block
    path = tmp_path / "example.json"
    path.write_bytes(block.group(1).encode("utf-8") + b"\n")
    images = {i["id"]: i for i in load_protocol(path)["images"]}
    vectors = re.findall(r"\| `([^`]+)` \| `([0-9a-f]{64})` \|", doc.split("render-vectors", 1)[1])
    assert sorted(i for i, _ in vectors) == sorted(images)
    for image_id, expected in vectors:
        pixels = render_image(images[image_id], lfw_mini)
        assert pixels.shape == (112, 112, 3)
        assert hashlib.sha256(pixels.tobytes()).hexdigest() == expected


def test_open_protocol_loads_verifies_and_indexes(real: dict, data: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    write_protocol(real, path)
    opened = open_protocol(path, data)
    assert opened.id == protocol_id(real) and opened.root == data and opened.path == path
    assert set(opened.images) == {img["id"] for img in real["images"]}
    assert opened.pairs == real["pairs"]
    (data / SOURCES[0]).write_bytes(b"not the photo")
    with pytest.raises(UserError) as info:
        open_protocol(path, data)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("1 files changed/missing") and SOURCES[0] in msg
    assert f"mfrbench protocol verify {path} --root {data}" in msg
