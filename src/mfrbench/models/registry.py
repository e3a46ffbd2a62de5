"""Find and build embedding models from a spec string: ``plugin:NAME``, ``onnx:PATH``, ...

Specs:
- ``plugin:NAME``: a plugin registered under the entry-point group ``mfrbench.models`` (how the
  built-ins and third-party packages register: one line in their pyproject.toml), or in-tree
  with the :func:`register_model` decorator (timm style).
- ``onnx:PATH``: any face-embedding ONNX model, run with onnxruntime (see ``onnx_model``).
- ``python:package.module:factory``: ``factory(**options)`` must return an EmbeddingModel.
- ``siamese:DIR``: a head trained by ``mfrbench train siamese`` over its backbone plugin.

Options are ``--model-opt key=value`` strings; each plugin parses and validates its own.
Every failure to resolve or build a model is a one-line :class:`UserError`.

The registry only maps names to factories: it imports no model module, naming each as
``module:attribute`` and loading it on use, so models may import the registry (siamese builds
its backbone through :func:`create_model`) without an import cycle.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from mfrbench.errors import UserError
from mfrbench.models.base import EmbeddingModel, validate_model
from mfrbench.models.info import ModelInfo, info_of

GROUP = "mfrbench.models"
SPEC_KINDS = ("plugin", "onnx", "python", "siamese")

# The built-ins, as "module:attribute" exactly like their entry points in pyproject.toml.
# Used only for names the installed metadata does not provide: running from a source tree
# (PYTHONPATH=src, or an editable install made before an entry point was added) has no
# entry points, and the built-ins must still resolve there.
BUILTINS: dict[str, str] = {
    "dlib-resnet": "mfrbench.models.dlib_resnet:DlibResNet",
    "eigenface": "mfrbench.models.eigenface:Eigenface",
    "resnet50": "mfrbench.models.resnet50:ResNet50",
    "facenet": "mfrbench.models.facenet:FaceNet",
}

# The spec kinds built from a path, as "module:attribute" factories called as
# ``factory(REST, **options)``. Named, not imported, so the registry depends on no model: a
# model that builds another from a spec (siamese over its backbone) imports the registry.
PATH_KINDS: dict[str, str] = {
    "onnx": "mfrbench.models.onnx_model:OnnxModel",
    "siamese": "mfrbench.models.siamese:SiameseModel",
}

Factory = Callable[..., EmbeddingModel]
_REGISTERED: dict[str, Factory] = {}


def register_model(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering a model class or factory under ``plugin:NAME`` in this process."""

    def deco(obj: Factory) -> Factory:
        if not callable(obj):
            raise TypeError(f"register_model({name!r}) needs a class or function")
        _REGISTERED[name] = obj
        return obj

    return deco


def _load_target(target: str) -> Any:
    """Import ``module:attr.path`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _entry_points() -> dict[str, list[importlib.metadata.EntryPoint]]:
    """Entry points of the group by name (looked up on every call: cheap, and never stale)."""
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        same = found.setdefault(ep.name, [])
        if all(ep.value != other.value for other in same):
            same.append(ep)
    return found


def _constant(obj: Any) -> Callable[[], Any]:
    """A loader that returns ``obj`` (a class passed to ``register_model``)."""
    return lambda: obj


def _sources() -> dict[str, tuple[str, Callable[[], Any]]]:
    """name -> (source description, loader) for every plugin, entry points taking precedence."""
    out: dict[str, tuple[str, Callable[[], Any]]] = {}
    for name, target in BUILTINS.items():
        out[name] = (f"built-in {target} (no entry point installed)", _loader(target))
    for name, obj in _REGISTERED.items():
        out[name] = (f"register_model {obj.__module__}.{obj.__qualname__}", _constant(obj))
    for name, eps in _entry_points().items():
        if len(eps) > 1:
            values = ", ".join(sorted(ep.value for ep in eps))
            out[name] = (f"conflicting entry points: {values}", _conflict(name, values))
        else:
            out[name] = (f"entry point {eps[0].value}", eps[0].load)
    return out


def _loader(target: str) -> Callable[[], Any]:
    return lambda: _load_target(target)


def _conflict(name: str, values: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise UserError(f"plugin {name!r} is registered by several packages ({values})")

    return fail


def plugin_names() -> list[str]:
    """Every plugin name available to ``plugin:NAME``, sorted."""
    return sorted(_sources())


def _load_plugin(name: str) -> tuple[str, Any]:
    sources = _sources()
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise UserError(f"unknown plugin {name!r}; available: {known}")
    source, load = sources[name]
    try:
        return source, load()
    except UserError:
        raise
    except Exception as exc:  # import errors in plugin packages: say which and why
        raise UserError(f"plugin {name!r} ({source}) cannot be loaded: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bind(obj: Any, options: Mapping[str, Any], where: str, args: tuple = ()) -> None:
    """UserError if ``obj(*args, **options)`` cannot bind (an option it does not take)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args, **options)
    except TypeError as exc:
        raise UserError(f"{where}: bad options {dict(options)}: {exc}") from exc


def _build(obj: Any, options: Mapping[str, Any], where: str, args: tuple = ()) -> EmbeddingModel:
    """Call a class or factory with the options and check the result honours the contract."""
    if not callable(obj):
        raise UserError(f"{where} is not callable (got {type(obj).__name__})")
    if inspect.isclass(obj) and issubclass(obj, EmbeddingModel):
        ok, reason = obj.check(*args, **options)
        if not ok:
            raise UserError(f"{where} cannot run here: {reason}")
    _bind(obj, options, where, args)
    try:
        model = obj(*args, **options)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{where} failed: {_one_line(exc)}") from exc
    return validate_model(model, where)


_SPEC_FORMS = "plugin:NAME, onnx:PATH, python:package.module:factory or siamese:DIR"


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``KIND:REST`` and check the kind; a bare registered plugin name is ``plugin:NAME``.

    Anything else is a one-line UserError naming the plugins there are (and, for a bare
    ``*.onnx`` name, the ``onnx:`` spec it probably means).
    """
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if not sep and text:
        sources = _sources()
        if text in sources:
            return "plugin", text
        hint = f"; an ONNX file is onnx:{text}" if text.lower().endswith(".onnx") else ""
        raise UserError(
            f"bad model spec {text!r}: no plugin of that name (plugins: "
            f"{', '.join(sorted(sources)) or 'none'}); expected {_SPEC_FORMS}{hint}"
        )
    if kind not in SPEC_KINDS or not rest:
        raise UserError(f"bad model spec {text!r} (expected {_SPEC_FORMS})")
    return kind, rest


def normalize_spec(spec: str) -> str:
    """The spec in full (``dlib-resnet`` -> ``plugin:dlib-resnet``), as reports record it."""
    kind, rest = parse_spec(spec)
    return f"{kind}:{rest}"


def create_model(spec: str, options: Mapping[str, Any] | None = None) -> EmbeddingModel:
    """Build the model a spec names, with ``--model-opt`` options; UserError on any mistake.

    A bare registered plugin name (``dlib-resnet``) means ``plugin:dlib-resnet``.
    """
    options = dict(options or {})
    kind, rest = parse_spec(spec)
    if kind == "plugin":
        _, obj = _load_plugin(rest)
        return _build(obj, options, f"plugin:{rest}")
    if kind == "python":
        module_name, sep, factory = rest.rpartition(":")
        if not sep or not module_name or not factory:
            raise UserError(f"bad model spec {spec!r}: expected python:package.module:factory")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UserError(f"{spec}: cannot import {module_name}: {_one_line(exc)}") from exc
        try:
            obj = _load_target(f"{module.__name__}:{factory}")
        except AttributeError:
            raise UserError(f"{spec}: {module_name} has no attribute {factory!r}") from None
        return _build(obj, options, spec)
    return _build(_load_target(PATH_KINDS[kind]), options, f"{kind}:{rest}", (rest,))


def _check_of(obj: Any) -> tuple[bool, str]:
    if inspect.isclass(obj) and issubclass(obj, EmbeddingModel):
        try:
            ok, reason = obj.check()
        except Exception as exc:
            return False, f"check() failed: {_one_line(exc)}"
        return bool(ok), str(reason)
    if callable(obj):
        return True, ""
    return False, f"not a model class or factory ({type(obj).__name__})"


def list_models() -> list[dict[str, Any]]:
    """Every plugin (and the onnx runner): name, source, whether it can run here, and why not.

    ``ok`` comes from the plugin's ``check()`` with no options, so a plugin that needs a weights
    option reports what to pass.
    """
    rows = []
    for name in plugin_names():
        try:
            source, obj = _load_plugin(name)
        except UserError as exc:
            rows.append({"name": name, "source": _sources()[name][0], "ok": False,
                         "reason": str(exc)})  # fmt: skip
            continue
        ok, reason = _check_of(obj)
        rows.append({"name": name, "source": source, "ok": ok, "reason": reason})
    ok, reason = _load_target(PATH_KINDS["onnx"]).check()  # without a path: onnxruntime only
    rows.append({"name": "onnx:PATH", "source": "built-in runner", "ok": ok, "reason": reason})
    rows.append(
        {
            "name": "siamese:DIR",
            "source": "a folder written by mfrbench train siamese (over its backbone plugin)",
            "ok": True,
            "reason": "",
        }
    )
    return rows


class Described(NamedTuple):
    """A plugin as ``mfrbench models --details`` shows it: what it says, where it comes from,
    whether it can run here (and why not)."""

    info: ModelInfo
    source: str
    ok: bool
    reason: str


def model_info(name: str) -> Described:
    """The plugin ``--details NAME`` names, described (nothing is built or downloaded).

    NAME is a plugin name with or without ``plugin:`` (``dlib-resnet``), or ``onnx`` /
    ``siamese`` with or without a path (the path is not opened). UserError for anything else.
    """
    text = str(name).strip()
    kind, sep, rest = text.partition(":")
    if not sep and text in PATH_KINDS:
        kind, rest = text, ""
    elif not sep:
        kind, rest = "plugin", text
    if kind in PATH_KINDS:
        obj = _load_target(PATH_KINDS[kind])
        ok, reason = _check_of(obj)
        return Described(info_of(obj, f"{kind}:PATH"), "built-in runner", ok, reason)
    if kind == "plugin" and rest:
        sources = _sources()
        if rest not in sources:
            known = ", ".join([*sorted(sources), *PATH_KINDS])
            raise UserError(f"no model {text!r} to describe; known: {known}")
        source, obj = _load_plugin(rest)
        ok, reason = _check_of(obj)
        return Described(info_of(obj, f"plugin:{rest}"), source, ok, reason)
    if kind == "python":
        raise UserError(
            f"{text}: a python: factory declares nothing mfrbench can show; see its own "
            "documentation (its options are the factory's keyword arguments)"
        )
    raise UserError(f"bad model name {text!r}: expected a plugin name, onnx or siamese")
