"""The torch plugins (resnet50, facenet) and their networks, without torchvision or network.

Random weights are saved to files and loaded through ``weights=PATH`` exactly as real ones
would be; the tests check compatibility (torchvision's ResNet-50 keys, facenet-pytorch's own
InceptionResnetV1 forward), file handling, refusals, and embeddings of real LFW faces.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mfrbench.errors import UserError
from mfrbench.models.base import cache_key_of
from mfrbench.models.facenet import FaceNet
from mfrbench.models.nets import load_weights, read_state_dict
from mfrbench.models.nets import resnet as resnet_mod
from mfrbench.models.nets.inception_resnet_v1 import InceptionResnetV1
from mfrbench.models.nets.resnet import ResNet50 as ResNet50Net
from mfrbench.models.nets.resnet import features
from mfrbench.models.resnet50 import ResNet50

# --------------------------------------------------------------------------- helpers


def _seeded(build, seed: int):
    """Build a module under a fixed torch seed without disturbing the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def torchvision_resnet50_keys(num_classes: int = 1000) -> list[tuple[str, tuple[int, ...]]]:
    """torchvision.models.resnet50().state_dict() as (name, shape), in order, written out.

    torchvision's Bottleneck registers conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample
    (Sequential(conv1x1, BatchNorm2d)) on the first block of every stage; ResNet registers
    conv1, bn1, relu, maxpool, layer1..4, avgpool, fc.
    """
    keys: list[tuple[str, tuple[int, ...]]] = []

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        keys.append((f"{name}.weight", (cout, cin, k, k)))

    def bn(name: str, c: int) -> None:
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            keys.append((f"{name}.{leaf}", (c,)))
        keys.append((f"{name}.num_batches_tracked", ()))

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    stages = zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)
    for stage, (planes, blocks) in enumerate(stages, 1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            conv(f"{p}.conv1", planes, inplanes if b == 0 else planes * 4, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                conv(f"{p}.downsample.0", planes * 4, inplanes, 1)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    keys += [("fc.weight", (num_classes, 2048)), ("fc.bias", (num_classes,))]
    return keys


def _face_crops(lfw_mini: Path, size: tuple[int, int], n: int = 4) -> list[np.ndarray]:
    """The central face region of the first ``n`` lfw-mini images, resized to ``size``."""
    paths = sorted(lfw_mini.rglob("*.jpg"))[:n]
    out = []
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        out.append(cv2.resize(rgb[62:188, 62:188], size, interpolation=cv2.INTER_AREA))
    return out


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine, two spinning OpenMP threads can make a
    forward pass 10x slower; results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Random-weight files: ResNet-50 (ImageNet head, VGGFace2 head), InceptionResnetV1."""
    d = tmp_path_factory.mktemp("weights")
    rn = _seeded(ResNet50Net, 0).state_dict()
    fn = _seeded(lambda: InceptionResnetV1(num_classes=8631), 1).state_dict()
    fc = _seeded(lambda: torch.nn.Linear(2048, 8631), 2).state_dict()
    rn8631 = {**rn, "fc.weight": fc["weight"], "fc.bias": fc["bias"]}
    return {
        "resnet": _save(rn, d / "resnet50.pth"),
        "resnet8631": _save(rn8631, d / "resnet50_8631.pth"),
        "facenet": _save(fn, d / "facenet.pt"),
    }


@pytest.fixture(scope="module")
def resnet(weights) -> ResNet50:
    return ResNet50(weights=str(weights["resnet"]))


@pytest.fixture(scope="module")
def facenet(weights) -> FaceNet:
    return FaceNet(weights=str(weights["facenet"]))


# --------------------------------------------------------------------------- ResNet-50 network


def test_resnet50_state_dict_is_torchvisions():
    net = ResNet50Net()
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == torchvision_resnet50_keys()
    # Facts about torchvision's resnet50, independent of the listing above.
    assert len(got) == 320  # 53 convs + 53 BatchNorms x 5 entries + fc weight and bias
    assert sum(p.numel() for p in net.parameters()) == 25_557_032  # torchvision's num_params
    shapes = dict(got)
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer2.0.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["layer3.5.bn3.running_var"] == (1024,)
    assert shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert shapes["fc.weight"] == (1000, 2048)
    assert "layer1.3.conv1.weight" not in shapes and "layer1.1.downsample.0.weight" not in shapes


def test_resnet50_variants_share_keys_but_not_strides():
    tv, vgg = ResNet50Net(variant="torchvision"), ResNet50Net(variant="vggface2", num_classes=8631)
    assert [k for k in tv.state_dict()] == [k for k in vgg.state_dict()]
    assert (tv.layer2[0].conv1.stride, tv.layer2[0].conv2.stride) == ((1, 1), (2, 2))
    assert (vgg.layer2[0].conv1.stride, vgg.layer2[0].conv2.stride) == ((2, 2), (1, 1))
    assert (tv.maxpool.padding, tv.maxpool.ceil_mode) == (1, False)
    assert (vgg.maxpool.padding, vgg.maxpool.ceil_mode) == (0, True)
    x = torch.zeros(1, 3, 64, 64)  # any size from ~32 px: the pooling is global
    with torch.inference_mode():
        assert vgg(x).shape == (1, 8631)
        assert features(tv, x).shape == features(vgg, x).shape == (1, 2048)
    with pytest.raises(ValueError, match="variant"):
        ResNet50Net(variant="caffe2")


def test_torchvision_is_used_when_it_imports(monkeypatch):
    built = {}

    def fake_resnet50(weights=None, num_classes=1000):
        built["args"] = (weights, num_classes)
        return ResNet50Net(num_classes=num_classes)

    fake = types.ModuleType("torchvision")
    fake_models = types.ModuleType("torchvision.models")
    fake_models.resnet50 = fake_resnet50
    fake.models = fake_models
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.models", fake_models)
    resnet_mod._torchvision_resnet50.cache_clear()
    try:
        assert resnet_mod.torchvision_available()
        resnet_mod.resnet50(num_classes=7)
        assert built["args"] == (None, 7)
        # The Caffe variant is never torchvision's.
        built.clear()
        assert isinstance(resnet_mod.resnet50(variant="vggface2"), ResNet50Net)
        assert built == {}
    finally:
        resnet_mod._torchvision_resnet50.cache_clear()


# --------------------------------------------------------------------------- InceptionResnetV1


def _facenet_pytorch_module() -> types.ModuleType:
    """facenet-pytorch's models/inception_resnet_v1.py, loaded alone (its package needs
    torchvision). The file also imports requests and a download helper used only by its
    ``load_weights``; those three import lines are dropped, nothing else is changed."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("facenet-pytorch is not installed (pip install --no-deps facenet-pytorch)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "inception_resnet_v1.py"
    source = path.read_text(encoding="utf-8").splitlines()
    drop = {
        "import requests",
        "from requests.adapters import HTTPAdapter",
        "from .utils.download import download_url_to_file",
    }
    kept = [line for line in source if line.strip() not in drop]
    assert len(source) - len(kept) == len(drop), "facenet-pytorch's imports changed"
    module = types.ModuleType("facenet_pytorch_inception_resnet_v1")
    module.__file__ = str(path)
    exec(compile("\n".join(kept), str(path), "exec"), module.__dict__)
    return module


def test_inception_resnet_v1_matches_facenet_pytorch_exactly():
    ref_mod = _facenet_pytorch_module()
    ref = ref_mod.InceptionResnetV1(classify=False, num_classes=8631)
    ref.logits = torch.nn.Linear(512, 8631)  # what pretrained="vggface2" adds
    gen = torch.Generator().manual_seed(3)
    state = {}
    for key, value in ref.state_dict().items():
        if key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif value.is_floating_point():
            state[key] = torch.randn(value.shape, generator=gen) * 0.05
        else:
            state[key] = value
    ref.load_state_dict(state)
    ours = InceptionResnetV1(num_classes=8631)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in ref.state_dict().items()
    ]
    ours.load_state_dict(state, strict=True)
    ref.eval(), ours.eval()
    x = torch.randn(2, 3, 160, 160, generator=gen)
    with torch.inference_mode():
        a, b = ref(x), ours(x)
    assert torch.equal(a, b)
    assert torch.allclose(b.norm(dim=1), torch.ones(2), atol=1e-5)


# --------------------------------------------------------------------------- plugins on real faces


def test_resnet50_embeds_lfw_faces(resnet, weights, lfw_mini):
    assert resnet.preprocess.size == (224, 224) and resnet.preprocess.crop == "face"
    assert resnet.preprocess.mean == (0.485, 0.456, 0.406)
    assert resnet.default_distance == "cosine" and resnet.variant == "torchvision"
    expected = "torchvision" if resnet_mod.torchvision_available() else "mfrbench"
    assert resnet.implementation == expected
    images = _face_crops(lfw_mini, (224, 224), n=3)
    emb = resnet.embed(images, [None] * len(images))
    assert emb.shape == (3, 2048) and emb.dtype == np.float32
    assert np.isfinite(emb).all() and (emb >= 0).all()  # pooled ReLU outputs
    assert len({row.tobytes() for row in emb}) == 3  # different faces, different features
    again = ResNet50(weights=str(weights["resnet"]))  # deterministic across loads and calls
    assert np.array_equal(again.embed(images, [None] * 3), emb)
    assert resnet.embed([], []).shape == (0, 2048)
    assert not resnet.net.training
    # The plugin's features are the network's pooled layer4 output for normalised input.
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = (np.stack(images[:1]).astype(np.float32) / 255 - mean) / std
    with torch.inference_mode():
        direct = features(resnet.net, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(emb[:1], direct.numpy(), rtol=1e-5, atol=1e-5)


def test_facenet_embeds_lfw_faces(facenet, weights, lfw_mini):
    assert facenet.preprocess.size == (160, 160)
    assert facenet.preprocess.mean == (0.5, 0.5, 0.5)
    assert facenet.preprocess.std == pytest.approx((128 / 255,) * 3)
    assert facenet.num_classes == 8631  # logits head loaded strictly, unused
    images = _face_crops(lfw_mini, (160, 160), n=3)
    emb = facenet.embed(images, [None] * len(images))
    assert emb.shape == (3, 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in emb}) == 3
    assert np.array_equal(FaceNet(weights=str(weights["facenet"])).embed(images, [None] * 3), emb)
    # fixed_image_standardization: (p - 127.5) / 128, then the network.
    x = (np.stack(images).astype(np.float32) - 127.5) / 128.0
    with torch.inference_mode():
        direct = facenet.net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(emb, direct, atol=1e-5)


def test_identity_is_the_weights_file_digest(resnet, facenet, weights):
    for model, key in ((resnet, "resnet"), (facenet, "facenet")):
        ident = model.identity()
        digest = hashlib.sha256(weights[key].read_bytes()).hexdigest()
        assert (ident.name, ident.weights_digest) == (model.name, digest)
    assert resnet.identity().options == {"variant": "torchvision"}
    assert cache_key_of(resnet.identity(), resnet.preprocess) != cache_key_of(
        facenet.identity(), facenet.preprocess
    )


def test_default_preprocessing_is_the_declared_one(resnet, facenet):
    # what `mfrbench models --details` and docs/models.md show is what the plugin builds
    assert resnet.preprocess == ResNet50.info.preprocess
    assert facenet.preprocess == FaceNet.info.preprocess


def test_crop_options_keep_aspect(weights, lfw_mini):
    upper = FaceNet(weights=str(weights["facenet"]), crop="upper-half")
    assert upper.preprocess.size == (160, 80) and upper.preprocess.crop == "upper-half"
    face = _face_crops(lfw_mini, (160, 160), n=2)
    emb = upper.embed([f[:80] for f in face], [None, None])
    assert emb.shape == (2, 512) and np.isfinite(emb).all()
    proto = FaceNet(weights=str(weights["facenet"]), crop="protocol")
    assert proto.preprocess.size is None
    # Protocol renders (here 112x56 and a 190x250 real photo) are scaled to width 160.
    mixed = [cv2.resize(face[0][:80], (112, 56)), cv2.resize(face[1], (190, 250)), face[0]]
    got = proto.embed(mixed, [None] * 3)
    alone = np.concatenate([proto.embed([m], [None]) for m in mixed])
    np.testing.assert_allclose(got, alone, atol=1e-5)  # order kept across size groups
    sized = FaceNet(weights=str(weights["facenet"]), crop="protocol", size="128x128")
    assert sized.preprocess.size == (128, 128)
    # Eye-band renders (3:1) scaled to width 160 are 53 px high: too small for the network.
    with pytest.raises(UserError, match="160x53 input is too small"):
        proto.embed([cv2.resize(face[0], (120, 40))], [None])
    with pytest.raises(UserError, match="too small"):
        FaceNet(weights=str(weights["facenet"]), size="160x60")
    assert cache_key_of(upper.identity(), upper.preprocess) != cache_key_of(
        proto.identity(), proto.preprocess
    )


# --------------------------------------------------------------------------- weight files


def test_wrapped_and_prefixed_state_dicts_read_the_same(tmp_path):
    nn = torch.nn
    small = _seeded(lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), 5)
    plain = small.state_dict()
    wrapped = _save({"state_dict": plain, "epoch": 3}, tmp_path / "wrapped.pth")
    prefixed = _save({f"module.{k}": v for k, v in plain.items()}, tmp_path / "dp.pt")
    both = _save({"state_dict": {f"module.{k}": v for k, v in plain.items()}}, tmp_path / "b.pt")
    for path in (wrapped, prefixed, both):
        got = read_state_dict(path)
        assert list(got) == list(plain)
        assert all(torch.equal(got[k], plain[k]) for k in plain)


def test_wrapped_headless_file_loads_into_plugin(weights, tmp_path, lfw_mini):
    """{"state_dict": ...} with DataParallel's "module." prefix and no fc (a saved backbone)."""
    plain = torch.load(weights["resnet"], weights_only=True)
    backbone = {f"module.{k}": v for k, v in plain.items() if not k.startswith("fc.")}
    path = _save({"state_dict": backbone, "epoch": 7}, tmp_path / "w.pth")
    model = ResNet50(weights=str(path), size="112x112")
    ref = ResNet50(weights=str(weights["resnet"]), size="112x112")
    images = _face_crops(lfw_mini, (112, 112), n=1)
    assert np.array_equal(model.embed(images, [None]), ref.embed(images, [None]))
    assert model.identity().weights_digest != ref.identity().weights_digest  # another file


def test_numpy_pickle_without_batch_counters_loads(tmp_path):
    """VGGFace2 Caffe ports are pickles of numpy arrays without num_batches_tracked."""
    net = _seeded(lambda: ResNet50Net(num_classes=8631, variant="vggface2"), 4)
    arrays = {
        k: v.numpy().copy()
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "resnet50_ft_weight.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    state = read_state_dict(path)
    assert sorted(state) == sorted(arrays)
    fresh = ResNet50Net(num_classes=8631, variant="vggface2")
    load_weights(fresh, state, "pkl")
    got, want = fresh.state_dict(), net.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in arrays)


def test_pickles_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name in ("evil.pkl", "evil.pth"):
        path = tmp_path / name
        if name.endswith(".pkl"):
            path.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
        else:
            torch.save({"conv1.weight": Evil()}, path)
        with pytest.raises(UserError, match="cannot read weights file"):
            read_state_dict(path)


def test_vggface2_head_needs_an_explicit_variant(weights, lfw_mini):
    with pytest.raises(UserError, match="variant=vggface2") as err:
        ResNet50(weights=str(weights["resnet8631"]))
    assert "\n" not in str(err.value)
    small = {"size": "112x112"}  # smaller input, same code paths, 4x faster
    tv = ResNet50(weights=str(weights["resnet8631"]), variant="torchvision", **small)
    assert tv.num_classes == 8631
    images = _face_crops(lfw_mini, (112, 112), n=2)
    # Features come before fc: the same backbone with another head embeds identically.
    ref = ResNet50(weights=str(weights["resnet"]), **small)
    assert np.array_equal(tv.embed(images, [None] * 2), ref.embed(images, [None] * 2))
    vgg = ResNet50(weights=str(weights["resnet8631"]), variant="vggface2", **small)
    assert vgg.preprocess.color == "bgr" and vgg.preprocess.std == pytest.approx((1 / 255,) * 3)
    assert vgg.preprocess.mean == pytest.approx((91.4953 / 255, 103.8827 / 255, 131.0912 / 255))
    emb = vgg.embed(images, [None] * 2)
    assert emb.shape == (2, 2048) and np.isfinite(emb).all()
    assert not np.allclose(emb, tv.embed(images, [None] * 2))
    assert vgg.identity().options == {"variant": "vggface2"}
    assert vgg.cache_key() != tv.cache_key()


def test_wrong_keys_name_the_missing_ones(weights, tmp_path):
    plain = torch.load(weights["resnet"], weights_only=True)
    renamed = {k.replace("layer1.", "stage1."): v for k, v in plain.items()}
    path = _save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(UserError) as err:
        ResNet50(weights=str(path))
    msg = str(err.value)
    assert "missing" in msg and "layer1.0.conv1.weight" in msg
    assert "unexpected" in msg and "stage1.0.conv1.weight" in msg and "\n" not in msg
    # A facenet file given to resnet50 is refused, not half-loaded.
    with pytest.raises(UserError, match=r"missing \d+ keys: conv1\.weight"):
        ResNet50(weights=str(weights["facenet"]))
    bad_shape = dict(plain, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(UserError, match=r"wrong shapes: conv1\.weight \(64, 3, 3, 3\)"):
        ResNet50(weights=str(_save(bad_shape, tmp_path / "shape.pth")))
    with pytest.raises(UserError, match="not a tensor"):
        FaceNet(weights=str(_save({"a": 1}, tmp_path / "int.pt")))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read weights file"):
        FaceNet(weights=str(garbage))


# --------------------------------------------------------------------------- refusals and options


@pytest.mark.parametrize("cls", [ResNet50, FaceNet])
def test_refuses_without_weights(cls):
    ok, why = cls.check()
    assert not ok and why.startswith(f"{cls.name}: no weights: pass --model-opt weights=PATH")
    assert "\n" not in why and "random weights are never used" in why
    with pytest.raises(UserError, match="no weights") as err:
        cls()
    assert "\n" not in str(err.value)
    ok, why = cls.check(weights="/nonexistent/w.pth")
    assert not ok and "not found" in why
    with pytest.raises(UserError, match="not found"):
        cls(weights="/nonexistent/w.pth")


def test_check_accepts_a_weights_file(weights):
    assert ResNet50.check(weights=str(weights["resnet"]))[0]
    assert FaceNet.check(weights=str(weights["facenet"]), crop="upper-half")[0]


def test_download_needs_a_checksum(monkeypatch, tmp_path):
    monkeypatch.setenv("MFRBENCH_CACHE", str(tmp_path))
    ok, why = FaceNet.check(pretrained="vggface2")
    assert not ok and "sha256=" in why and "20180402-114759-vggface2.pt" in why
    with pytest.raises(UserError, match="no published checksum"):
        FaceNet(pretrained="vggface2")
    with pytest.raises(UserError, match="not 64 hex digits"):
        FaceNet(pretrained="vggface2", sha256="abc")
    with pytest.raises(UserError, match=r"pretrained='vgg'.*vggface2, casia-webface"):
        FaceNet(pretrained="vgg", sha256="0" * 64)
    with pytest.raises(UserError, match="not both"):
        FaceNet(pretrained="vggface2", weights="x.pt", sha256="0" * 64)
    # torchvision's file names carry a sha256 prefix: a digest that contradicts it is refused
    # before any download.
    with pytest.raises(UserError, match="starts with 0676ba61"):
        ResNet50(pretrained="imagenet", sha256="f" * 64)
    ok, why = ResNet50.check(pretrained="imagenet", sha256="0676ba61" + "0" * 56)
    assert ok and "downloads https://download.pytorch.org/models/resnet50-0676ba61.pth" in why


def test_pretrained_uses_the_verified_cached_file(monkeypatch, tmp_path, weights):
    """A cached download with the given sha256 is used without touching the network."""
    monkeypatch.setenv("MFRBENCH_CACHE", str(tmp_path))
    cached = tmp_path / "models" / "20180402-114759-vggface2.pt"
    cached.parent.mkdir()
    cached.write_bytes(weights["facenet"].read_bytes())
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    ok, why = FaceNet.check(pretrained="vggface2", sha256=digest)
    assert ok and "cached" in why
    model = FaceNet(pretrained="vggface2", sha256=f"sha256:{digest.upper()}")
    assert model.identity().weights_digest == digest and model.weights_path == cached


def test_bad_options_are_one_line_errors(weights):
    w = str(weights["facenet"])
    with pytest.raises(UserError, match="unknown option"):
        FaceNet(weights=w, crops="face")
    with pytest.raises(UserError, match="crop='frame'"):
        FaceNet(weights=w, crop="frame")
    with pytest.raises(UserError, match="size="):
        FaceNet(weights=w, size="big")
    with pytest.raises(UserError, match="variant='caffe'"):
        ResNet50(weights=str(weights["resnet"]), variant="caffe")
    with pytest.raises(UserError, match="sha256= applies to pretrained"):
        FaceNet(weights=w, sha256="0" * 64)
