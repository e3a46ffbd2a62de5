"""Headline numbers a reader can cite (issue 15): the honest accuracy first, the protocol's
own pair type before its control, never a pooled ``all`` first; comparisons that name runs,
refuse different protocols, and test differences on the same pairs."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_evaluate import FakeModel, _images, _oracle_table
from typer.testing import CliRunner

from mfrbench.cli.main import app
from mfrbench.evaluate import headline as H
from mfrbench.evaluate.paired import mcnemar_exact
from mfrbench.evaluate.report import render_markdown
from mfrbench.evaluate.runner import evaluate
from mfrbench.protocol import freeze, write_protocol


def _protocol(lfw_mini: Path, tmp: Path, kind: str) -> dict[str, Any]:
    from mfrbench.pairs import lfw_folds, rmfrd_pairs

    images = _images(lfw_mini, n_ids=30, per_id=4)
    if kind == "split":
        pairset = rmfrd_pairs(
            [im for im in images if im["variant"] in ("unmasked", "mask-blue")],
            max_per_id=4,
            seed=0,
            test_frac=0.4,
            val_frac=0.3,
        )
    else:
        types = ["masked-unmasked", "unmasked-unmasked"]
        pairset = lfw_folds(images, n_folds=4, per_fold=8, pair_types=types, seed=0)
    protocol = freeze(pairset, name=f"headline-{kind}", dataset="lfw-mini")
    path = tmp / f"{kind}.json"
    write_protocol(protocol, path)
    return {"protocol": protocol, "path": path, "root": lfw_mini}


@pytest.fixture(scope="module")
def runs(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """On a split and a fold protocol: a noisy oracle (a perfect model plus noise) and a
    random model, each one run."""
    tmp = tmp_path_factory.mktemp("headline")
    out: dict[str, Any] = {}
    for kind in ("split", "folds"):
        proto = _protocol(lfw_mini, tmp, kind)
        table = _oracle_table(proto)
        noisy = {k: v + 0.9 * _noise(k) for k, v in table.items()}
        for name, model in (("oracle", FakeModel(noisy)), ("random", FakeModel(tag="random"))):
            out[kind, name] = evaluate(
                proto["path"],
                model,
                root=lfw_mini,
                out_dir=tmp / f"results-{kind}-{name}",
                n_boot=20,
                plots=False,
                cache_dir=tmp / "cache",
            )
        out[kind] = proto
    return out


def _noise(key: str):
    import numpy as np

    return np.random.default_rng(int(key[:8], 16)).normal(size=8).astype(np.float32)


def test_split_protocol_leads_with_the_val_chosen_threshold(runs) -> None:
    run = runs["split", "oracle"]
    ver = run.report["verification"]
    block = ver["by_pair_type"]["masked-unmasked"]
    vt = block["val_threshold"]
    assert block["accuracy"]["optimistic"] and vt["n_test"] == block["n_pairs"]
    head = ver["headline"]
    assert head["pair_set"] == "masked-unmasked" and head["accuracy"]["how"] == H.VAL
    assert head["accuracy"]["value"] == vt["accuracy"]
    assert head["accuracy"]["optimistic"] == block["accuracy"]["value"]
    assert vt["accuracy"] <= block["accuracy"]["value"]  # the best on test is never worse
    lo, hi = vt["ci95"]
    assert lo <= vt["accuracy"] <= hi
    md = render_markdown(run.report)
    first = md.split("## Verification", 1)[1]
    assert f"Headline: masked-unmasked accuracy {100 * vt['accuracy']:.2f}% (val thr.)" in first
    assert "(opt.)" not in md.split("## Operating points", 1)[0]  # the table says val thr.
    table = [line for line in md.splitlines() if line.startswith("| masked-unmasked |")]
    assert table and f"{100 * vt['accuracy']:.2f}% (val thr.)" in table[0]
    assert "| all " not in first.split("## Operating points")[0]  # one pair type: no pooled row
    assert "none (accuracy at the best threshold" not in md
    assert "train pairs, for fitting, not scored" in md
    assert "## Pairs without a score" not in md  # train pairs are not failures
    assert "- preprocessing: RGB; no mean/std; crop protocol" in md  # the whole preprocessing


def test_fold_protocol_leads_with_the_masked_type_and_labels_the_control(runs) -> None:
    run = runs["folds", "oracle"]
    ver = run.report["verification"]
    assert ver["headline"]["pair_set"] == "masked-unmasked"
    assert ver["headline"]["accuracy"]["how"] == H.FOLDS
    assert ver["headline"]["control"]["pair_set"] == "unmasked-unmasked"
    md = render_markdown(run.report)
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ")]
    body = rows[rows.index("| pairs") + 1 :]  # after the header
    assert body[:3] == [
        "| masked-unmasked",
        "| unmasked-unmasked (control)",
        "| all pair types pooled",
    ]
    assert "± is the standard error over folds" in md


def test_terminal_summary_leads_with_the_headline(runs, tmp_path: Path) -> None:
    from mfrbench.cli import evaluate as cli_eval
    from mfrbench.cli.common import out_console

    run = runs["folds", "oracle"]
    with out_console.capture() as cap:
        cli_eval.print_summary(run.report, run.out_dir)
    text = cap.get()
    assert text.lstrip().startswith("Headline: masked-unmasked accuracy")
    lines = [line for line in text.splitlines() if "│" in line]
    assert lines[0].startswith(" masked-unma") and "(control)" in text
    assert not any(line.startswith(" all ") for line in lines)
    assert "(k-fold)" in text  # the accuracy column says how it was obtained


def test_rank_k_is_not_shown_at_or_past_the_gallery_size() -> None:
    from mfrbench.cli.evaluate import _rank_k

    cmc = [0.5, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    small = {"gallery_size": 3, "spaces": 1, "cmc": cmc, "n_target_probes": 9}
    assert _rank_k(small) == ", rank-2 80.00% over 9 probes (gallery of 3 identities)"
    big = {"gallery_size": 40, "spaces": 1, "cmc": cmc, "n_target_probes": 9}
    assert _rank_k(big) == ", rank-10 100.00% over 9 probes"


def test_honest_accuracy_and_pair_set_order() -> None:
    assert H.primary_pair_set(["unmasked-unmasked", "masked-masked"]) == "masked-masked"
    assert H.primary_pair_set(["unmasked-unmasked", "masked-unmasked", "masked-masked"]) == (
        "masked-unmasked"
    )
    assert H.primary_pair_set(["unmasked-unmasked"]) == "unmasked-unmasked"
    assert H.ordered_pair_types(["unmasked-unmasked", "masked-unmasked"])[-1] == "unmasked-unmasked"
    opt = {"accuracy": {"value": 0.9, "optimistic": True}}
    assert H.honest_accuracy(opt)["how"] == H.OPTIMISTIC
    assert H.accuracy_text(opt) == "90.00% (opt.)"
    val = {**opt, "val_threshold": {"accuracy": 0.8, "threshold": 0.5, "ci95": [0.7, 0.87]}}
    assert H.accuracy_text(val, with_ci=True) == "80.00% (val thr.) [70.00, 87.00]"
    folds = {"accuracy": {"value": 0.95, "optimistic": False, "sem": 0.01, "n_folds": 10}}
    assert H.accuracy_text({**folds, "val_threshold": val["val_threshold"]}) == "95.00% ± 1.00"


def test_wilson_interval_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((81, 263), (0, 10), (10, 10), (455, 500)):
        want = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert H.wilson_interval(k, n) == pytest.approx([want.low, want.high], abs=1e-12)


def test_mcnemar_exact_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for b, a in ((25, 13), (0, 0), (3, 0), (100, 120)):
        want = stats.binomtest(min(a, b), a + b, 0.5).pvalue if a + b else 1.0
        assert mcnemar_exact(b, a) == pytest.approx(want, rel=1e-9)


def test_compare_names_runs_pairs_them_and_writes_csv_and_latex(runs) -> None:
    a, b = runs["split", "oracle"], runs["split", "random"]
    cli = CliRunner()
    done = cli.invoke(app, ["report", "compare", str(a.out_dir), str(b.out_dir)])
    assert done.exit_code == 0, done.output
    head = done.output.splitlines()[0]
    assert head == "| pairs: masked-unmasked | fake (tag=oracle) | fake (tag=random) |"
    rows = {line.split(" | ")[0][2:]: line for line in done.output.splitlines() if "|" in line}
    acc_a = a.report["verification"]["headline"]["accuracy"]["value"]
    acc_b = b.report["verification"]["headline"]["accuracy"]["value"]
    delta = rows["Δ accuracy vs run 1, points [95% CI]"].split(" | ")[2]
    assert delta.startswith(f"{100 * (acc_b - acc_a):+.2f} [")
    assert "McNemar exact p" in done.output
    done = cli.invoke(app, ["report", "compare", str(a.out_dir), str(b.out_dir), "--format", "csv"])
    table = list(csv.reader(io.StringIO(done.stdout)))
    assert table[0][1:] == ["fake (tag=oracle)", "fake (tag=random)"]
    assert all(len(r) == 3 for r in table)
    done = cli.invoke(
        app, ["report", "compare", str(a.out_dir), str(b.out_dir), "--format", "latex"]
    )
    assert r"\toprule" in done.stdout and r"$\Delta$ accuracy" in done.stdout


def test_compare_refuses_different_protocols_unless_asked(runs) -> None:
    a, b = runs["split", "oracle"], runs["folds", "oracle"]
    cmd = [sys.executable, "-m", "mfrbench", "report", "compare", str(a.out_dir), str(b.out_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "different protocols" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [*cmd, "--allow-different-protocols"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "| paired pairs (both scored) | (reference) |" in done.stdout
    assert "no test pair is scored by both runs" in done.stdout  # other pairs: no difference
    assert "warning: the runs are on different protocols" in done.stderr


def test_paired_difference_needs_the_same_pairs() -> None:
    from mfrbench.evaluate.paired import paired_difference

    a = {i: (i % 2, float(i), True, f"unmasked:p{i}|mask-mix:q{i}") for i in range(20)}
    b = {i: (lab, s, i % 3 != 0, ims) for i, (lab, s, _, ims) in a.items()}
    d = paired_difference(a, b, n_boot=50)
    assert d["n_pairs"] == 20 and d["delta_accuracy"] == pytest.approx(-7 / 20)
    assert d["mcnemar"] == {
        "b_only_correct": 0,
        "a_only_correct": 7,
        "p_value": pytest.approx(2 * 0.5**7),
    }
    other = {
        i: (lab, s, ok, ims.replace("mask-mix", "mask-blue")) for i, (lab, s, ok, ims) in b.items()
    }
    assert "not the same pairs" in paired_difference(a, other)["error"]
