"""The Typer application every command module registers on, and the error exit."""

from __future__ import annotations

from typing import Annotated

import typer

from yt8mkit import __version__
from yt8mkit.cli.progress import console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="yt8mkit: YouTube-8M-format video classification, from TFRecords to one compact model.",
)


def _print_version(value: bool) -> None:
    if value:
        print(f"yt8mkit {__version__}")  # a result: stdout
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """yt8mkit: YouTube-8M-format video classification, from TFRecords to one compact model."""


def fail(err: Exception) -> typer.Exit:
    """Print a known error without a traceback; the exit code says it failed."""
    # Messages quote data ("[0, 3862)"), so no markup; no wrapping, so paths stay whole.
    console.print(f"error: {err}", style="red", markup=False, soft_wrap=True)
    return typer.Exit(code=2)
