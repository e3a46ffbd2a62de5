"""Tests for the Siamese-head training core: losses, head, safetensors, loop, curves."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mfrbench.errors import UserError
from mfrbench.evaluate import metrics
from mfrbench.train.checkpoint import (
    decode_safetensors,
    encode_safetensors,
    read_safetensors,
    write_safetensors,
)
from mfrbench.train.curves import plot_curves
from mfrbench.train.head import (
    HeadConfig,
    build_head,
    head_forward,
    l2_normalize_rows,
    load_head,
    param_count,
)
from mfrbench.train.loop import IndexPairs, NegativeSampler, TrainConfig, train_head
from mfrbench.train.losses import (
    LOSSES,
    CosineBCE,
    contrastive_loss,
    default_margin,
    sql2,
    triplet_loss,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------- losses


def test_sql2_is_squared_distance_of_unit_rows() -> None:
    a = t([[1, 0], [2, 0], [3, 4], [1, 1]])
    b = t([[0, 1], [-5, 0], [6, 8], [1, 0]])
    expected = [2.0, 4.0, 0.0, 2.0 - math.sqrt(2.0)]  # 2 - 2 cos
    assert sql2(a, b).tolist() == pytest.approx(expected)


def test_contrastive_loss_hand_values_and_margin() -> None:
    a, b = t([[1, 0], [1, 0]]), t([[0, 1], [-1, 0]])  # d = 2 and d = 4
    # genuine d=2 -> d^2 = 4; impostor d=4 -> (5 - 4)^2 = 1; mean 2.5
    assert float(contrastive_loss(a, b, torch.tensor([1, 0]))) == pytest.approx(2.5)
    # both impostors: (5-2)^2 = 9 and 1 -> 5
    assert float(contrastive_loss(a, b, torch.tensor([0, 0]))) == pytest.approx(5.0)
    # margin 3: the d=4 impostor is beyond the margin and contributes nothing
    assert float(contrastive_loss(a, b, torch.tensor([0, 0]), margin=3.0)) == pytest.approx(0.5)
    # default margin 5 > 4 = max d: even an antipodal impostor still has a gradient
    x = t([[1, 0]]).requires_grad_(True)
    loss = contrastive_loss(x, t([[-1, 1e-3]]), torch.tensor([0]))
    loss.backward()
    assert float(loss.detach()) > 0.99 and float(x.grad.abs().sum()) > 0
    x.grad = None
    contrastive_loss(x, t([[-1, 1e-3]]), torch.tensor([0]), margin=3.0).backward()
    assert float(x.grad.abs().sum()) == 0.0


def test_triplet_loss_hand_values() -> None:
    a, u, v = t([[1, 0]]), t([[1, 0]]), t([[0, 1]])
    assert float(triplet_loss(a, u, v)) == 0.0  # d(a,p)=0, d(a,n)=2: satisfied by 1.8
    assert float(triplet_loss(a, v, u)) == pytest.approx(2.2)  # 2 - 0 + 0.2
    assert float(triplet_loss(a, v, v)) == pytest.approx(0.2)  # equal distances: the margin
    assert float(triplet_loss(a, v, v, margin=0.5)) == pytest.approx(0.5)
    both = triplet_loss(t([[1, 0], [1, 0]]), t([[1, 0], [0, 1]]), t([[0, 1], [1, 0]]))
    assert float(both) == pytest.approx(1.1)  # mean of 0 and 2.2


def test_cosine_bce_hand_values_and_learnable() -> None:
    bce = CosineBCE()
    assert float(bce.scale.detach()) == 10.0 and float(bce.bias.detach()) == -5.0
    a, b = t([[1, 0], [1, 0]]).float(), t([[2, 0], [0, 3]]).float()  # cos 1 and 0
    logits = bce.logits(a, b).detach()
    assert logits.tolist() == pytest.approx([5.0, -5.0])
    # y=1 at logit 5 and y=0 at logit -5 both cost log(1 + e^-5)
    loss = bce(a, b, torch.tensor([1, 0]))
    assert float(loss.detach()) == pytest.approx(math.log1p(math.exp(-5.0)), rel=1e-5)
    wrong = bce(a, b, torch.tensor([0, 1]))
    assert float(wrong.detach()) == pytest.approx(math.log1p(math.exp(5.0)), rel=1e-5)
    wrong.backward()
    assert bce.scale.grad is not None and bce.bias.grad is not None


def test_default_margins() -> None:
    assert LOSSES == ("contrastive", "triplet", "cosine-bce")
    assert default_margin("contrastive") == 5.0
    assert default_margin("triplet") == 0.2
    assert default_margin("cosine-bce") is None
    with pytest.raises(UserError, match="unknown loss"):
        default_margin("hinge")


# ---------------------------------------------------------------- head


def test_head_shapes_and_param_count() -> None:
    cfg = HeadConfig(in_dim=128)
    head = build_head(cfg)
    # 128*512+512 (fc1) + 2*512 (norm1) + 512*256+256 (out)
    assert param_count(head) == 66048 + 1024 + 131328
    assert list(head.state_dict()) == [
        "fc1.weight",
        "fc1.bias",
        "norm1.weight",
        "norm1.bias",
        "out.weight",
        "out.bias",
    ]
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Dropout", "Linear"]
    assert cfg.out_dim == 256
    out = head_forward(head, np.random.default_rng(0).normal(size=(5, 128)))
    assert out.shape == (5, 256) and out.dtype == np.float32
    assert head_forward(head, np.zeros((0, 128))).shape == (0, 256)

    three = build_head(HeadConfig(16, (32, 24, 8), 0.0))
    assert [type(m).__name__ for m in three] == ["Linear", "LayerNorm", "ReLU", "Dropout"] * 2 + [
        "Linear"
    ]
    assert param_count(build_head(HeadConfig(16, (8,)))) == 16 * 8 + 8  # a single Linear


def test_head_config_validation() -> None:
    assert HeadConfig(4, [3, 2], 0).hidden == (3, 2)  # lists become tuples; dropout 0 allowed
    for kwargs in (
        {"in_dim": 0},
        {"in_dim": 4, "hidden": ()},
        {"in_dim": 4, "hidden": (8, 0)},
        {"in_dim": 4, "hidden": (8.5,)},
        {"in_dim": 4, "dropout": 1.0},
        {"in_dim": 4, "dropout": -0.1},
        {"in_dim": "4"},
    ):
        with pytest.raises(UserError):
            HeadConfig(**kwargs)
    cfg = HeadConfig(4, (3, 2), 0.25)
    assert HeadConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg
    with pytest.raises(UserError):
        HeadConfig.from_dict({"in_dim": 4})


def test_head_forward_eval_normalised_and_mode_restored() -> None:
    head = build_head(HeadConfig(6, (16, 4), 0.9), seed=3)
    x = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    head.train()
    a = head_forward(head, x)
    assert head.training  # mode restored
    # eval mode: no dropout, so batching changes at most the last bit of a matmul
    np.testing.assert_allclose(a, head_forward(head, x, batch=2), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a, head_forward(head, x))
    np.testing.assert_allclose(a, head_forward(head, 3.0 * x), rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="6"):
        head_forward(head, np.ones((2, 5)))
    # same seed, same initial weights; another seed, other weights
    same = build_head(HeadConfig(6, (16, 4), 0.9), seed=3).state_dict()
    other = build_head(HeadConfig(6, (16, 4), 0.9), seed=4).state_dict()
    assert all(torch.equal(v, same[k]) for k, v in head.state_dict().items())
    assert not torch.equal(head.state_dict()["fc1.weight"], other["fc1.weight"])


def test_load_head_round_trip_and_mismatch() -> None:
    cfg = HeadConfig(6, (5, 3))
    head = build_head(cfg, seed=7)
    state = {k: v.numpy() for k, v in head.state_dict().items()}
    loaded = load_head(cfg, state)
    x = np.random.default_rng(2).normal(size=(4, 6))
    np.testing.assert_array_equal(head_forward(head, x), head_forward(loaded, x))
    with pytest.raises(UserError, match="missing"):
        load_head(cfg, {k: v for k, v in state.items() if k != "out.bias"})
    with pytest.raises(UserError, match="shape"):
        load_head(HeadConfig(6, (5, 4)), state)


def test_l2_normalize_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize_rows(x), [[0.6, 0.8], [0.0, 0.0]])


# ---------------------------------------------------------------- safetensors


def test_safetensors_exact_bytes_of_a_small_file() -> None:
    data = encode_safetensors({"a": np.array([1.0, 2.0], dtype=np.float32)}, {"k": "v"})
    header = b'{"__metadata__":{"k":"v"},"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}}'
    header += b" " * (-len(header) % 8)
    assert len(header) % 8 == 0
    expected = struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0)
    assert data == expected


def test_safetensors_round_trip_and_deterministic_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "w": rng.normal(size=(3, 4)).astype(np.float32),
        "b": rng.normal(size=4).astype(">f4"),  # big-endian input is stored little-endian
        "d": rng.normal(size=(2, 2, 2)),
        "i": np.arange(5, dtype=np.int64),
        "m": np.array([True, False]),
        "u": np.arange(3, dtype=np.uint8),
        "h": np.ones(2, dtype=np.float16),
        "s": np.array(2.5, dtype=np.float32),
        "e": np.zeros((0, 3), dtype=np.float32),
        "nc": np.asfortranarray(rng.normal(size=(3, 2)).astype(np.float32)),
    }
    meta = {"format": "mfrbench-siamese", "note": "ünïcode"}
    p1, p2 = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    write_safetensors(p1, tensors, meta)
    write_safetensors(p2, dict(reversed(list(tensors.items()))), dict(reversed(meta.items())))
    assert p1.read_bytes() == p2.read_bytes()
    back, back_meta = read_safetensors(p1)
    assert back_meta == meta
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].shape == v.shape
        assert back[k].dtype == v.dtype.newbyteorder("=")
        np.testing.assert_array_equal(back[k], v)
    assert back["w"].flags.writeable
    (n,) = struct.unpack("<Q", p1.read_bytes()[:8])
    assert n % 8 == 0
    # without metadata there is no __metadata__ entry
    assert b"__metadata__" not in encode_safetensors({"x": np.zeros(1, np.float32)})
    assert decode_safetensors(encode_safetensors({"x": np.zeros(1, np.float32)}))[1] == {}


def test_safetensors_rejects_bad_files(tmp_path: Path) -> None:
    good = encode_safetensors({"a": np.arange(4, dtype=np.float32)}, {"k": "v"})
    (n,) = struct.unpack("<Q", good[:8])

    def header_file(header: dict, payload: bytes) -> bytes:
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + payload

    cases = {
        "short": good[:5],
        "overlong": struct.pack("<Q", 10**6) + good[8:],
        "truncated": good[:-1],
        "trailing": good + b"\0",
        "json": struct.pack("<Q", 4) + b"{nop",
        "notobj": struct.pack("<Q", 2) + b"[]",
        "dtype": header_file({"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, b"0000"),
        "size": header_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"0000"),
        "gap": header_file({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"00"),
        "meta": header_file({"__metadata__": {"k": 1}}, b""),
    }
    assert len(good) == 8 + n + 16
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(UserError, match=rf"{name}\.safetensors"):
            read_safetensors(path)
    with pytest.raises(UserError, match=r"missing\.safetensors"):
        read_safetensors(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="dtype"):
        encode_safetensors({"o": np.array(["x"], dtype=object)})
    with pytest.raises(ValueError, match="metadata"):
        encode_safetensors({}, {"k": 1})  # type: ignore[dict-item]


def test_safetensors_package_reads_our_file(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.arange(3)}
    path = tmp_path / "x.safetensors"
    write_safetensors(path, tensors, {"k": "v"})
    theirs = st.load_file(str(path))
    assert set(theirs) == set(tensors)
    for k, v in tensors.items():
        np.testing.assert_array_equal(theirs[k], v)


# ---------------------------------------------------------------- training

D = 32


def synthetic(seed: int = 0, n_ids: int = 80, per_id: int = 6):
    """Identity clusters; odd rows are "masked": half the dimensions replaced by noise plus a
    shared offset. Pairs are masked x unmasked, balanced, identity-disjoint train / val."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, D))
    offset = 3.0 * rng.normal(size=D // 2)
    rows, ids, masked = [], [], []
    for k in range(n_ids):
        for j in range(per_id):
            x = centres[k] + 0.3 * rng.normal(size=D)
            if j % 2:
                x[: D // 2] = 2.0 * rng.normal(size=D // 2) + offset
            rows.append(x)
            ids.append(f"id{k:03d}")
            masked.append(bool(j % 2))
    X = np.asarray(rows, dtype=np.float32)
    ids_arr, masked_arr = np.asarray(ids), np.asarray(masked)

    def pairs(chosen: np.ndarray) -> IndexPairs:
        rows_in = np.flatnonzero(np.isin(ids_arr, chosen))
        m, u = rows_in[masked_arr[rows_in]], rows_in[~masked_arr[rows_in]]
        ia, ib = np.repeat(m, u.size), np.tile(u, m.size)
        y = (ids_arr[ia] == ids_arr[ib]).astype(int)
        gen, imp = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        keep = np.sort(np.concatenate([gen, rng.choice(imp, gen.size, replace=False)]))
        return IndexPairs(ia[keep], ib[keep], y[keep])

    names = np.unique(ids_arr)
    cut = n_ids * 3 // 4
    return X, ids, pairs(names[:cut]), pairs(names[cut:])


@pytest.fixture(scope="module")
def problem():
    return synthetic()


def raw_accuracy(X: np.ndarray, ps: IndexPairs) -> float:
    xn = l2_normalize_rows(X)
    d = np.sum((xn[ps.ia] - xn[ps.ib]) ** 2, axis=1, dtype=np.float64)
    return metrics.best_threshold(ps.y, -d)[1]


@pytest.mark.parametrize("loss", LOSSES)
def test_training_lowers_loss_and_raises_val_accuracy(problem, loss: str) -> None:
    X, ids, train, val = problem
    cfg = TrainConfig(loss=loss, epochs=8, batch_size=32, lr=3e-3, seed=0)
    rows = []
    res = train_head(
        X, ids, train, val, HeadConfig(D, (64, 32), 0.1), cfg, run="r1", progress=rows.append
    )
    log = res.log
    assert rows == log and [r["epoch"] for r in log] == list(range(1, 9))
    assert set(log[0]) == {
        "run",
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_auc",
        "seconds",
    }
    assert log[0]["run"] == "r1"
    assert log[-1]["train_loss"] < 0.7 * log[0]["train_loss"]
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    base = raw_accuracy(X, val)
    assert res.best_val_accuracy >= base + 0.05
    assert res.best_val_accuracy >= log[0]["val_accuracy"] + 0.05
    assert log[-1]["val_auc"] > log[0]["val_auc"]
    # selection: the first epoch with the highest val accuracy, and its weights
    accs = [r["val_accuracy"] for r in log]
    assert res.best_epoch == 1 + int(np.argmax(accs))
    assert res.best_val_accuracy == max(accs)
    out = head_forward(load_head(HeadConfig(D, (64, 32), 0.1), res.state), X)
    d = sql2(torch.from_numpy(out[val.ia]), torch.from_numpy(out[val.ib])).numpy()
    acc = metrics.best_threshold(val.y, -d.astype(np.float64))[1]
    assert acc == pytest.approx(res.best_val_accuracy, abs=1.5 / len(val))
    assert all(v.dtype == np.float32 for v in res.state.values())
    if loss == "cosine-bce":
        assert set(res.loss_state) == {"scale", "bias"}
    else:
        assert res.loss_state == {}


def small(seed: int = 5):
    X, ids, train, val = synthetic(seed=seed, n_ids=16, per_id=4)
    return X, ids, train, val


def state_bytes(res) -> bytes:
    return encode_safetensors(res.state)


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_training_is_deterministic(loss: str) -> None:
    X, ids, train, val = small()
    head = HeadConfig(D, (16, 8), 0.5)
    cfg = TrainConfig(loss=loss, epochs=3, batch_size=8, lr=1e-3, seed=11)
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    threads = torch.get_num_threads()
    a = train_head(X, ids, train, val, head, cfg)
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    assert torch.get_num_threads() == threads
    torch.rand(5)  # disturbing the global RNG changes nothing
    b = train_head(X, ids, train, val, head, cfg)
    assert state_bytes(a) == state_bytes(b)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a.log]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b.log]
    c = train_head(X, ids, train, val, head, TrainConfig(**{**cfg.as_dict(), "seed": 12}))
    assert state_bytes(a) != state_bytes(c)


def test_training_without_val_and_without_dropout() -> None:
    X, ids, train, _ = small()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3)
    a = train_head(X, ids, train, None, HeadConfig(D, (16, 8), 0.0), cfg)
    b = train_head(X, ids, train, None, HeadConfig(D, (16, 8), 0.0), cfg)
    assert a.best_epoch == 2 and a.best_val_accuracy is None
    assert all(r["val_loss"] is None and r["val_accuracy"] is None for r in a.log)
    assert state_bytes(a) == state_bytes(b)


def test_triplet_negatives_stay_in_training_rows() -> None:
    codes = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    pool = np.array([0, 1, 2, 4, 5])  # rows 3, 6, 7, 8 are not training rows
    sampler = NegativeSampler(pool, codes)
    anchors = np.repeat(np.array([0, 1, 2, 4]), 500)
    neg = sampler.draw(anchors, np.random.default_rng(0))
    assert np.isin(neg, pool).all()
    assert (codes[neg] != codes[anchors]).all()
    # every valid candidate is drawn
    assert set(neg[anchors == 2].tolist()) == {0, 1, 4, 5}
    np.testing.assert_array_equal(neg, sampler.draw(anchors, np.random.default_rng(0)))
    with pytest.raises(UserError, match="another identity"):
        NegativeSampler(np.array([0, 1]), codes).check(np.array([0]))


def test_triplet_training_never_reads_rows_outside_pairs() -> None:
    X, ids, train, val = small()
    # rows of another identity that no pair uses, poisoned: reading one would give NaN losses
    X = np.concatenate([X, np.full((6, D), np.nan, dtype=np.float32)])
    ids = [*ids, *(["poison"] * 6)]
    cfg = TrainConfig(loss="triplet", epochs=3, batch_size=4, lr=1e-3)
    res = train_head(X, ids, train, val, HeadConfig(D, (16, 8)), cfg)
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in res.log)


def test_train_config_validation() -> None:
    assert TrainConfig().margin == 5.0
    assert TrainConfig(loss="triplet").margin == 0.2
    assert TrainConfig(loss="triplet", margin=0.5).margin == 0.5
    assert TrainConfig(loss="cosine-bce").margin is None
    for kwargs in (
        {"loss": "hinge"},
        {"loss": "cosine-bce", "margin": 1.0},
        {"margin": 0.0},
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"weight_decay": -1.0},
        {"seed": -1},
        {"epochs": 2.5},
    ):
        with pytest.raises(UserError):
            TrainConfig(**kwargs)


def test_train_head_input_errors() -> None:
    X, ids, train, val = small()
    head, cfg = HeadConfig(D, (8, 4)), TrainConfig(epochs=1)
    with pytest.raises(UserError, match="dimensions"):
        train_head(X, ids, train, val, HeadConfig(D + 1, (8, 4)), cfg)
    one_class = IndexPairs(val.ia[val.y == 1], val.ib[val.y == 1], val.y[val.y == 1])
    with pytest.raises(UserError, match="genuine and impostor"):
        train_head(X, ids, train, one_class, head, cfg)
    with pytest.raises(UserError, match="no training pairs"):
        train_head(X, ids, IndexPairs([], [], []), val, head, cfg)
    with pytest.raises(ValueError, match="indices"):
        train_head(X, ids, IndexPairs([0], [len(ids)], [1]), None, head, cfg)
    with pytest.raises(ValueError, match="differ in length"):
        IndexPairs([0, 1], [1], [1])
    with pytest.raises(ValueError, match="genuine"):
        IndexPairs([0], [1], [2])


# ---------------------------------------------------------------- curves


def test_plot_curves_writes_deterministic_pngs(tmp_path: Path) -> None:
    log = []
    for run, shift in (("fold-1", 0.0), ("fold-2", 0.1), ("final", 0.2)):
        for e in range(1, 6):
            has_val = run != "final"
            log.append(
                {
                    "run": run,
                    "epoch": e,
                    "train_loss": 2.0 / e + shift,
                    "val_loss": 2.5 / e + shift if has_val else None,
                    "val_accuracy": 0.6 + 0.05 * e - shift if has_val else None,
                    "val_auc": None,
                    "seconds": 0.1,
                }
            )
    paths = plot_curves(log, tmp_path / "a")
    out = tmp_path / "a"
    assert paths == {"loss": out / "loss.png", "accuracy": out / "accuracy.png"}
    again = plot_curves(list(log), tmp_path / "b")
    for key, path in paths.items():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert data == again[key].read_bytes()
    no_val = [r for r in log if r["run"] == "final"]
    other = plot_curves(no_val, tmp_path / "c")
    assert other["accuracy"].read_bytes() != paths["accuracy"].read_bytes()
