"""The import layers of ``src/mfrbench``: every module imports only its own layer or lower ones.

Layers, lowest first (issue 12's picture: cli -> {train, evaluate} -> {models, protocol,
pairs} -> {vision, datasets} -> {digest/io, errors})::

    0  the package root (``__version__``), errors, digest, records, manifest, executors,
       ray_executor, workers, fetch, colors
    1  vision, datasets
    2  models, protocol, pairs, faces, synth, augment
    3  evaluate, train
    4  demo, cli (package), __main__

The source is read with ``ast``, never imported: every ``import`` counts wherever it stands
(module level, inside functions, under ``TYPE_CHECKING``), and so does a string that names a
module exactly (``"mfrbench.models.siamese:SiameseModel"``), which is how registries refer to
factories they load on use. Import statements between modules must also form no cycle.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import mfrbench

PACKAGE = Path(mfrbench.__file__).resolve().parent

LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "mfrbench",
            "errors",
            "digest",
            "records",
            "manifest",
            "workers",
            "executors",
            "ray_executor",
            "fetch",
            "colors",
            "paths",
        }
    ),
    frozenset({"vision", "datasets"}),
    frozenset({"models", "protocol", "pairs", "faces", "synth", "augment"}),
    frozenset({"evaluate", "train"}),
    frozenset({"demo", "cli", "__main__"}),
)
TOP = len(LAYERS) - 1

#: Known upward imports still in the tree, as (importing module, imported module), each with
#: why it remains. The test fails on any other upward import, and on an entry here that no
#: longer occurs (delete it then). Empty: models/siamese.py used to import train.head and
#: train.checkpoint; the head and the safetensors format now live in models/.
ALLOWED: frozenset[tuple[str, str]] = frozenset()

_TARGET = re.compile(r"mfrbench(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_][\w.]*)?")


def source_modules(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every ``.py`` under it."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _closest(name: str, known: Iterable[str]) -> str:
    """``name`` if it is a module, else its longest dotted prefix that is one (or ``name``)."""
    known = set(known)
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return name


def imports_of(
    module: str, source: str, is_package: bool, known: Iterable[str]
) -> list[tuple[str, int, str]]:
    """(imported mfrbench module, line, kind) for each import or module-naming string.

    ``kind`` is ``"import"`` for import statements and ``"name"`` for strings such as
    ``"mfrbench.models.onnx_model:OnnxModel"``. Relative imports are resolved against
    ``module``; ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module.
    """
    known = set(known)
    found: list[tuple[str, int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".")[: None if is_package else -1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if not _TARGET.fullmatch(node.value):
                continue
            name = node.value.partition(":")[0]
            if name in known:
                found.append((name, node.lineno, "name"))
            continue
        else:
            continue
        for target in targets:
            if target == "mfrbench" or target.startswith("mfrbench."):
                found.append((_closest(target, known), node.lineno, "import"))
    return found


def layer_of(module: str) -> int | None:
    """Layer index of a dotted ``mfrbench`` module name, or None when it is not assigned."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    return None


def upward(edges: Iterable[tuple[str, str, int, str]]) -> list[tuple[str, str, int, str]]:
    """The edges (importer, imported, line, kind) whose target sits in a higher layer."""
    out = []
    for src, dst, line, kind in edges:
        a, b = layer_of(src), layer_of(dst)
        if a is not None and b is not None and b > a:
            out.append((src, dst, line, kind))
    return out


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _edges() -> list[tuple[str, str, int, str]]:
    modules = source_modules()
    edges = []
    for name, (path, is_package) in modules.items():
        for target, line, kind in imports_of(name, path.read_text("utf-8"), is_package, modules):
            if target != name:
                edges.append((name, target, line, kind))
    return edges


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({m for m in source_modules() if layer_of(m) is None})
    assert not unplaced, f"assign these modules a layer in LAYERS: {unplaced}"


def test_no_module_imports_upward() -> None:
    up = upward(_edges())
    new = [
        f"{src} -> {dst} (line {line}, L{layer_of(src)} -> L{layer_of(dst)}, {kind})"
        for src, dst, line, kind in up
        if (src, dst) not in ALLOWED
    ]
    assert not new, "upward imports (move the code down or inject it):\n" + "\n".join(new)
    stale = sorted(ALLOWED - {(src, dst) for src, dst, _, _ in up})
    assert not stale, f"ALLOWED lists imports that no longer occur; delete them: {stale}"


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst, _, kind in _edges():
        if kind == "import":
            graph.setdefault(src, set()).add(dst)
    assert cycles(graph) == []


def test_checker_sees_function_level_relative_and_named_imports() -> None:
    known = {"mfrbench", "mfrbench.models", "mfrbench.models.x", "mfrbench.train",
             "mfrbench.train.head", "mfrbench.errors"}  # fmt: skip
    source = (
        "from mfrbench.errors import UserError\n"
        "def f():\n"
        "    from ..train.head import build_head\n"
        "    return 'mfrbench.train.head:HeadConfig', 'not mfrbench.train'\n"
        "class C:\n"
        "    def g(self):\n"
        "        import mfrbench.train.head.nothing\n"
    )
    found = sorted(imports_of("mfrbench.models.x", source, False, known), key=lambda f: f[1])
    assert found == [
        ("mfrbench.errors", 1, "import"),
        ("mfrbench.train.head", 3, "import"),
        ("mfrbench.train.head", 4, "name"),
        ("mfrbench.train.head", 7, "import"),
    ]
    edges = [("mfrbench.models.x", dst, line, kind) for dst, line, kind in found]
    assert [(dst, line) for _, dst, line, _ in upward(edges)] == [
        ("mfrbench.train.head", 3),
        ("mfrbench.train.head", 4),
        ("mfrbench.train.head", 7),
    ]
    assert layer_of("mfrbench.cli.options") == TOP and layer_of("mfrbench.records") == 0
    assert layer_of("mfrbench.cli_new") is None
    assert layer_of("mfrbench.unplaced") is None


def test_cycle_finder() -> None:
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": set(), "d": {"d"}}
    assert cycles(graph) == [["a", "b"]]


def test_siamese_model_module_loads_no_training_code() -> None:
    code = (
        "import sys, mfrbench.models.siamese\n"
        "print(sorted(m for m in sys.modules if m.startswith(('mfrbench.train', 'torch'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
