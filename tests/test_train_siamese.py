"""`mfrbench train siamese`: run planning (no leakage), training on real embeddings, the
``siamese:DIR`` plugin in the evaluator, determinism, and the CLI's user mistakes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_evaluate import _images

from mfrbench.errors import UserError
from mfrbench.pairs import lfw_folds, rmfrd_pairs
from mfrbench.protocol import freeze, write_protocol
from mfrbench.train.siamese import plan_runs, run_seed, train_siamese

# ----------------------------------------------------------------------------- fixtures


def _identity_sets(protocol: dict, idx) -> set[str]:
    images = {img["id"]: img for img in protocol["images"]}
    pairs = protocol["pairs"]
    return {images[pairs[i][s]]["identity"] for i in idx for s in ("a", "b")}


@pytest.fixture(scope="module")
def protocols(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A split (rmfrd-style) and a 4-fold protocol over 16 lfw-mini identities."""
    folder = tmp_path_factory.mktemp("siamese-protocols")
    refs = _images(lfw_mini, n_ids=16, per_id=3)
    split = freeze(
        rmfrd_pairs(refs, max_per_id=3, seed=0, test_frac=0.25, val_frac=0.25),
        name="mini-split",
        dataset="lfw-mini",
    )
    folds = freeze(
        lfw_folds(refs, n_folds=4, per_fold=4, pair_types=["masked-unmasked"], seed=0),
        name="mini-folds",
        dataset="lfw-mini",
    )
    out = {"root": lfw_mini, "cache": folder / "cache"}
    for name, proto in (("split", split), ("folds", folds)):
        path = folder / f"{name}.json"
        write_protocol(proto, path)
        out[name] = {"protocol": proto, "path": path}
    return out


def _dlib_or_skip() -> None:
    pytest.importorskip("dlib")
    from mfrbench.models.registry import create_model

    try:
        create_model("plugin:dlib-resnet", {})
    except (ImportError, UserError) as exc:
        pytest.skip(f"dlib-resnet plugin not available: {exc}")


def _train(protocols, which: str, out: Path, **kw) -> Any:
    kw.setdefault("hidden", (64, 32))
    kw.setdefault("epochs", 4)
    kw.setdefault("batch_size", 8)
    kw.setdefault("lr", 1e-3)
    kw.setdefault("plots", False)
    return train_siamese(
        protocols[which]["path"],
        root=protocols["root"],
        backbone="dlib-resnet",
        out=out,
        cache_dir=protocols["cache"],
        **kw,
    )


# ----------------------------------------------------------------------------- planning


def test_fold_plan_holds_out_each_fold_and_its_identities(protocols) -> None:
    proto = protocols["folds"]["protocol"]
    plan = plan_runs(proto, None, seed=0)
    assert plan.strategy == "folds"
    assert [r.name for r in plan.runs] == ["fold0", "fold1", "fold2", "fold3"]
    pairs = proto["pairs"]
    for run in plan.runs:
        held = [i for i, p in enumerate(pairs) if p["fold"] == run.eval_fold]
        assert not set(run.train_idx) & set(held) and not set(run.val_idx) & set(held)
        assert not _identity_sets(proto, run.train_idx) & _identity_sets(proto, held)
        assert not _identity_sets(proto, run.val_idx) & _identity_sets(proto, held)
        assert not _identity_sets(proto, run.train_idx) & _identity_sets(proto, run.val_idx)
        assert {pairs[i]["fold"] for i in run.val_idx} == {(run.eval_fold + 1) % 4}
        assert run.train_idx and run.val_idx
    with pytest.raises(UserError, match="has its own 4 folds"):
        plan_runs(proto, 5, seed=0)


def test_split_plan_uses_train_and_val_only_and_cv_is_identity_disjoint(protocols) -> None:
    proto = protocols["split"]["protocol"]
    pairs = proto["pairs"]
    plan = plan_runs(proto, 3, seed=1)
    assert [r.name for r in plan.runs] == ["cv0", "cv1", "cv2", "all"]
    final = plan.runs[-1]
    assert {pairs[i]["split"] for i in final.train_idx} == {"train"}
    assert {pairs[i]["split"] for i in final.val_idx} == {"val"}
    for run in plan.runs[:-1]:
        assert {pairs[i]["split"] for i in (*run.train_idx, *run.val_idx)} == {"train"}
        assert not _identity_sets(proto, run.train_idx) & _identity_sets(proto, run.val_idx)
        assert run.val_idx and run.train_idx
    # the three CV validation groups partition the within-group train pairs
    vals = [set(r.val_idx) for r in plan.runs[:-1]]
    assert not (vals[0] & vals[1]) and not (vals[1] & vals[2])
    assert plan_runs(proto, 3, seed=1).runs == plan.runs
    assert plan_runs(proto, 3, seed=2).runs != plan.runs
    assert run_seed(0, "fold0") != run_seed(0, "fold1") and run_seed(0, "a") == run_seed(0, "a")


def test_protocol_without_train_or_folds_is_refused(protocols) -> None:
    proto = json.loads(json.dumps(protocols["split"]["protocol"]))
    for p in proto["pairs"]:
        p["split"], p["fold"] = "test", None
    with pytest.raises(UserError, match="no train split and no test folds"):
        plan_runs(proto, None, seed=0)


# ----------------------------------------------------------------------------- end to end


def test_train_on_real_embeddings_then_evaluate(protocols, tmp_path: Path) -> None:
    """The CI check: a tiny head on lfw-mini dlib embeddings; the loss falls; eval reads it."""
    _dlib_or_skip()
    from mfrbench.evaluate.compare import compare_table
    from mfrbench.evaluate.runner import evaluate

    result = _train(protocols, "folds", tmp_path / "m1", epochs=6)
    log = pq.read_table(tmp_path / "m1" / "train_log.parquet").to_pylist()
    for head in ("fold0", "fold1", "fold2", "fold3"):
        losses = [r["train_loss"] for r in log if r["run"] == head]
        assert len(losses) == 6 and losses[-1] < losses[0], (head, losses)
    config = json.loads((tmp_path / "m1" / "siamese.json").read_text())
    assert config["strategy"] == "folds" and len(config["heads"]) == 4
    assert config["weights"]["sha256"] == result.checkpoint_sha256

    # determinism: same protocol, options and seed -> same checkpoint bytes; another seed differs
    again = _train(protocols, "folds", tmp_path / "m2", epochs=6)
    assert again.checkpoint_sha256 == result.checkpoint_sha256
    other = _train(protocols, "folds", tmp_path / "m3", epochs=6, seed=1)
    assert other.checkpoint_sha256 != result.checkpoint_sha256

    # the trained model is an embedding plugin: per-fold heads score their own fold
    kw = {"root": protocols["root"], "cache_dir": protocols["cache"], "n_boot": 0, "plots": False}
    run = evaluate(
        protocols["folds"]["path"], f"siamese:{tmp_path / 'm1'}", out_dir=tmp_path / "r", **kw
    )
    rep = run.report
    assert rep["model"]["id"].startswith("siamese@")
    assert "per held-out fold" in rep["model"]["fit"]["how"]
    assert rep["embedding"]["computed"] == 0  # backbone embeddings all come from the cache
    assert rep["pairs"]["scored"] == rep["pairs"]["evaluated"]
    base = evaluate(protocols["folds"]["path"], "plugin:dlib-resnet", out_dir=tmp_path / "r", **kw)
    table = compare_table([base.report, rep])
    assert "dlib-resnet@" in table and "siamese@" in table

    # a per-fold model is tied to its protocol; one head elsewhere must not have seen test ids
    with pytest.raises(UserError, match="one head per fold of the protocol"):
        evaluate(
            protocols["split"]["path"], f"siamese:{tmp_path / 'm1'}", out_dir=tmp_path / "r", **kw
        )
    with pytest.raises(UserError, match="would leak"):
        evaluate(
            protocols["folds"]["path"],
            f"siamese:{tmp_path / 'm1'}",
            {"head": "fold0"},
            out_dir=tmp_path / "r",
            **kw,
        )


def test_split_protocol_with_cv_and_each_loss(protocols, tmp_path: Path) -> None:
    _dlib_or_skip()
    from mfrbench.evaluate.runner import evaluate

    for loss in ("contrastive", "triplet", "cosine-bce"):
        out = tmp_path / loss
        result = _train(protocols, "split", out, loss=loss, folds=2 if loss == "triplet" else None)
        config = result.config
        assert [h["name"] for h in config["heads"]] == ["all"]
        assert config["distance"] == ("cosine" if loss == "cosine-bce" else "sql2")
        if loss == "triplet":
            assert config["cross_validation"]["folds"] == 2
            runs = {r["run"] for r in result.log}
            assert runs == {"cv0", "cv1", "all"}
        seen = json.loads((out / "identities.json").read_text())["all"]
        proto = protocols["split"]["protocol"]
        test_idx = [i for i, p in enumerate(proto["pairs"]) if p["split"] == "test"]
        assert not set(seen) & _identity_sets(proto, test_idx)
        rep = evaluate(
            protocols["split"]["path"],
            f"siamese:{out}",
            root=protocols["root"],
            cache_dir=protocols["cache"],
            out_dir=tmp_path / "r",
            n_boot=0,
            plots=False,
        ).report
        assert rep["distance"] == config["distance"]
        assert rep["verification"]["overall"]["n_pairs"] > 0


def test_tampered_checkpoint_and_missing_folder_are_one_line_errors(protocols, tmp_path) -> None:
    _dlib_or_skip()
    from mfrbench.models.registry import create_model

    _train(protocols, "split", tmp_path / "m", epochs=1)
    create_model(f"siamese:{tmp_path / 'm'}")
    weights = tmp_path / "m" / "heads.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its sha256"):
        create_model(f"siamese:{tmp_path / 'm'}")
    with pytest.raises(UserError, match="no such folder"):
        create_model(f"siamese:{tmp_path / 'none'}")
    with pytest.raises(UserError, match=r"no siamese\.json"):
        create_model(f"siamese:{tmp_path}")


def test_cli_train_and_user_mistakes(protocols, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mfrbench.cli import app

    base = [
        "train",
        "siamese",
        "--protocol",
        str(protocols["folds"]["path"]),
        "--root",
        str(protocols["root"]),
        "--backbone",
        "dlib-resnet",
        "--out",
        str(tmp_path / "cli"),
        "--cache-dir",
        str(protocols["cache"]),
    ]
    runner = CliRunner()
    for extra, message in (
        (["--head", "512,x"], "--head expects"),
        (["--folds", "5"], "has its own 4 folds"),
        (["--loss", "hinge"], "loss"),
        (["--backbone-opt", "novalue"], "--backbone-opt expects key=value"),
    ):
        result = runner.invoke(app, base + extra)
        assert result.exit_code != 0 and isinstance(result.exception, UserError), result.output
        assert message in str(result.exception)
    _dlib_or_skip()
    result = runner.invoke(app, [*base, "--epochs", "2", "--head", "32,16", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "checkpoint sha256" in result.output and "siamese:" in result.output
    digest = hashlib.sha256((tmp_path / "cli" / "heads.safetensors").read_bytes()).hexdigest()
    assert digest in result.output


def test_unfreeze_last_finetunes_resnet50_blocks_end_to_end(protocols, tmp_path: Path) -> None:
    """--unfreeze-last on a (random-weight) ResNet-50: tuned blocks travel with each head."""
    import torch

    from mfrbench.evaluate.runner import evaluate
    from mfrbench.models.nets.resnet import resnet50
    from mfrbench.models.registry import create_model
    from mfrbench.train.checkpoint import read_safetensors

    torch.manual_seed(0)
    weights = tmp_path / "resnet50-random.pth"
    torch.save(resnet50().state_dict(), weights)
    options = {"weights": str(weights), "crop": "protocol", "size": "64x32"}
    with pytest.raises(UserError, match="--unfreeze-last must be between 1 and 5"):
        train_siamese(protocols["split"]["path"], root=protocols["root"], backbone="resnet50",
                      backbone_options=options, out=tmp_path / "bad", unfreeze_last=9)  # fmt: skip
    with pytest.raises(UserError, match="cannot be fine-tuned"):
        _train(protocols, "split", tmp_path / "bad", unfreeze_last=1)  # dlib: not a torch net
    out = tmp_path / "tuned"
    result = train_siamese(
        protocols["split"]["path"],
        root=protocols["root"],
        backbone="resnet50",
        backbone_options=options,
        out=out,
        hidden=(32, 16),
        epochs=1,
        batch_size=16,
        unfreeze_last=1,
        cache_dir=protocols["cache"],
        plots=False,
    )
    assert result.config["finetune"]["blocks"] == ["layer4"]
    tensors, _ = read_safetensors(out / "heads.safetensors")
    tuned = {k for k in tensors if k.startswith("all/backbone/")}
    assert tuned and all(k.startswith("all/backbone/layer4.") for k in tuned)
    model = create_model(f"siamese:{out}")
    base = create_model("plugin:resnet50", options)
    assert model.backbone_for("all").cache_key() != base.cache_key()
    rep = evaluate(
        protocols["split"]["path"],
        f"siamese:{out}",
        root=protocols["root"],
        cache_dir=protocols["cache"],
        out_dir=tmp_path / "r",
        n_boot=0,
        plots=False,
    ).report
    assert rep["embedding"]["computed"] > 0  # the tuned backbone has its own cache
    assert rep["pairs"]["scored"] == rep["pairs"]["evaluated"]
