"""The evaluator: crops, cache, scores, the run, reports, CLI; fake models plus one real one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow.parquet as pq
import pytest
from faceref import face

from mfrbench.errors import ImageError, UserError
from mfrbench.evaluate import cache as cache_mod
from mfrbench.evaluate import scores as scores_mod
from mfrbench.evaluate.prepare import content_key, fit_into, prepare
from mfrbench.evaluate.runner import check_output, evaluate, load_run
from mfrbench.models.base import EmbeddingModel, ModelIdentity, Preprocess
from mfrbench.protocol import freeze, load_protocol, render_image, write_protocol
from mfrbench.vision.roi import output_size, roi_box

FACE_BOX = [60, 60, 190, 190]
POLYGON = [[85, 110], [165, 110], [175, 195], [125, 225], [75, 195]]  # top in the upper half
COLOURS = {"blue": [135, 206, 250], "black": [0, 0, 0]}


# ----------------------------------------------------------------------------- fixtures


def _detector(sha: str) -> str:
    """A per-photo detector (as a cascade falls back photo by photo): dlib for about a third."""
    return "dlib" if int(sha[:2], 16) % 3 == 0 else "mtcnn"


def _ref(src: str, identity: str, sha: str, variant: str) -> dict[str, Any]:
    box = roi_box("upper-half", FACE_BOX, None, (250, 250))
    masked = variant.startswith("mask-")
    colour = variant[5:] if masked else None
    return {
        "id": f"{variant}:{src}",
        "identity": identity,
        "src_path": src,
        "src_sha256": sha,
        "variant": variant,
        "masked": masked,
        "synthetic": True,
        "color": colour,
        "color_rgb": COLOURS[colour] if masked else None,
        "mask_polygon": POLYGON if masked else None,
        "roi_box": list(box),
        "out_wh": list(output_size("upper-half", 56)),
        **face(FACE_BOX, detector=_detector(sha)),
    }


def _images(lfw_mini: Path, n_ids: int = 20, per_id: int = 3) -> list[dict[str, Any]]:
    refs = []
    for person in sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:n_ids]:
        for f in sorted(person.glob("*.jpg"))[:per_id]:
            rel = f"{person.name}/{f.name}"
            sha = hashlib.sha256(f.read_bytes()).hexdigest()
            refs.append(_ref(rel, person.name, sha, "unmasked"))
            for c in COLOURS:
                refs.append(_ref(rel, person.name, sha, f"mask-{c}"))
    return refs


@pytest.fixture(scope="module")
def tiny(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4-fold lfw-mini protocol (masked-unmasked + unmasked control), its file and root."""
    from mfrbench.pairs import lfw_folds

    pairset = lfw_folds(
        _images(lfw_mini),
        n_folds=4,
        per_fold=6,
        pair_types=["masked-unmasked", "unmasked-unmasked"],
        seed=0,
    )
    protocol = freeze(pairset, name="tiny-lfw-mini", dataset="lfw-mini")
    path = tmp_path_factory.mktemp("proto") / "tiny.json"
    write_protocol(protocol, path)
    return {"protocol": protocol, "path": path, "root": lfw_mini}


def _pixels_key(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()


class FakeModel(EmbeddingModel):
    """Embeds by looking the prepared pixels up in a table (a perfect or a random model).

    ``table`` maps the sha256 of the prepared pixels to an embedding; unknown pixels get a
    seeded random vector. ``nan_for`` / ``crash_after`` / ``extra_dim`` simulate broken models.
    """

    name = "fake"
    embedding_size = 8
    default_distance = "cosine"

    def __init__(
        self,
        table=None,
        *,
        crop="protocol",
        nan_for=(),
        crash_after=None,
        extra_dim=0,
        tag="oracle",
    ) -> None:
        self.preprocess = Preprocess(size=None, color="rgb", mean=(0.0,), std=(1.0,), crop=crop)
        self.table = table or {}
        self.nan_for = set(nan_for)
        self.crash_after = crash_after
        self.extra_dim = extra_dim
        self.tag = tag
        self.calls = 0
        self.seen = 0

    def identity(self) -> ModelIdentity:
        return ModelIdentity("fake", "1", "none", {"tag": self.tag})

    def embed(self, images, boxes):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise RuntimeError("simulated crash")
        self.seen += len(images)
        out = []
        for img in images:
            key = _pixels_key(img)
            if key in self.table:
                vec = np.asarray(self.table[key], dtype=np.float32)
            else:
                seed = int(key[:8], 16)
                vec = np.random.default_rng(seed).normal(size=8).astype(np.float32)
            if key in self.nan_for:
                vec = np.full(8, np.nan, np.float32)
            out.append(vec)
        arr = np.stack(out)
        if self.extra_dim:
            arr = np.concatenate([arr, np.zeros((len(arr), self.extra_dim), np.float32)], 1)
        return arr


def _oracle_table(tiny: dict[str, Any], crop: str = "protocol") -> dict[str, np.ndarray]:
    """Pixels of every prepared image -> a one-hot vector of its identity (a perfect model)."""
    pre = Preprocess(size=None, color="rgb", mean=(0.0,), std=(1.0,), crop=crop)
    ids = sorted({img["identity"] for img in tiny["protocol"]["images"]})
    table = {}
    for img in tiny["protocol"]["images"]:
        rgb, _ = prepare(img, tiny["root"], pre)
        vec = np.zeros(8, np.float32)
        k = ids.index(img["identity"])
        vec[k % 8] = 1.0
        vec[(k // 8 + 3) % 8] += 0.5  # 20 identities in 8 dims: distinct directions
        table[_pixels_key(rgb)] = vec
    return table


def _run(tiny, model, tmp_path: Path, **kw) -> Any:
    kw.setdefault("n_boot", 20)
    kw.setdefault("plots", False)
    kw.setdefault("cache_dir", tmp_path / "cache")
    return evaluate(tiny["path"], model, root=tiny["root"], out_dir=tmp_path / "results", **kw)


# ----------------------------------------------------------------------------- prepare


def test_protocol_crop_equals_protocol_render(tiny: dict[str, Any]) -> None:
    pre = Preprocess(size=None, color="rgb", mean=(0.0,), std=(1.0,), crop="protocol")
    for img in tiny["protocol"]["images"][:6]:
        rgb, box = prepare(img, tiny["root"], pre)
        assert box is None
        assert np.array_equal(rgb, render_image(img, tiny["root"]))


def test_face_and_upper_half_crops_relate(tiny: dict[str, Any]) -> None:
    img = next(i for i in tiny["protocol"]["images"] if i["variant"] == "mask-blue")
    face, _ = prepare(img, tiny["root"], Preprocess((112, 112), "rgb", (0.0,), (1.0,), "face"))
    upper, _ = prepare(
        img, tiny["root"], Preprocess((112, 56), "rgb", (0.0,), (1.0,), "upper-half")
    )
    assert face.shape == (112, 112, 3) and upper.shape == (56, 112, 3)
    # the upper-half crop is the top half of the face crop (same box, same scale)
    assert np.abs(face[:56].astype(int) - upper.astype(int)).mean() < 1.0
    # the mask (sky blue) is drawn in the face crop's lower half, not in the upper half
    blue = np.all(face == np.array(COLOURS["blue"], np.uint8), axis=2)
    assert blue[70:].mean() > 0.2 and blue[:40].mean() == 0.0


def test_frame_crop_gives_box_and_moves_it(tiny: dict[str, Any]) -> None:
    img = tiny["protocol"]["images"][0]
    frame, box = prepare(img, tiny["root"], Preprocess(None, "rgb", (0.0,), (1.0,), "frame"))
    assert frame.shape == (250, 250, 3) and box == tuple(FACE_BOX)
    small, moved = fit_into(frame, (125, 125), box)
    assert small.shape == (125, 125, 3) and moved == (30, 30, 95, 95)


def test_eye_band_comes_from_the_frozen_landmarks(tiny: dict[str, Any]) -> None:
    img = tiny["protocol"]["images"][0]
    band, _ = prepare(img, tiny["root"], Preprocess(None, "rgb", (0.0,), (1.0,), "eye-band"))
    canon = np.asarray(img["landmarks68"])
    box = roi_box("eye-band", FACE_BOX, canon, (250, 250))
    assert band.shape == (box[3] - box[1], box[2] - box[0], 3)
    assert abs(band.shape[1] / band.shape[0] - 3.0) < 0.05


def test_prepare_checks_source_hash(tiny: dict[str, Any], tmp_path: Path) -> None:
    img = dict(tiny["protocol"]["images"][0])
    root = tmp_path / "data"
    (root / img["src_path"]).parent.mkdir(parents=True)
    (root / img["src_path"]).write_bytes(b"not the image")
    pre = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")
    with pytest.raises(ImageError) as err:
        prepare(img, root, pre)
    assert err.value.status == "changed"
    with pytest.raises(ImageError) as err:
        prepare(img, tmp_path / "nowhere", pre)
    assert err.value.status == "missing"


def test_content_key_ignores_geometry_the_crop_does_not_use(tiny: dict[str, Any]) -> None:
    img = next(i for i in tiny["protocol"]["images"] if i["variant"] == "unmasked")
    other = {**img, "roi_box": [0, 0, 10, 5], "out_wh": [20, 10]}
    face = Preprocess((64, 64), "rgb", (0.0,), (1.0,), "face")
    proto = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")
    assert content_key(img, face) == content_key(other, face)
    assert content_key(img, proto) != content_key(other, proto)
    assert content_key(img, face) != content_key(
        img, Preprocess((32, 32), "rgb", (0.0,), (1.0,), "face")
    )


# ----------------------------------------------------------------------------- cache, scores


def test_cache_roundtrip_and_compaction(tmp_path: Path) -> None:
    cache = cache_mod.EmbeddingCache("k" * 64, 4, root=tmp_path, meta={"who": "test"})
    rng = np.random.default_rng(0)
    batches = [(([f"key{i}-{j}" for j in range(3)]), rng.normal(size=(3, 4))) for i in range(5)]
    for keys, emb in batches:
        cache.put(keys, emb)
    assert len(cache.shards()) == 5 and (cache.dir / "meta.json").is_file()
    loaded = cache.load()
    assert len(loaded) == 15
    np.testing.assert_array_equal(loaded["key2-1"], batches[2][1][1].astype(np.float32))
    (cache.dir / "shard-broken.parquet").write_bytes(b"garbage")
    assert len(cache.load()) == 15 and len(cache.damaged) == 1
    assert cache.compact(min_shards=2) == 15
    assert len(cache.load(["key0-0", "nope"])) == 1
    with pytest.raises(ValueError):
        cache.put(["a"], np.zeros((1, 5)))


def test_scores_match_definitions() -> None:
    rng = np.random.default_rng(1)
    e = rng.normal(size=(6, 5))
    e[5] = 0.0
    ia, ib = np.array([0, 1, 2, 0]), np.array([1, 2, 3, 5])
    s, d, zero = scores_mod.pair_scores(e, ia, ib, "cosine")
    cos = [
        float(e[a] @ e[b] / np.linalg.norm(e[a]) / np.linalg.norm(e[b]))
        for a, b in zip(ia[:3], ib[:3], strict=True)
    ]
    np.testing.assert_allclose(s[:3], cos, rtol=1e-12)
    np.testing.assert_allclose(d[:3], 1 - np.asarray(cos), rtol=1e-12)
    assert zero.tolist() == [False, False, False, True] and np.isnan(s[3])
    s2, d2, _ = scores_mod.pair_scores(e, ia, ib, "sql2")
    np.testing.assert_allclose(d2[:3], 2 - 2 * np.asarray(cos), rtol=1e-9)
    np.testing.assert_allclose(s2, -d2)
    s3, d3, zero3 = scores_mod.pair_scores(e, ia, ib, "euclidean")
    np.testing.assert_allclose(d3, np.linalg.norm(e[ia] - e[ib], axis=1), rtol=1e-12)
    assert not zero3.any() and np.array_equal(s3, -d3)
    sim = scores_mod.similarity_matrix(e[:3], e[1:4], "euclidean")
    np.testing.assert_allclose(sim[0, 0], -np.linalg.norm(e[0] - e[1]), rtol=1e-9)
    with pytest.raises(UserError):
        scores_mod.check_distance("manhattan")


def test_check_output_statuses() -> None:
    arr, probs = check_output(np.ones((2, 3)), 2, 3)
    assert arr is not None and probs == [("ok", "")] * 2
    _, probs = check_output(np.ones((2, 4)), 2, 3)
    assert {p[0] for p in probs} == {"bad_shape"}
    _, probs = check_output(np.array([[1.0, np.nan, 0.0], [1.0, 1.0, 1.0]]), 2, 3)
    assert [p[0] for p in probs] == ["nan_embedding", "ok"]


# ----------------------------------------------------------------------------- the run


def test_perfect_model_end_to_end_and_rerun_from_cache(tiny, tmp_path: Path) -> None:
    table = _oracle_table(tiny)
    model = FakeModel(table)
    run = _run(tiny, model, tmp_path, plots=True)
    rep = run.report
    overall = rep["verification"]["overall"]
    assert overall["accuracy"]["value"] == 1.0 and overall["auc"]["value"] == 1.0
    assert overall["accuracy"]["n_folds"] == 4 and overall["eer"]["value"] == 0.0
    assert set(rep["verification"]["by_pair_type"]) == {"masked-unmasked", "unmasked-unmasked"}
    assert set(rep["verification"]["by_colour"]) == {"black", "blue", "none"}
    assert "control impostors" in rep["verification"]["control"]
    assert rep["identification"]["rank1"] == 1.0
    emb = rep["embedding"]
    assert emb["computed"] == model.seen == emb["inputs"] > 0
    assert emb["forward_passes"] < emb["naive_forward_passes"]
    for name in (
        "report.json",
        "report.md",
        "scores.parquet",
        "roc.png",
        "det.png",
        "scores_hist.png",
    ):
        assert (run.out_dir / name).is_file(), name
    assert run.out_dir.parent.name == rep["protocol"]["id"]
    md = (run.out_dir / "report.md").read_text()
    assert rep["protocol"]["id"] in md and "100.00%" in md
    sc = pq.read_table(run.out_dir / "scores.parquet")
    assert sc.num_rows == len(tiny["protocol"]["pairs"])
    assert set(sc.column("status").to_pylist()) == {"ok"}
    assert json.loads((run.out_dir / "report.json").read_text())["seed"] == 0

    again = FakeModel(table)
    rep2 = _run(tiny, again, tmp_path).report
    assert again.seen == 0 and rep2["embedding"]["computed"] == 0
    assert rep2["embedding"]["cached"] == emb["inputs"]
    assert rep2["verification"]["overall"]["auc"] == overall["auc"]
    assert load_run(run.out_dir)["model"]["id"] == rep["model"]["id"]


def test_metrics_by_detector_and_landmarks(tiny, tmp_path: Path) -> None:
    """Two detectors in the protocol: scores.parquet names each pair's, the report breaks down."""
    images = {i["id"]: i for i in tiny["protocol"]["images"]}
    assert {i["detector"] for i in images.values()} == {"dlib", "mtcnn"}
    run = _run(tiny, FakeModel(_oracle_table(tiny), tag="det"), tmp_path)
    rows = pq.read_table(run.out_dir / "scores.parquet").to_pylist()
    for r in rows:
        sides = {images[r["a"]]["detector"], images[r["b"]]["detector"]}
        assert r["detector"] == "+".join(sorted(sides)) and r["landmarks"] == "dlib"
    ver = run.report["verification"]
    by_det = ver["by_detector"]
    assert set(by_det) == {r["detector"] for r in rows} >= {"mtcnn", "dlib+mtcnn"}
    assert sum(v["n_pairs"] for v in by_det.values()) == ver["overall"]["n_pairs"] == len(rows)
    assert by_det["mtcnn"]["accuracy"]["value"] == 1.0  # a perfect model, whatever the detector
    assert list(ver["by_landmarks"]) == ["dlib"]
    assert ver["by_landmarks"]["dlib"]["auc"] == ver["overall"]["auc"]
    assert "by_detector" not in run.report  # the breakdown lives in "verification"
    md = (run.out_dir / "report.md").read_text()
    from mfrbench.evaluate.formatting import MIN_GROUP_PAIRS

    assert any(v["n_pairs"] >= MIN_GROUP_PAIRS for v in by_det.values())
    assert any(v["n_pairs"] < MIN_GROUP_PAIRS for v in by_det.values())
    for group, v in by_det.items():  # several detectors: a table row each, tiny ones in a line
        if "error" in v or v["n_pairs"] < MIN_GROUP_PAIRS:
            assert f"| detector {group} |" not in md
            assert f"detector {group} ({v['n_pairs']})" in md.split("Left out of the table")[1]
        else:
            assert f"| detector {group} | {v['n_pairs']} " in md
    assert "| landmarks dlib |" not in md  # one backend: a sentence, not a row
    assert "Every scored test pair: landmarks dlib." in md


def test_undetected_real_photo_protocol_has_no_detector_breakdown(
    lfw_mini: Path, tmp_path: Path
) -> None:
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, lfw_folds

    images = images_from_records(get_dataset("lfw", root=lfw_mini).records())
    pairset = lfw_folds(images, n_folds=2, per_fold=5, pair_types=["unmasked-unmasked"], seed=0)
    path = tmp_path / "real.json"
    write_protocol(freeze(pairset, name="real-mini", dataset="lfw-mini"), path)
    run = evaluate(
        path,
        FakeModel(tag="random"),
        root=lfw_mini,
        out_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache",
        n_boot=0,
        plots=False,
    )
    rows = pq.read_table(run.out_dir / "scores.parquet").to_pylist()
    assert {(r["detector"], r["landmarks"]) for r in rows} == {(None, None)}
    ver = run.report["verification"]
    assert ver["by_detector"].startswith("not available: no evaluated pair records a detector")
    assert ver["by_landmarks"].startswith("not available")
    faces = run.report["faces"]
    assert faces["never_detected"] == faces["no_face_fallback"] == faces["source_photos"] > 0
    md = (run.out_dir / "report.md").read_text()
    assert "detector" not in md and "landmarks" not in md
    assert f"{faces['source_photos']} with none found (" in md


def test_pair_value_joins_differing_sides() -> None:
    a, b = {"detector": "mtcnn", "color": None}, {"detector": "dlib", "color": "blue"}
    assert scores_mod.pair_value(a, b, "detector") == "dlib+mtcnn"
    assert scores_mod.pair_value(a, a, "detector") == "mtcnn"
    assert scores_mod.pair_value(a, b, "color") == scores_mod.pair_colour(a, b) == "blue"
    assert scores_mod.pair_value({}, {"detector": None}, "detector") is None


def test_random_model_is_near_chance(tiny, tmp_path: Path) -> None:
    rep = _run(tiny, FakeModel(tag="random"), tmp_path).report
    auc = rep["verification"]["overall"]["auc"]["value"]
    assert 0.25 < auc < 0.75


def test_killed_run_resumes_with_only_the_rest(tiny, tmp_path: Path) -> None:
    table = _oracle_table(tiny)
    crashing = FakeModel(table, crash_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tiny, crashing, tmp_path, batch_size=5)
    done_before = crashing.seen
    assert done_before == 10
    resumed = FakeModel(table)
    rep = _run(tiny, resumed, tmp_path, batch_size=5).report
    assert rep["embedding"]["cached"] == done_before
    assert resumed.seen == rep["embedding"]["inputs"] - done_before
    assert rep["verification"]["overall"]["accuracy"]["value"] == 1.0


def test_nan_and_wrong_shape_become_pair_statuses(tiny, tmp_path: Path) -> None:
    table = _oracle_table(tiny)
    victim = tiny["protocol"]["pairs"][0]["b"]
    img = next(i for i in tiny["protocol"]["images"] if i["id"] == victim)
    pre = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")
    bad_key = _pixels_key(prepare(img, tiny["root"], pre)[0])
    rep = _run(tiny, FakeModel(table, nan_for=[bad_key], tag="nan"), tmp_path).report
    by_status = rep["pairs"]["by_status"]
    assert by_status.get("nan_embedding", 0) >= 1
    sc = pq.read_table(rep_path(rep, tmp_path)).to_pylist()
    hit = [r for r in sc if victim in (r["a"], r["b"])]
    assert hit and all(r["status"] == "nan_embedding" and r["score"] is None for r in hit)
    assert all(victim in r["reason"] for r in hit)
    assert rep["verification"]["overall"]["n_pairs"] == rep["pairs"]["scored"]

    with pytest.raises(UserError, match="no test pair"):
        _run(tiny, FakeModel(table, extra_dim=1, tag="shape"), tmp_path)
    sc = pq.read_table(
        tmp_path
        / "results"
        / rep["protocol"]["id"]
        / _model_dir(tmp_path, "shape")
        / "scores.parquet"
    )
    assert set(sc.column("status").to_pylist()) == {"bad_shape"}


def rep_path(rep: dict[str, Any], tmp_path: Path) -> Path:
    return tmp_path / "results" / rep["protocol"]["id"] / rep["model"]["id"] / "scores.parquet"


def _model_dir(tmp_path: Path, tag: str) -> str:
    from mfrbench.evaluate.runner import model_id_of

    return model_id_of(FakeModel(tag=tag), "cosine")


def test_tampered_protocol_and_changed_data_refused(tiny, tmp_path: Path) -> None:
    data = tiny["path"].read_bytes()
    edited = tmp_path / "edited.json"
    edited.write_bytes(data.replace(b'"label":1', b'"label":0', 1))
    with pytest.raises(UserError) as err:
        evaluate(edited, FakeModel(), root=tiny["root"], out_dir=tmp_path / "r", n_boot=0)
    assert "\n" not in str(err.value) and "edited" in str(err.value)

    root = tmp_path / "data"
    shutil.copytree(tiny["root"], root)
    victim = tiny["protocol"]["images"][0]["src_path"]
    (root / victim).write_bytes(b"changed")
    with pytest.raises(UserError) as err:
        evaluate(tiny["path"], FakeModel(), root=root, out_dir=tmp_path / "r", n_boot=0)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("1 files changed/missing")
    assert "mfrbench protocol verify" in msg


class FitModel(FakeModel):
    """A model that must be fitted: records what it was fitted on (image hashes)."""

    needs_fit = True
    fitted_on: ClassVar[list[set[str]]] = []

    def fit(self, images, boxes) -> None:
        self.basis = sorted(_pixels_key(i) for i in images)
        FitModel.fitted_on.append(set(self.basis))

    def identity(self) -> ModelIdentity:
        digest = hashlib.sha256("".join(getattr(self, "basis", [])).encode()).hexdigest()
        return ModelIdentity("fitme", "1", digest, {})


def test_fitted_model_never_sees_its_test_fold(tiny, tmp_path: Path) -> None:
    FitModel.fitted_on = []
    table = _oracle_table(tiny)
    rep = _run(tiny, FitModel(table), tmp_path).report
    assert len(FitModel.fitted_on) == 4 and len(rep["model"]["fit"]["fits"]) == 4
    pre = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")
    proto = tiny["protocol"]
    images = {i["id"]: i for i in proto["images"]}
    for fold, seen in enumerate(FitModel.fitted_on):
        held = {
            images[p[s]]["identity"]
            for p in proto["pairs"]
            if p["fold"] == fold
            for s in ("a", "b")
        }
        held_keys = {
            _pixels_key(prepare(i, tiny["root"], pre)[0])
            for i in proto["images"]
            if i["identity"] in held
        }
        assert seen and not (seen & held_keys)
    assert rep["verification"]["overall"]["accuracy"]["value"] == 1.0


def test_report_compare_and_cli(tiny, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from mfrbench.cli.common import parse_model_opts
    from mfrbench.cli.evaluate import eval_command
    from mfrbench.cli.report import report_app
    from mfrbench.evaluate.compare import compare_table

    a = _run(tiny, FakeModel(_oracle_table(tiny)), tmp_path)
    b = _run(tiny, FakeModel(tag="random"), tmp_path, distance="euclidean")
    text = compare_table([a.report, b.report])  # the headline pair set, runs named by model
    lines = text.splitlines()
    assert lines[0].startswith(
        "| pairs: masked-unmasked | fake (distance=cosine, tag=oracle) | "
        "fake (distance=euclidean, tag=random) |"
    )
    assert "100.00% ± 0.00" in text  # a fold protocol: the k-fold figure, never "(opt.)"
    n_masked = a.report["verification"]["by_pair_type"]["masked-unmasked"]["n_pairs"]
    assert f"| pairs in this set | {n_masked} |" in text
    assert any(line.startswith("| distance | cosine | euclidean |") for line in lines)
    assert "GMean" not in text  # distances differ: score-unit figures are left out
    pooled = compare_table([a.report, b.report], "all")
    assert pooled.splitlines()[0].startswith("| pairs: all |")

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.add_typer(report_app, name="report")
    result = CliRunner().invoke(app, ["report", "compare", str(a.out_dir), str(b.out_dir)])
    assert result.exit_code == 0, result.output
    assert "| AUC |" in result.output
    args = ["report", "compare", str(a.out_dir), "--pairs", "colour:blue"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "| pairs: colour:blue |" in result.output
    result = CliRunner().invoke(app, [*args[:3], "--pairs", "masked-masked"])
    assert isinstance(result.exception, UserError)
    assert "has no pair set 'masked-masked'; available: all, colour:" in str(result.exception)
    assert parse_model_opts(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UserError):
        parse_model_opts(["novalue"])
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "plugin:dlib-resnet",
            "--protocol",
            str(tmp_path / "none.json"),
            "--root",
            str(tiny["root"]),
        ],
    )
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert "not found" in str(result.exception)


# ----------------------------------------------------------------------------- real model


def test_dlib_resnet_end_to_end(tiny, tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    try:
        from mfrbench.models.registry import create_model

        create_model("plugin:dlib-resnet", {})
    except (ImportError, UserError) as exc:
        pytest.skip(f"dlib-resnet plugin not available: {exc}")
    rep = _run(tiny, "plugin:dlib-resnet", tmp_path, n_boot=0).report
    overall = rep["verification"]["overall"]
    unmasked = rep["verification"]["by_pair_type"]["unmasked-unmasked"]
    # 20 LFW identities, 48 pairs: the reference model separates unmasked faces well
    assert unmasked["auc"]["value"] > 0.9, unmasked["auc"]
    assert overall["auc"]["value"] > 0.75
    assert rep["pairs"]["scored"] == rep["pairs"]["evaluated"]
    assert load_protocol(tiny["path"])["name"] == "tiny-lfw-mini"


def test_two_workers_give_the_same_scores(tiny, tmp_path: Path) -> None:
    table = _oracle_table(tiny)
    one = _run(tiny, FakeModel(table, tag="w"), tmp_path / "one", batch_size=8)
    two = _run(tiny, FakeModel(table, tag="w"), tmp_path / "two", batch_size=8, workers=2)
    assert two.report["embedding"]["computed"] == one.report["embedding"]["computed"]
    assert two.report["embedding"]["worker_processes"] == 2
    a = pq.read_table(one.out_dir / "scores.parquet")
    b = pq.read_table(two.out_dir / "scores.parquet")
    assert a.equals(b)


def test_undecodable_image_gives_pair_status(tiny, tmp_path: Path) -> None:
    proto = tiny["protocol"]
    victim = proto["pairs"][0]["a"]
    src = next(i["src_path"] for i in proto["images"] if i["id"] == victim)
    root = tmp_path / "data"
    shutil.copytree(tiny["root"], root)
    (root / src).write_bytes(b"these bytes are not an image")
    sha = hashlib.sha256(b"these bytes are not an image").hexdigest()
    images = [{**i, "src_sha256": sha} if i["src_path"] == src else i for i in proto["images"]]
    broken = freeze(
        {
            "strategy": "hand",
            "params": {},
            "images": images,
            "pairs": proto["pairs"],
            "summary": {},
        },
        name="broken",
        dataset="lfw-mini",
    )
    path = tmp_path / "broken.json"
    write_protocol(broken, path)
    run = evaluate(
        path,
        FakeModel(tag="dec"),
        root=root,
        out_dir=tmp_path / "r",
        cache_dir=tmp_path / "c",
        n_boot=0,
        plots=False,
    )
    rows = pq.read_table(run.out_dir / "scores.parquet").to_pylist()
    hit = [r for r in rows if src in r["a"] or src in r["b"]]
    assert hit and {r["status"] for r in hit} == {"decode_error"}
    assert all(r["score"] is None and src in r["reason"] for r in hit)
    assert run.report["embedding"]["failed_by_status"]["decode_error"] >= 1
    assert run.report["pairs"]["scored"] == len(rows) - len(hit)


def test_eigenface_fits_per_fold_end_to_end(tiny, tmp_path: Path) -> None:
    try:
        from mfrbench.models.registry import create_model

        create_model("plugin:eigenface", {})
    except (ImportError, UserError) as exc:
        pytest.skip(f"eigenface plugin not available: {exc}")
    run = _run(tiny, "plugin:eigenface", tmp_path, n_boot=0)
    rep = run.report
    assert (
        len(rep["model"]["fit"]["fits"]) == 4 and "once per test fold" in rep["model"]["fit"]["how"]
    )
    assert rep["pairs"]["scored"] == rep["pairs"]["evaluated"]
    assert rep["identification"]["spaces"] == 4
    again = _run(tiny, "plugin:eigenface", tmp_path, n_boot=0).report
    assert again["embedding"]["computed"] == 0
    assert again["verification"]["overall"]["auc"] == rep["verification"]["overall"]["auc"]


def test_eval_command_prints_summary(tiny, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from mfrbench.cli.evaluate import eval_command

    try:
        from mfrbench.models.registry import create_model

        create_model("plugin:eigenface", {})
    except (ImportError, UserError) as exc:
        pytest.skip(f"eigenface plugin not available: {exc}")
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands: "eval" stays a sub-command
    args = [
        "eval",
        "--model",
        "plugin:eigenface",
        "--model-opt",
        "n_components=20",
        "--protocol",
        str(tiny["path"]),
        "--root",
        str(tiny["root"]),
        "--out",
        str(tmp_path / "res"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--n-boot",
        "0",
        "--no-plots",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "identification: rank-1" in result.output and "report:" in result.output
    assert list((tmp_path / "res").glob("*/eigenface@*/report.md"))
    bad = CliRunner().invoke(app, [*args[:3], "--model-opt", "bogus=1", *args[5:]])
    assert bad.exit_code != 0 and "bogus" in str(bad.exception)


# ----------------------------------------------------------------------------- all-vs-all


def _expected_impostor_count(protocol: dict[str, Any]) -> int:
    """Brute force: per (pair type, split, fold), every b side against every a side of
    another identity (the definition in docs/metrics.md)."""
    who = {img["id"]: img["identity"] for img in protocol["images"]}
    cells: dict[tuple, tuple[set, set]] = {}
    for p in protocol["pairs"]:
        refs, probes = cells.setdefault((p["pair_type"], p["split"], p["fold"]), (set(), set()))
        refs.add(p["a"])
        probes.add(p["b"])
    return sum(
        1 for refs, probes in cells.values() for r in refs for b in probes if who[r] != who[b]
    )


def test_all_vs_all_impostors_end_to_end(tiny, tmp_path: Path) -> None:
    from mfrbench.evaluate.impostors import read_impostors

    model = FakeModel(_oracle_table(tiny))
    run = _run(tiny, model, tmp_path, impostors="all", threshold=0.9)
    ver = run.report["verification"]
    block = ver["all_impostors"]
    n_expected = _expected_impostor_count(tiny["protocol"])
    n_listed = sum(1 for p in tiny["protocol"]["pairs"] if p["label"] == 0)
    assert block["n_impostors"] == n_expected > 4 * n_listed
    items = read_impostors(pq.read_table(run.out_dir / "impostors.parquet"))
    assert sum(s.n for _, s in items) == n_expected
    assert {st.pair_type for st, _ in items} == {"masked-unmasked", "unmasked-unmasked"}
    # the oracle separates every identity: all genuine accepted at every resolvable FAR
    for name, entry in block["by_pair_type"].items():
        tar = entry["tar_at_far"]["0.1"]  # 0.01 needs 1,000 impostors, more than here
        assert tar["value"] == 1.0 and tar["exact"], name
        assert tar["n_impostors"] == entry["n_impostor"]
    assert ver["calibration"]["impostors"] == "all-vs-all impostors"
    # fixed threshold: cosine >= 0.9 accepts the oracle's genuine pairs only
    fixed = ver["fixed_threshold"]["sets"]["all"]["fixed"]
    assert fixed["fnmr"] == 0.0 and fixed["fmr"] == 0.0
    assert fixed["n_impostors"] == n_expected
    md = (run.out_dir / "report.md").read_text()
    assert "## All-vs-all impostors" in md and "## Fixed threshold" in md
    # masked thresholds come from the control's all-vs-all impostors (too few here for a table)
    nist = block["by_pair_type"]["masked-unmasked"]["fnmr_at_fmr"]["0.001"]
    assert nist["threshold_source"].startswith("control") and nist["value"] is None
    assert "NIST-style" not in md

    # thresholds carried from this run to a second run of the same model; another model refused.
    # The second run differs (listed impostors, no fixed threshold) and goes to the same folder,
    # the one its thresholds come from: it needs overwrite, and reads them before clearing it.
    again = _run(
        tiny, FakeModel(_oracle_table(tiny)), tmp_path, thresholds_from=run.out_dir, overwrite=True
    )
    carried = again.report["verification"]["carried_thresholds"]
    assert carried["source"]["pair_set"] == "unmasked-unmasked"
    assert set(carried["sets"]["masked-unmasked"]) >= {"eer", "fmr=0.001"}
    with pytest.raises(UserError, match="cannot be applied"):
        _run(tiny, FakeModel(tag="random"), tmp_path, thresholds_from=run.out_dir)


def test_all_vs_all_random_model_equals_brute_force(tiny, tmp_path: Path) -> None:
    """A random model: every all-vs-all impostor score recomputed here from the model's own
    embeddings (prepared pixels -> seeded vector), by brute force; the summaries must agree."""
    from mfrbench.evaluate.impostors import merged, read_impostors

    run = _run(tiny, FakeModel(tag="random"), tmp_path, impostors="all")
    items = read_impostors(pq.read_table(run.out_dir / "impostors.parquet"))
    pre = Preprocess(size=None, color="rgb", mean=(0.0,), std=(1.0,), crop="protocol")
    images = {img["id"]: img for img in tiny["protocol"]["images"]}
    emb = {}
    for i, img in images.items():
        key = _pixels_key(prepare(img, tiny["root"], pre)[0])
        v = np.random.default_rng(int(key[:8], 16)).normal(size=8).astype(np.float32)
        emb[i] = v.astype(np.float64) / np.linalg.norm(v.astype(np.float64))
    for ptype in ("masked-unmasked", "unmasked-unmasked"):
        cells: dict[tuple, tuple[set, set]] = {}
        for p in tiny["protocol"]["pairs"]:
            if p["pair_type"] == ptype:
                refs, probes = cells.setdefault((p["split"], p["fold"]), (set(), set()))
                refs.add(p["a"])
                probes.add(p["b"])
        brute = np.sort(
            [
                float(np.clip(emb[r] @ emb[b], -1, 1))
                for refs, probes in cells.values()
                for r in refs
                for b in probes
                if images[r]["identity"] != images[b]["identity"]
            ]
        )[::-1]
        got = merged(items, pair_type=ptype)
        assert got is not None and got.n == brute.size
        assert got.mean_var()[0] == pytest.approx(brute.mean(), abs=1e-9)
        np.testing.assert_allclose(got.tail, brute[: got.tail.size], atol=1e-9)
        assert got.tail.size >= 0.01 * brute.size
        for q in (0, 1, got.tail.size - 1):
            assert got.count_at_least(brute[q]) == (np.count_nonzero(brute >= brute[q]), True)


def test_eval_cli_rejects_bad_impostors_option(tiny, tmp_path: Path, capsys) -> None:
    from mfrbench.cli import main

    args = ["eval", "--model", "plugin:random", "--protocol", str(tiny["path"])]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--root", str(tiny["root"]), "--impostors", "some", "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--impostors must be one of listed, all" in err[0]


def test_report_schema_version_written_and_checked(tiny, tmp_path: Path) -> None:
    from mfrbench.evaluate.report import REPORT_SCHEMA_VERSION

    run = _run(tiny, FakeModel(tag="random"), tmp_path)
    assert load_run(run.out_dir)["schema_version"] == REPORT_SCHEMA_VERSION
    future = tmp_path / "future" / "report.json"
    future.parent.mkdir()
    future.write_text(json.dumps({**run.report, "schema_version": 99}))
    with pytest.raises(UserError, match="schema_version 99"):
        load_run(future.parent)


def test_nist_rows_show_only_resolvable_control_rates() -> None:
    from mfrbench.evaluate.formatting import nist_rows

    src = "control impostors (unmasked-unmasked, all-vs-all)"
    entry = {"value": 0.25, "threshold": -0.5, "threshold_source": src, "exact": True}
    block = {
        "by_pair_type": {
            "masked-unmasked": {
                "fnmr_at_fmr": {
                    "0.001": {
                        **entry,
                        "fmr_here": 0.0004,
                        "fmr_here_exact": True,
                        "fmr_shift": 0.4,
                    },
                    "0.0001": {"value": None, "threshold_source": src},
                }
            },
            "unmasked-unmasked": {"fnmr_at_fmr": {"0.001": entry}},
        }
    }
    rows = nist_rows(block)
    assert rows == [["masked-unmasked", "0.001", "-0.5000", "25.000%", "0.04000%", "0.40"]]
