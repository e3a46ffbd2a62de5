"""The root ``mfrbench`` app: its command groups, --version/--debug, and :func:`main`.

User mistakes (bad option, missing root, unknown colour) end with one line on stderr and exit
code 2, never a traceback; ``--debug`` (or ``MFRBENCH_DEBUG=1``) prints the traceback too.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from typing import Annotated

import typer
from rich.markup import escape

from mfrbench import __version__
from mfrbench.cli.common import console, out_console
from mfrbench.errors import DEBUG_ENV, UserError

#: Every command: name -> (module, attribute, is a group), in the order ``--help`` lists them.
#: Modules are imported only for the command being run (all of them for ``--help``), so
#: ``mfrbench synth`` never pays for the pairs/evaluation imports and ``--version`` for none.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "pairs": ("mfrbench.cli.pairs", "pairs_app", True),
    "protocol": ("mfrbench.cli.protocol", "protocol_app", True),
    "eval": ("mfrbench.cli.evaluate", "eval_command", False),
    "models": ("mfrbench.cli.evaluate", "models_command", False),
    "report": ("mfrbench.cli.report", "report_app", True),
    "train": ("mfrbench.cli.train", "train_app", True),
    "synth": ("mfrbench.cli.synth", "synth_command", False),
    "demo": ("mfrbench.cli.demo", "demo_command", False),
}


def build_app(commands: Iterable[str] | None = None) -> typer.Typer:
    """The root app with ``commands`` registered (None: all of them)."""
    app = typer.Typer(
        name="mfrbench",
        help="Masked-face recognition benchmarks: synthesise masked datasets, freeze protocols, "
        "score embedding models.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    wanted = set(COMMANDS if commands is None else commands)
    for name, (module, attr, group) in COMMANDS.items():
        if name in wanted:
            target = getattr(importlib.import_module(module), attr)
            if group:
                app.add_typer(target, name=name)
            else:
                app.command(name)(target)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``app``: the root app with every command (for tests and tools that drive Typer)."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version(value: bool) -> None:
    if value:
        out_console.print(f"mfrbench {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help=f"Show the full traceback of an error (or set {DEBUG_ENV}=1)."
        ),
    ] = False,
) -> None:
    """mfrbench: turn face datasets into masked-face benchmarks and score models on them."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user mistakes into one line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(args)
    command = _command(args)
    try:
        only: list[str] | None = [] if command is None and "--version" in args else None
        build_app([command] if command in COMMANDS else only)(args=args, standalone_mode=False)
    except UserError as e:
        if debug:
            traceback.print_exception(e, file=sys.stderr)
        _fail(str(e))
    except (typer.Exit, typer.Abort) as e:
        sys.exit(getattr(e, "exit_code", 130))
    except Exception as e:
        # Typer's usage errors (bad option, missing argument, unknown command); duck-typed so
        # this works whether Typer vendors click or uses it.
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "Exit":
            sys.exit(e.exit_code)
        message = e.format_message()
        if not message:  # no arguments at all: help was printed
            sys.exit(0)
        ctx = getattr(e, "ctx", None)
        name = ctx.command_path if ctx is not None else "mfrbench"
        _fail(f"{message} (see: {name} --help)")


def _command(args: list[str]) -> str | None:
    """The command named on the line (the first argument not an option), if any."""
    return next((a for a in args if not a.startswith("-")), None)


def _debug(args: list[str]) -> bool:
    """Whether tracebacks are wanted: ``--debug`` before the command, or MFRBENCH_DEBUG set."""
    before_command = args[: next((i for i, a in enumerate(args) if not a.startswith("-")), None)]
    flag = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in before_command or flag not in ("", "0", "false", "no")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)
