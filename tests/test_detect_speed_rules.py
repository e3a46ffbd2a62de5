"""Speed rules that choose detector work: HOG upsampling by image size with a retry, and the
minimum face size (`--min-face`) reaching each detector and the recorded synth parameters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mfrbench.errors import UserError
from mfrbench.synth import SynthConfig, detector_options, parse_min_face
from mfrbench.vision.detect import HOG_WINDOW, DlibHog, Haar, MmodCnn, cascade_names


@pytest.fixture(scope="module")
def lfw_faces(lfw_mini: Path) -> list[np.ndarray]:
    people = sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:6]
    return [np.asarray(Image.open(sorted(p.glob("*.jpg"))[0]).convert("RGB")) for p in people]


def _boxes(faces: list) -> list[tuple[float, ...]]:
    return [f.box for f in faces]


def test_upsample_rule_by_size_retry_and_min_face() -> None:
    old = DlibHog()
    assert old.upsamples_for(250, 250) == (1,)  # the default is unchanged: cascades' fallback
    assert old.upsamples_for(1024, 700) == (0,)
    fast = DlibHog(retry=True)
    assert fast.upsamples_for(250, 250) == (0, 1)
    assert fast.upsample_for(250, 250) == 0
    assert fast.upsamples_for(499, 120) == (0, 1)
    assert fast.upsamples_for(500, 120) == (0,)  # large images never upsample
    assert DlibHog(retry=True, min_face=HOG_WINDOW).upsamples_for(250, 250) == (0,)
    assert DlibHog(retry=True, min_face=HOG_WINDOW - 1).upsamples_for(250, 250) == (0, 1)
    assert DlibHog(upsample=2, retry=True).upsamples_for(250, 250) == (2,)


def test_retry_is_upsample_0_when_that_finds_a_face(lfw_faces: list[np.ndarray]) -> None:
    fast, up0 = DlibHog(retry=True), DlibHog(upsample=0)
    for rgb in lfw_faces:
        found = up0.detect(rgb)
        assert found, "every one of these LFW photos has a face HOG finds without upsampling"
        assert _boxes(fast.detect(rgb)) == _boxes(found)


def test_retry_upsamples_when_the_face_is_too_small(lfw_faces: list[np.ndarray]) -> None:
    # Shrunk to 110 px, LFW's faces (~110 px in 250) are ~50 px: below HOG's 80 px window.
    small = [cv2.resize(rgb, (110, 110), interpolation=cv2.INTER_AREA) for rgb in lfw_faces]
    fast, up0, up1 = DlibHog(retry=True), DlibHog(upsample=0), DlibHog(upsample=1)
    retried = 0
    for rgb in small:
        if not up0.detect(rgb):
            retried += 1
            assert _boxes(fast.detect(rgb)) == _boxes(up1.detect(rgb))
    assert retried >= len(small) // 2  # the case this test is about did happen
    assert sum(bool(fast.detect(rgb)) for rgb in small) == sum(
        bool(up1.detect(rgb)) for rgb in small
    )


def test_min_face_drops_smaller_faces(lfw_faces: list[np.ndarray]) -> None:
    rgb = lfw_faces[0]
    (face,) = DlibHog(upsample=0).detect(rgb)
    side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
    assert DlibHog(upsample=0, min_face=int(side)).detect(rgb)
    assert DlibHog(upsample=0, min_face=int(side) + 1).detect(rgb) == []
    assert Haar(min_size=240).detect(rgb) == []  # Haar's own minimum is the same knob


def test_mmod_shares_the_rule() -> None:
    try:
        mmod = MmodCnn(retry=True, min_face=100)
    except UserError as e:
        pytest.skip(str(e))
    assert mmod.upsamples_for(250, 250) == (0,)
    assert MmodCnn(retry=True).upsamples_for(250, 250) == (0, 1)


def test_detector_options_leave_defaults_alone() -> None:
    mtcnn = SynthConfig(dataset="lfw")  # "auto" reaches MTCNN only; its fallbacks keep theirs
    assert detector_options(mtcnn, cascade_names("mtcnn")) == {"mtcnn": {"min_face_size": "auto"}}
    native = SynthConfig(dataset="lfw", min_face="native")
    assert detector_options(native, cascade_names("mtcnn")) == {}  # MTCNN-led: bytes as before
    dlib = SynthConfig(dataset="lfw", detector="dlib")
    assert detector_options(dlib, cascade_names("dlib")) == {"dlib": {"retry": True}}
    sized = SynthConfig(dataset="lfw", min_face=40)
    assert detector_options(sized, cascade_names("mtcnn")) == {
        "mtcnn": {"min_face_size": 40},
        "dlib": {"min_face": 40},
        "haar": {"min_size": 40},
    }
    hog_first = SynthConfig(dataset="lfw", detector="dlib", min_face=60)
    assert detector_options(hog_first, ["dlib", "haar"]) == {
        "dlib": {"retry": True, "min_face": 60},
        "haar": {"min_size": 60},
    }


def test_min_face_and_hog_rule_are_recorded_only_when_used() -> None:
    plain = SynthConfig(dataset="lfw").params()
    assert plain["min_face"] == "auto" and "dlib_upsample" not in plain
    native = SynthConfig(dataset="lfw", min_face="native").params()
    assert "min_face" not in native and "dlib_upsample" not in native
    # "auto" acts on MTCNN only: without it in the cascade nothing changes, nothing is recorded
    assert "min_face" not in SynthConfig(dataset="lfw", detector="haar", fallback=False).params()
    assert SynthConfig(dataset="lfw", min_face=40).params()["min_face"] == 40
    assert SynthConfig(dataset="lfw", detector="dlib").params()["dlib_upsample"] == "0-then-1"
    assert "dlib_upsample" not in SynthConfig(dataset="lfw", detector="haar,dlib").params()
    assert SynthConfig(dataset="lfw", min_face=40).digest() != SynthConfig(dataset="lfw").digest()
    assert SynthConfig(dataset="lfw", min_face="native").digest() != SynthConfig("lfw").digest()
    with pytest.raises(UserError, match="--min-face"):
        SynthConfig(dataset="lfw", min_face=11).validate()
    with pytest.raises(UserError, match="--min-face: unknown value 'big'"):
        SynthConfig(dataset="lfw", min_face="big").validate()
    assert parse_min_face("auto") == "auto" and parse_min_face("40") == 40
    with pytest.raises(UserError, match="expected a size in px, 'auto' or 'native'"):
        parse_min_face("4o")


@pytest.mark.slow
def test_cli_min_face_reaches_the_manifest(lfw_mini: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from mfrbench.manifest import read_metadata

    def synth(*extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(lfw_mini)]
        cmd += ["--limit", "3", "--colors", "black", "--workers", "1", *extra]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=300,
        )

    bad = synth("--min-face", "5", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--min-face must be at least 12" in bad.stderr
    assert "Traceback" not in bad.stderr
    r = synth("--detector", "dlib", "--min-face", "80", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    manifest = tmp_path / "out" / "manifest.parquet"
    params = read_metadata(manifest)["params"]
    assert params["min_face"] == 80 and params["dlib_upsample"] == "0-then-1"
    rows = pq.read_table(manifest).to_pylist()
    faces = [r for r in rows if r["variant"] == "unmasked" and r["status"] == "ok"]
    assert len(faces) == 3 and all(r["detector"] == "dlib" for r in faces)
    assert all(
        min(r["det_box"][2] - r["det_box"][0], r["det_box"][3] - r["det_box"][1]) >= 80
        for r in faces
    )
