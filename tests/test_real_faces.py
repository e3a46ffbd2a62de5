"""Real images: faces found once at protocol time, MFR2's mask labels, and what eval does with
them, end to end on real photos in MFR2's exact layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mfrbench.protocol import load_protocol

# identity -> [(source, MFR2 mask label)], image numbers in order
LAYOUT = {
    "AdrianDunbar": [
        ("lfw:Al_Gore", "no-mask"),
        ("lfw:Al_Gore", "no-mask"),
        ("real:0", "surgical_blue"),
    ],
    "AlanMulally": [("lfw:Andy_Roddick", "no-mask"), ("real:1", "N95"), ("real:2", "KN95")],
    "AmyKlobuchar": [
        ("lfw:Ari_Fleischer", "no-mask"),
        ("real:3", "cloth_black"),
        ("blank", "N99"),
    ],
}
PAIRS = """AdrianDunbar 1 2
AdrianDunbar 1 3
AlanMulally 1 2
AlanMulally 2 3
AmyKlobuchar 1 2
AmyKlobuchar 1 3
AdrianDunbar 3 AlanMulally 2
AdrianDunbar 1 AmyKlobuchar 1
AlanMulally 3 AmyKlobuchar 2
AmyKlobuchar 3 AdrianDunbar 2
"""


def mfrbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfrbench", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def mfr2_tree(lfw_mini: Path, masked_real: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MFR2 copy in MFR2's own format: Name/Name_000N.png, pairs.txt, mfr2_labels.txt."""
    root = tmp_path_factory.mktemp("mfr2") / "mfr2"
    real = sorted(masked_real.iterdir())
    used: dict[str, int] = {}
    labels = []
    for name, images in LAYOUT.items():
        (root / name).mkdir(parents=True)
        for n, (source, kind) in enumerate(images, 1):
            if source == "blank":  # a photo without a face: the cascade finds none
                bgr = np.full((200, 160, 3), 127, np.uint8)
            elif source.startswith("lfw:"):
                person = source[4:]
                k = used.get(person, 0)
                used[person] = k + 1
                bgr = cv2.imread(str(sorted((lfw_mini / person).glob("*.jpg"))[k]))
            else:
                bgr = cv2.imread(str(real[int(source[5:])]))
            cv2.imwrite(str(root / name / f"{name}_{n:04d}.png"), bgr)
            labels.append(f"{name}, {n}, {kind}")
    (root / "pairs.txt").write_text(PAIRS)
    (root / "mfr2_labels.txt").write_text("\n".join(labels) + "\n")
    return root


@pytest.fixture(scope="module")
def mfr2_protocol(mfr2_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proto") / "mfr2.json"
    r = mfrbench("pairs", "mfr2", "--root", str(mfr2_tree), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "faces of 9 real images: mtcnn 8, no_face 1" in r.stderr
    return out


def test_mfr2_protocol_freezes_faces_labels_and_pair_types(mfr2_protocol: Path) -> None:
    protocol = load_protocol(mfr2_protocol)
    images = {im["id"]: im for im in protocol["images"]}
    blank = images["real:AmyKlobuchar/AmyKlobuchar_0003.png"]
    assert blank["face_status"] == "no_face" and blank["points5"] is None
    assert blank["mask_type"] == "N99" and blank["masked"] is True
    for im in images.values():
        if im is blank:
            continue
        assert im["face_status"] == "ok" and im["detector"] == "mtcnn"
        assert im["points5_source"] == "mtcnn" and len(im["landmarks68"]) == 68
        # the five points lie inside the detector box, the eyes above the mouth
        x1, y1, x2, y2 = im["det_box"]
        pts = np.asarray(im["points5"])
        assert ((pts >= [x1, y1]) & (pts <= [x2, y2])).all()
        assert pts[:2, 1].max() < pts[3:, 1].min()
        assert im["masked"] == (im["mask_type"] != "no-mask")
    types = {(p["a"], p["b"]): p["pair_type"] for p in protocol["pairs"]}
    assert (
        types[
            ("real:AdrianDunbar/AdrianDunbar_0001.png", "real:AdrianDunbar/AdrianDunbar_0002.png")
        ]
        == "unmasked-unmasked"
    )
    assert (
        types[
            ("real:AdrianDunbar/AdrianDunbar_0001.png", "real:AdrianDunbar/AdrianDunbar_0003.png")
        ]
        == "masked-unmasked"
    )
    # listed masked first, stored with the unmasked reference first
    assert (
        types[
            ("real:AdrianDunbar/AdrianDunbar_0002.png", "real:AmyKlobuchar/AmyKlobuchar_0003.png")
        ]
        == "masked-unmasked"
    )
    assert (
        types[("real:AlanMulally/AlanMulally_0002.png", "real:AlanMulally/AlanMulally_0003.png")]
        == "masked-masked"
    )
    params = protocol["generation"]["params"]
    assert params["face_detector"] == "mtcnn,blazeface-short,dlib,haar"
    assert params["face_policy"] == "center"
    r = mfrbench("protocol", "show", str(mfr2_protocol), "--json")
    shown = json.loads(r.stdout)
    assert shown["face_status"] == {"no_face": 1, "ok": 8}
    assert shown["mask_types"]["no-mask"] == 4


def test_eval_on_mfr2_breaks_down_by_mask_type(
    mfr2_protocol: Path, mfr2_tree: Path, tmp_path: Path
) -> None:
    pytest.importorskip("dlib")
    r = mfrbench(
        "eval", "--model", "plugin:dlib-resnet", "--protocol", str(mfr2_protocol),
        "--root", str(mfr2_tree), "--out", str(tmp_path / "results"),
        "--cache-dir", str(tmp_path / "cache"), "--n-boot", "0", "--no-plots",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report_path = next((tmp_path / "results").rglob("report.json"))
    report = json.loads(report_path.read_text())
    faces = report["faces"]
    assert faces["crop"] == "dlib-chip" and faces["landmarks"] == "source"
    assert (faces["source_photos"], faces["face_found"], faces["no_face_fallback"]) == (9, 8, 1)
    ver = report["verification"]
    assert set(ver["by_pair_type"]) == {"masked-masked", "masked-unmasked", "unmasked-unmasked"}
    assert "surgical_blue" in ver["by_mask_type"] and "no-mask" in ver["by_mask_type"]
    rows = ver["genuine_by_mask_type_pair"]["rows"]
    assert rows["no-mask+surgical_blue"]["n_genuine"] == 1
    assert rows["KN95+N95"]["n_genuine"] == 1
    assert sum(r["n_genuine"] for r in rows.values()) == 6
    md = (report_path.parent / "report.md").read_text()
    assert "Genuine pairs by mask-type pair" in md and "| no-mask+surgical_blue | 1 |" in md
    assert "8 with a face frozen in the protocol, 1 with none found" in md
    # the two unmasked photos of one person verify; the pair is genuine and close
    scores = {(s["a"], s["b"]): s for s in _scores(report_path.parent / "scores.parquet")}
    same = scores[
        ("real:AdrianDunbar/AdrianDunbar_0001.png", "real:AdrianDunbar/AdrianDunbar_0002.png")
    ]
    assert same["status"] == "ok" and same["distance"] < 0.6 and same["mask_type"] == "no-mask"


def _scores(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_real_image_faces_do_not_depend_on_workers(mfr2_tree: Path) -> None:
    from mfrbench.datasets import get_dataset
    from mfrbench.faces import FaceConfig, detect_faces
    from mfrbench.pairs import images_from_records

    images = images_from_records(get_dataset("mfr2", root=mfr2_tree).records())
    config = FaceConfig(face_policy="center")
    one, counts = detect_faces(images, mfr2_tree, config, workers=1)
    two, _ = detect_faces(images, mfr2_tree, config, workers=2)
    assert one == two and counts == {"mtcnn": 8, "no_face": 1}


def test_pairs_folder_imports_an_lfw_format_list(lfw_mini: Path, tmp_path: Path) -> None:
    """``pairs folder --pairs-file``: LFW's own list format (with its header) over real photos,
    each face found once; the centre face policy as for LFW."""
    listed = tmp_path / "pairs.txt"
    listed.write_text(
        "2\nAl_Gore 1 2\nAndy_Roddick 1 2\nAl_Gore 1 Andy_Roddick 1\nAl_Gore 2 Andy_Roddick 2\n"
    )
    out = tmp_path / "real.json"
    r = mfrbench(
        "pairs", "folder", "--root", str(lfw_mini), "--pairs-file", str(listed),
        "--face-policy", "center", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    protocol = load_protocol(out)
    assert protocol["generation"]["strategy"] == "listed"
    assert [p["label"] for p in protocol["pairs"]] == [1, 1, 0, 0]
    assert {im["face_status"] for im in protocol["images"]} == {"ok"}
    assert all(im["variant"] == "real" and not im["masked"] for im in protocol["images"])
    r = mfrbench("pairs", "folder", "--root", str(lfw_mini), "--pairs-file", str(tmp_path / "x"))
    assert r.returncode == 2 and "--pairs-file: file not found" in r.stderr


def test_pairs_folder_masked_from_with_mask_types(lfw_mini: Path, tmp_path: Path) -> None:
    """``--masked-from`` flags which photos show masks and, with a mask_type column, which."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    people = sorted(p.name for p in lfw_mini.iterdir() if p.is_dir())[:6]
    rows = {"src_path": [], "real_mask": [], "mask_type": []}
    for person in people:
        for k, f in enumerate(sorted((lfw_mini / person).glob("*.jpg"))[:4]):
            rows["src_path"].append(f"{person}/{f.name}")
            rows["real_mask"].append(k < 2)
            rows["mask_type"].append("N95" if k == 0 else "surgical_blue" if k == 1 else "no-mask")
    flags = tmp_path / "flags.parquet"
    pq.write_table(pa.table(rows), flags)
    out = tmp_path / "folder.json"
    r = mfrbench(
        "pairs", "folder", "--root", str(lfw_mini), "--masked-from", str(flags),
        "--max-per-id", "2", "--test-frac", "0.5", "--val-frac", "0", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    protocol = load_protocol(out)
    images = {im["id"]: im for im in protocol["images"]}
    for p in protocol["pairs"]:
        a, b = images[p["a"]], images[p["b"]]
        assert p["pair_type"] == "masked-unmasked" and b["masked"] and not a["masked"]
        assert b["mask_type"] in ("N95", "surgical_blue")
        assert a["mask_type"] in ("no-mask", None)  # None: a photo the flags file does not list
    r = mfrbench("pairs", "folder", "--root", str(lfw_mini), "--masked-from", str(tmp_path / "no"))
    assert r.returncode == 2 and "--masked-from: file not found" in r.stderr


def _synthetic_refs(lfw_mini: Path, n: int = 3) -> list[dict]:
    """Unmasked and black-masked synthetic ImageRefs of real photos, faces found as synth does."""
    import hashlib

    from mfrbench.faces import FaceConfig, FaceFinder
    from mfrbench.vision.decode import decode_image
    from mfrbench.vision.mask import mask_polygon

    finder = FaceFinder(FaceConfig(detector="mtcnn", face_policy="center"))
    refs = []
    for path in sorted(lfw_mini.glob("*/*.jpg"))[:n]:
        rel = path.relative_to(lfw_mini).as_posix()
        face = finder.find(decode_image(path.read_bytes()).rgb)
        base = {
            "src_path": rel,
            "src_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "synthetic": True,
            "roi_box": face["face_box"],
            "out_wh": [112, 112],
            **face,
        }
        poly = mask_polygon(np.asarray(face["landmarks68"], dtype=np.float64)).tolist()
        refs.append({**base, "variant": "unmasked", "mask_polygon": None, "color_rgb": None})
        refs.append({**base, "variant": "mask-black", "mask_polygon": poly, "color_rgb": [0, 0, 0]})
    return refs


def test_aligned_crops_from_frozen_points_and_re_detected(lfw_mini: Path) -> None:
    from mfrbench.evaluate.prepare import (
        content_key,
        detected_face,
        load_source,
        masked_frame,
        prepare,
    )
    from mfrbench.models.base import Preprocess
    from mfrbench.vision import align

    for ref in _synthetic_refs(lfw_mini):
        frame = masked_frame(ref, load_source(ref, lfw_mini))
        arc = Preprocess((112, 112), "rgb", (0.5,), (0.5,), "arcface-112")
        crop, box = prepare(ref, lfw_mini, arc)
        assert box is None and np.array_equal(crop, align.arcface_crop(frame, ref["points5"]))
        net = Preprocess((160, 160), "rgb", (0.5,), (0.5,), "facenet-160")
        assert np.array_equal(
            prepare(ref, lfw_mini, net)[0], align.facenet_crop(frame, ref["det_box"], 160)
        )
        redetect = Preprocess((112, 112), "rgb", (0.5,), (0.5,), "arcface-112", "detect")
        again, _ = prepare(ref, lfw_mini, redetect)
        assert content_key(ref, arc) != content_key(ref, redetect)
        if ref["variant"] == "unmasked":  # the same photo re-detected: the same alignment
            assert np.abs(again.astype(int) - crop.astype(int)).mean() < 1.0
        else:  # the mask moves MTCNN's eye points (up to ~0.4 IOD here), not to another face
            _, points = detected_face(frame, tuple(ref["face_box"]))
            frozen = np.asarray(ref["points5"])
            iod = np.linalg.norm(frozen[1] - frozen[0])
            assert np.linalg.norm(points[:2] - frozen[:2], axis=1).max() < 0.5 * iod
    # source alignment ignores the mask: the unmasked and masked crops differ only under it
    refs = _synthetic_refs(lfw_mini, 1)
    plain, covered = (prepare(r, lfw_mini, arc)[0] for r in refs)
    changed = np.any(plain != covered, axis=2)
    assert changed[:56].mean() < 0.02 and changed[70:].mean() > 0.3


def test_pairs_out_is_a_folder_unless_it_names_a_json_file(mfr2_tree: Path, tmp_path: Path) -> None:
    """One rule for --out: a folder (here out/mfr2 gets mfr2-v1.json), or a .json file path."""
    folder = tmp_path / "out" / "mfr2"
    r = mfrbench(
        "pairs", "mfr2", "--root", str(mfr2_tree), "--name", "mfr2-v1", "--out", str(folder)
    )
    assert r.returncode == 0, r.stderr
    assert [p.name for p in folder.iterdir()] == ["mfr2-v1.json"]
    load_protocol(folder / "mfr2-v1.json")
    again = tmp_path / "refrozen"
    r = mfrbench(
        "protocol", "freeze", str(folder / "mfr2-v1.json"), "--version", "2", "--out", str(again)
    )
    assert r.returncode == 0, r.stderr
    assert load_protocol(again / "mfr2-v1.json")["version"] == "2"
