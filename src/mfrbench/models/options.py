"""Plugin options: their declaration (:class:`OptionSpec`) and their parsing (:class:`Options`).

A plugin declares every ``--model-opt`` it takes once, as a tuple of :class:`OptionSpec`
(name, default, one-line meaning, allowed values). The same tuple drives the parser, the
unknown-option error, ``mfrbench models --details NAME`` and docs/models.md (a test keeps the
page in step), so what a user reads cannot drift from what the code accepts::

    OPTIONS = (OptionSpec("jitters", 1, "jittered copies averaged", kind="int"),)
    opts = Options("dlib-resnet", options, OPTIONS)
    jitters = opts.int("jitters", minimum=1)  # default 1, from the declaration
    opts.finish()

With a declaration, reading an undeclared option, passing a default other than the declared
one, or never reading a declared option is a plugin bug (``RuntimeError``); a user's unknown
or malformed option is a one-line :class:`~mfrbench.errors.UserError`. Without one (a
third-party plugin, or a lenient pre-check) the parser behaves as before: the options read
are the known ones.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from mfrbench.errors import UserError

#: What an option's value is (for docs; the getter used decides the parsing).
KINDS = ("str", "choice", "int", "float", "bool", "floats", "size", "path", "url", "sha256")


@dataclass(frozen=True)
class OptionSpec:
    """One ``--model-opt NAME=VALUE`` of a plugin.

    default: the value when the option is absent (None: unset, or computed from other options:
    then ``default_text`` says how). choices: the allowed values when they are finite;
    ``values_text`` describes them when they are not (``cpu, cuda or cuda:N``).
    """

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    kind: str = "str"
    default_text: str = ""
    values_text: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")
        if self.choices and self.default is not None and self.default not in self.choices:
            raise ValueError(f"option {self.name}: default {self.default!r} is not a choice")

    def shown_default(self) -> str:
        """The default as a user would type it (``64x32``, ``0.5``, ``false``), or its rule."""
        if self.default_text:
            return self.default_text
        value = self.default
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if self.kind == "size":
            return f"{value[0]}x{value[1]}"
        if isinstance(value, (tuple, list)):
            return ",".join(f"{v:g}" for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def shown_values(self) -> str:
        """Allowed values (``a|b``) or the value's form (``WxH``, ``integer``)."""
        if self.values_text:
            return self.values_text
        if self.choices:
            return "|".join(self.choices)
        return {
            "int": "integer",
            "float": "number",
            "bool": "true|false",
            "floats": "number or n1,n2,n3",
            "size": "WxH (or N)",
            "path": "file path",
            "url": "http(s):// or file:// URL",
            "sha256": "64 hex digits",
        }.get(self.kind, "text")


_UNSET: Any = object()


class Options:
    """Typed access to plugin options that arrive as strings (``--model-opt k=v``) or values.

    Each getter consumes its key; :meth:`finish` raises UserError for any key that is not an
    option of the plugin, so a typo such as ``jiters=2`` is reported instead of silently
    ignored. ``specs`` is the plugin's declaration (module doc); getters then take their
    default (and a choice its values) from it when none is passed.
    """

    def __init__(
        self,
        model: str,
        options: Mapping[str, Any] | None,
        specs: Sequence[OptionSpec] | None = None,
    ) -> None:
        self.model = model
        self._raw = dict(options or {})
        self._used: set[str] = set()
        self._specs = {s.name: s for s in specs} if specs is not None else None

    def _spec(self, key: str) -> OptionSpec | None:
        if self._specs is None:
            return None
        if key not in self._specs:
            raise RuntimeError(f"{self.model}: reads option {key!r}, which it does not declare")
        return self._specs[key]

    def _default(self, key: str, default: Any) -> Any:
        spec = self._spec(key)
        if spec is None:
            if default is _UNSET:
                raise RuntimeError(f"{self.model}: option {key!r} needs a default")
            return default
        if default is _UNSET:
            return spec.default
        if spec.default is not None and default != spec.default:
            raise RuntimeError(
                f"{self.model}: option {key!r} is read with default {default!r} but declared "
                f"with {spec.default!r}"
            )
        return default

    def _take(self, key: str) -> Any:
        self._spec(key)
        self._used.add(key)
        return self._raw.get(key)

    def _bad(self, key: str, value: Any, want: str) -> UserError:
        return UserError(f"{self.model}: option {key}={value!r} is invalid: {want}")

    def has(self, key: str) -> bool:
        return key in self._raw

    def str(self, key: str, default: str | None = _UNSET) -> str | None:
        default = self._default(key, None if default is _UNSET and self._specs is None else default)
        value = self._take(key)
        return default if value is None else str(value)

    def choice(
        self,
        key: builtins.str,
        choices: Sequence[builtins.str] | None = None,
        default: builtins.str = _UNSET,
    ) -> builtins.str:
        spec = self._spec(key)
        if choices is None:
            if spec is None or not spec.choices:
                raise RuntimeError(f"{self.model}: option {key!r} declares no choices")
            choices = spec.choices
        if spec is None and default is _UNSET:
            raise RuntimeError(f"{self.model}: option {key!r} needs a default")
        value = self.str(key, default)
        if value is None or value not in choices:
            raise self._bad(key, value, f"choose one of {', '.join(choices)}")
        return value

    def int(
        self,
        key: builtins.str,
        default: builtins.int = _UNSET,
        *,
        minimum: builtins.int | None = None,
    ) -> builtins.int:
        default = self._default(key, default)
        value = self._take(key)
        if value is None:
            return builtins.int(default)
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out = builtins.int(value)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected an integer") from None
        if minimum is not None and out < minimum:
            raise self._bad(key, value, f"must be >= {minimum}")
        return out

    def float(self, key: builtins.str, default: builtins.float = _UNSET) -> builtins.float:
        default = self._default(key, default)
        value = self._take(key)
        if value is None:
            return builtins.float(default)
        try:
            out = builtins.float(value)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected a number") from None
        if not np.isfinite(out):
            raise self._bad(key, value, "expected a finite number")
        return out

    def bool(self, key: builtins.str, default: builtins.bool = _UNSET) -> builtins.bool:
        default = self._default(key, default)
        value = self._take(key)
        if value is None:
            return builtins.bool(default)
        if isinstance(value, bool):
            return value
        text = builtins.str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise self._bad(key, value, "expected true/false")

    def floats(
        self, key: builtins.str, default: tuple[builtins.float, ...] = _UNSET
    ) -> tuple[builtins.float, ...]:
        """One number or a comma-separated list (``0.5`` or ``0.485,0.456,0.406``)."""
        default = self._default(key, default)
        value = self._take(key)
        if value is None:
            return tuple(default)
        parts = value if isinstance(value, (list, tuple)) else builtins.str(value).split(",")
        try:
            out = tuple(builtins.float(p) for p in parts)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected numbers separated by commas") from None
        if not out or not all(np.isfinite(out)):
            raise self._bad(key, value, "expected finite numbers separated by commas")
        return out

    @overload
    def size(
        self, key: builtins.str, default: tuple[builtins.int, builtins.int]
    ) -> tuple[builtins.int, builtins.int]: ...

    @overload
    def size(
        self, key: builtins.str, default: None
    ) -> tuple[builtins.int, builtins.int] | None: ...

    @overload
    def size(self, key: builtins.str) -> tuple[builtins.int, builtins.int]: ...

    def size(
        self, key: builtins.str, default: tuple[builtins.int, builtins.int] | None = _UNSET
    ) -> tuple[builtins.int, builtins.int] | None:
        """``WxH`` (e.g. ``112x112``) or a single ``N`` for a square."""
        default = self._default(key, default)
        value = self._take(key)
        if value is None:
            return None if default is None else (builtins.int(default[0]), builtins.int(default[1]))
        if isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = builtins.str(value).lower().replace("*", "x").split("x")
        try:
            if len(parts) == 1:
                parts = parts * 2
            w, h = (builtins.int(p) for p in parts)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected WxH, e.g. 112x112") from None
        if w < 1 or h < 1:
            raise self._bad(key, value, "width and height must be positive")
        return w, h

    def known(self) -> list[builtins.str]:
        """The option names this plugin takes: declared, else those read so far (sorted)."""
        return sorted(self._specs if self._specs is not None else self._used)

    def finish(self) -> None:
        """UserError for an option the plugin does not take; RuntimeError for a declared
        option never read (the declaration and the parser disagree)."""
        known = self.known()
        unknown = sorted(set(self._raw) - set(known))
        if unknown:
            where = f"; see: mfrbench models --details {self.model}" if self._specs else ""
            raise UserError(
                f"{self.model}: unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(known) or 'none'}{where})"
            )
        if self._specs is not None:
            unread = sorted(set(self._specs) - self._used)
            if unread:
                raise RuntimeError(f"{self.model}: declares option(s) it never reads: {unread}")
