"""Fine-tuning a backbone's last blocks with a head (``--unfreeze-last N``), on the CPU.

The networks have random weights (saved to files and loaded through ``weights=PATH``, as real
ones would be) whose BatchNorm statistics are calibrated on 16 lfw-mini faces that the tests
never train on: with torch's default statistics a random ResNet-50 maps every face to almost
the same direction (cosine > 0.99), and nothing could be learnt. Inputs are small (ResNet-50
at 64x64, FaceNet at 80x80) to keep the file fast; the mechanics do not depend on the size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mfrbench.errors import UserError
from mfrbench.evaluate import metrics
from mfrbench.models.base import EmbeddingModel, Preprocess, finetuned_digest, to_tensor
from mfrbench.models.facenet import FaceNet
from mfrbench.models.nets.inception_resnet_v1 import InceptionResnetV1
from mfrbench.models.nets.resnet import ResNet50 as ResNet50Net
from mfrbench.models.resnet50 import ResNet50
from mfrbench.train.finetune import FineTuneResult, finetune
from mfrbench.train.head import HeadConfig, head_forward, load_head
from mfrbench.train.loop import IndexPairs, TrainConfig
from mfrbench.train.losses import contrastive_loss

RESNET_SIZE, FACENET_SIZE = 64, 80
# 4 identities x 2 images: rows 2k and 2k+1 are one person.
IA = [0, 2, 4, 6, 0, 1, 2, 3, 4, 5, 0, 6]
IB = [1, 3, 5, 7, 2, 4, 6, 7, 1, 0, 7, 2]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread (fast on a busy 2-core machine; determinism is per thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _crop(path: Path, size: int) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return cv2.resize(rgb[62:188, 62:188], (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def faces(lfw_mini: Path) -> dict:
    """8 faces of 4 people (2 each) to train on, and 16 faces of 16 others for calibration."""
    people = sorted(p for p in lfw_mini.iterdir() if p.is_dir())
    pairs = [sorted(p.glob("*.jpg"))[:2] for p in people]
    pairs = [ps for ps in pairs if len(ps) == 2][:4]
    train = [q for ps in pairs for q in ps]
    used = {p.parent for p in train}
    calib = [sorted(p.glob("*.jpg"))[0] for p in people if p not in used][:16]
    return {"train": train, "ids": [p.parent.name for p in train], "calib": calib}


def _calibrated(build, seed: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Seeded random network whose BatchNorm statistics are those of the batch ``x``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives exactly its statistics
    with torch.no_grad():
        net.train()(x)
    return net.state_dict()


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory, faces) -> Path:
    pre = Preprocess(
        (RESNET_SIZE,) * 2, "rgb", ResNet50.preprocess.mean, ResNet50.preprocess.std, "face"
    )
    x = torch.from_numpy(to_tensor([_crop(p, RESNET_SIZE) for p in faces["calib"]], pre))
    path = tmp_path_factory.mktemp("w") / "resnet50.pth"
    torch.save(_calibrated(ResNet50Net, 0, x), path)
    return path


@pytest.fixture(scope="module")
def facenet_weights(tmp_path_factory, faces) -> Path:
    pre = Preprocess(
        (FACENET_SIZE,) * 2, "rgb", FaceNet.preprocess.mean, FaceNet.preprocess.std, "face"
    )
    x = torch.from_numpy(to_tensor([_crop(p, FACENET_SIZE) for p in faces["calib"]], pre))
    path = tmp_path_factory.mktemp("w") / "facenet.pt"
    torch.save(_calibrated(InceptionResnetV1, 1, x), path)
    return path


def _resnet(path: Path, **opts) -> ResNet50:
    return ResNet50(weights=str(path), size=f"{RESNET_SIZE}x{RESNET_SIZE}", **opts)


def _facenet(path: Path, **opts) -> FaceNet:
    opts.setdefault("size", f"{FACENET_SIZE}x{FACENET_SIZE}")
    return FaceNet(weights=str(path), **opts)


def _pairs(ids: list[str]) -> IndexPairs:
    return IndexPairs(IA, IB, [int(ids[a] == ids[b]) for a, b in zip(IA, IB, strict=True)])


def _digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode() + np.ascontiguousarray(state[k]).tobytes())
    return h.hexdigest()


def _state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.net.state_dict().items()}


def _reproduce(model, images, ps: IndexPairs, result: FineTuneResult) -> tuple[float, float]:
    """Val loss and accuracy of the inference path: fine-tuned ``embed``, then ``head_forward``."""
    model.load_finetuned(result.backbone_state)
    emb = head_forward(
        load_head(result.head, result.state), model.embed(images, [None] * len(images))
    )
    ea, eb = torch.from_numpy(emb[ps.ia]), torch.from_numpy(emb[ps.ib])
    loss = contrastive_loss(ea, eb, torch.from_numpy(ps.y), result.config.margin)
    score = -torch.sum(
        (torch.nn.functional.normalize(ea) - torch.nn.functional.normalize(eb)) ** 2, 1
    )
    _, acc = metrics.best_threshold(ps.y, score.numpy().astype(np.float64))
    return float(loss), float(acc)


# ------------------------------------------------------------------------------- the contract


def test_split_forward_equals_embed_at_every_block(resnet_weights, facenet_weights, faces):
    for model, size in (
        (_resnet(resnet_weights), RESNET_SIZE),
        (_facenet(facenet_weights), FACENET_SIZE),
    ):
        images = [_crop(p, size) for p in faces["train"][:3]]
        want = model.embed(images, [None] * 3)
        x = torch.from_numpy(to_tensor(images, model.preprocess))
        n = len(model.blocks())
        with torch.no_grad():
            for k in range(n + 1):
                got = model.forward_from(model.forward_until(x, k), k).numpy()
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="stop"):
            model.forward_until(x, n + 1)


def test_blocks_partition_the_network(resnet_weights, facenet_weights):
    resnet, facenet = _resnet(resnet_weights), _facenet(facenet_weights)
    assert [n for n, _ in resnet.blocks()] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert [n for n, _ in facenet.blocks()] == [
        "stem",
        "repeat_1",
        "mixed_6a",
        "repeat_2",
        "mixed_7a",
        "repeat_3",
        "block8",
        "embedding",
    ]
    for model, unused in ((resnet, "fc."), (facenet, "logits.")):
        keys = model.block_keys()
        flat = [k for ks in keys for k in ks]
        assert len(flat) == len(set(flat))  # disjoint
        # every entry of the network belongs to a block, except the unused classifier
        assert set(flat) == {k for k in model.net.state_dict() if not k.startswith(unused)}
    state = resnet.finetuned_state(1)
    assert set(state) == {k for k in resnet.net.state_dict() if k.startswith("layer4.")}
    assert state["layer4.0.bn1.num_batches_tracked"].dtype == np.int64
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    want = {"last_linear.weight"} | {f"last_bn.{leaf}" for leaf in bn}
    assert set(facenet.finetuned_state(1)) == want
    with pytest.raises(ValueError):
        resnet.finetuned_state(0)


# ------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def resnet_runs(resnet_weights, faces):
    """unfreeze_last=1 on ResNet-50 twice (determinism), checking the network during training."""
    model = _resnet(resnet_weights)
    images = [_crop(p, RESNET_SIZE) for p in faces["train"]]
    ps = _pairs(faces["ids"])
    before = _state(model)
    seen: list[dict] = []

    def during(row: dict) -> None:  # the net holds the training weights at this point
        now = _state(model)
        seen.append({k: not np.array_equal(now[k], before[k]) for k in now})

    head = HeadConfig(2048, (64, 32), 0.0)
    cfg = TrainConfig(epochs=2, batch_size=len(ps), lr=1e-4, margin=2.0, seed=5)
    runs = [
        finetune(model, images, ps, ps, faces["ids"], head, cfg, 1, run="r", progress=during)
        for _ in range(2)
    ]
    return {
        "model": model,
        "images": images,
        "pairs": ps,
        "before": before,
        "seen": seen,
        "runs": runs,
    }


def test_resnet_trains_only_the_unfrozen_block(resnet_runs):
    result = resnet_runs["runs"][0]
    assert isinstance(result, FineTuneResult)
    assert result.unfrozen == ("layer4",) and result.device == "cpu"
    assert [r["epoch"] for r in result.log] == [1, 2] and result.log[0]["run"] == "r"
    assert result.prefix_bytes == 8 * 1024 * 4 * 4 * 4  # layer3 output, 1024 x 4 x 4 float32
    first, second = result.log
    assert second["train_loss"] < 0.5 * first["train_loss"]  # one full-batch step per epoch
    assert second["val_loss"] < first["val_loss"] and result.best_epoch == 2
    # val (no autograd, chunked) and training (autograd) see the same network: after epoch 1's
    # step, epoch 1's val loss is epoch 2's training loss on the same pairs (no dropout)
    assert second["train_loss"] == pytest.approx(first["val_loss"], rel=1e-5)
    before = resnet_runs["before"]
    for changed in resnet_runs["seen"]:  # during training, after every epoch
        moved = {k for k, c in changed.items() if c}
        assert moved and all(k.startswith("layer4.") for k in moved)
        assert not any(
            k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in moved
        )
    state = result.backbone_state
    assert set(state) == {k for k in before if k.startswith("layer4.")}
    assert not np.array_equal(state["layer4.2.conv3.weight"], before["layer4.2.conv3.weight"])
    assert not np.array_equal(state["layer4.0.bn1.weight"], before["layer4.0.bn1.weight"])
    for k in state:
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            np.testing.assert_array_equal(state[k], before[k])
    # the model itself is left as it was
    after = _state(resnet_runs["model"])
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert not any(p.requires_grad is False for p in resnet_runs["model"].net.parameters())


def test_resnet_finetune_is_deterministic(resnet_runs):
    a, b = resnet_runs["runs"]
    assert _digest(a.backbone_state) == _digest(b.backbone_state)
    assert _digest(a.state) == _digest(b.state)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a.log]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b.log]


def test_load_finetuned_changes_identity_and_reproduces_training(resnet_runs, resnet_weights):
    result = resnet_runs["runs"][0]
    model = _resnet(resnet_weights)
    key, digest = model.cache_key(), model.weights_digest
    loss, acc = _reproduce(model, resnet_runs["images"], resnet_runs["pairs"], result)
    best = result.log[result.best_epoch - 1]
    assert acc == pytest.approx(best["val_accuracy"]) == pytest.approx(result.best_val_accuracy)
    assert loss == pytest.approx(best["val_loss"], rel=1e-4)
    assert model.cache_key() != key
    assert model.base_weights_digest == digest
    assert model.weights_digest == finetuned_digest(digest, result.backbone_state)
    assert model.identity().options == {"variant": "torchvision", "finetuned": ["layer4"]}
    # a second model loaded the same way shares the cache key; the original's is unchanged
    twin = _resnet(resnet_weights)
    twin.load_finetuned(result.backbone_state)
    assert twin.cache_key() == model.cache_key()
    twin.load_finetuned(result.backbone_state)  # loading again changes nothing
    assert twin.cache_key() == model.cache_key()
    assert _resnet(resnet_weights).cache_key() == key


def test_load_finetuned_refuses_mismatched_states(resnet_runs, resnet_weights):
    model = _resnet(resnet_weights)
    state = dict(resnet_runs["runs"][0].backbone_state)
    with pytest.raises(UserError, match="last n blocks"):
        model.load_finetuned({k: v for k, v in state.items() if k != "layer4.1.conv2.weight"})
    with pytest.raises(UserError, match="lacks"):
        model.load_finetuned({**state, "layer9.weight": np.zeros(3, np.float32)})
    with pytest.raises(UserError, match="shape"):
        model.load_finetuned({**state, "layer4.0.bn1.bias": np.zeros(3, np.float32)})
    assert model.finetuned_blocks == ()  # nothing was loaded


def test_facenet_finetune_lowers_the_loss_and_reproduces(facenet_weights, faces):
    model = _facenet(facenet_weights)
    images = [_crop(p, FACENET_SIZE) for p in faces["train"]]
    ps = _pairs(faces["ids"])
    head = HeadConfig(512, (32,), 0.0)
    cfg = TrainConfig(epochs=6, batch_size=len(ps), lr=3e-4, margin=2.0, seed=1)
    result = finetune(model, images, ps, ps, faces["ids"], head, cfg, 2)
    assert result.unfrozen == ("block8", "embedding")
    losses = [r["train_loss"] for r in result.log]
    # overfits 12 pairs of 8 faces: 1.36 -> 0.025 here; a loaded machine once gave 1.40 -> 0.14
    assert losses[-1] < 0.2 * losses[0]
    assert result.best_val_accuracy == 1.0
    again = finetune(model, images, ps, ps, faces["ids"], head, cfg, 2)
    assert _digest(again.backbone_state) == _digest(result.backbone_state)
    assert _digest(again.state) == _digest(result.state)
    loss, acc = _reproduce(_facenet(facenet_weights), images, ps, result)
    assert acc == result.best_val_accuracy
    assert loss == pytest.approx(result.log[result.best_epoch - 1]["val_loss"], rel=1e-4)


def test_images_of_several_sizes_are_grouped(facenet_weights, faces):
    """crop=protocol: each image scaled to width 160 keeping its aspect (two sizes here)."""
    model = _facenet(facenet_weights, crop="protocol", size=None)
    images = []
    for i, p in enumerate(faces["train"]):
        rgb = np.asarray(Image.open(p).convert("RGB"))
        images.append(rgb[62:188, 62:188] if i % 3 else rgb[50:200, 62:188])  # 126x126, 126x150
    ps = _pairs(faces["ids"])
    cfg = TrainConfig(epochs=1, batch_size=6, lr=1e-3, margin=2.0)
    result = finetune(model, images, ps, ps, faces["ids"], HeadConfig(512, (16,), 0.0), cfg, 1)
    # the cache holds block8's output (embedding's input) per image, at each image's size
    fitted = model.fit_inputs(images)
    assert {im.shape for im in fitted} == {(160, 160, 3), (190, 160, 3)}
    with torch.no_grad():
        sizes = {
            im.shape: model.forward_until(torch.zeros(1, 3, *im.shape[:2]), 7).numel()
            for im in fitted
        }
    assert result.prefix_bytes == 4 * sum(sizes[im.shape] for im in fitted)
    loss, acc = _reproduce(
        _facenet(facenet_weights, crop="protocol", size=None), images, ps, result
    )
    assert loss == pytest.approx(result.log[0]["val_loss"], rel=1e-4)
    assert acc == result.log[0]["val_accuracy"]


def test_without_val_the_last_epoch_is_kept_and_threads_are_restored(facenet_weights, faces):
    model = _facenet(facenet_weights)
    images = [_crop(p, FACENET_SIZE) for p in faces["train"]]
    ps, ids = _pairs(faces["ids"]), faces["ids"]
    cfg = TrainConfig(epochs=2, batch_size=5, loss="triplet", seed=3)
    torch.set_num_threads(2)
    try:
        result = finetune(model, images, ps, None, ids, HeadConfig(512, (16,)), cfg, 1, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert result.best_epoch == 2 and result.best_val_accuracy is None
    assert all(r["val_loss"] is None and r["val_accuracy"] is None for r in result.log)
    assert set(result.backbone_state) == set(model.finetuned_state(1))


# ------------------------------------------------------------------------------- refusals


class _Plain(EmbeddingModel):
    name = "plain"
    preprocess = Preprocess((8, 8), "rgb", (0.5,), (0.5,), "face")
    embedding_size = 4


def test_refusals(facenet_weights, faces):
    model = _facenet(facenet_weights)
    images = [_crop(p, FACENET_SIZE) for p in faces["train"]]
    ps, ids = _pairs(faces["ids"]), faces["ids"]
    head, cfg = HeadConfig(512, (8,), 0.0), TrainConfig(epochs=1)
    with pytest.raises(UserError, match="cannot be fine-tuned"):
        finetune(_Plain(), images, ps, None, ids, HeadConfig(4, (8,)), cfg, 1)
    for n in (0, 9, True, 1.5):
        with pytest.raises(UserError, match="between 1 and 8"):
            finetune(model, images, ps, None, ids, head, cfg, n)
    with pytest.raises(UserError, match="512 dimensions"):
        finetune(model, images, ps, None, ids, HeadConfig(2048, (8,)), cfg, 1)
    with pytest.raises(UserError, match="device"):
        finetune(model, images, ps, None, ids, head, cfg, 1, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            finetune(model, images, ps, None, ids, head, cfg, 1, device="cuda")
    with pytest.raises(UserError, match="both genuine and impostor"):
        finetune(model, images, ps, IndexPairs([0], [1], [1]), ids, head, cfg, 1)
