"""The root ``mfrbench`` app: its command groups, --version/--debug, and :func:`main`.

User mistakes (bad option, missing root, unknown colour) end with one line on stderr and exit
code 2, never a traceback; ``--debug`` (or ``MFRBENCH_DEBUG=1``) prints the traceback too.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape

from mfrbench import __version__
from mfrbench.cli.common import console, out_console
from mfrbench.cli.demo import demo_command
from mfrbench.cli.evaluate import eval_command, models_command
from mfrbench.cli.pairs import pairs_app
from mfrbench.cli.protocol import protocol_app
from mfrbench.cli.report import report_app
from mfrbench.cli.synth import synth_command
from mfrbench.cli.train import train_app
from mfrbench.errors import DEBUG_ENV, UserError

app = typer.Typer(
    name="mfrbench",
    help="Masked-face recognition benchmarks: synthesise masked datasets, freeze protocols, "
    "score embedding models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(pairs_app, name="pairs")
app.add_typer(protocol_app, name="protocol")
app.command("eval")(eval_command)
app.command("models")(models_command)
app.add_typer(report_app, name="report")
app.add_typer(train_app, name="train")
app.command("synth")(synth_command)
app.command("demo")(demo_command)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"mfrbench {__version__}")
        raise typer.Exit()


@app.callback()
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
    try:
        app(args=args, standalone_mode=False)
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


def _debug(args: list[str]) -> bool:
    """Whether tracebacks are wanted: ``--debug`` before the command, or MFRBENCH_DEBUG set."""
    before_command = args[: next((i for i, a in enumerate(args) if not a.startswith("-")), None)]
    flag = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in before_command or flag not in ("", "0", "false", "no")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)
