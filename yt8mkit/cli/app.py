"""The Typer application every command module registers on, and its one error handler.

Conventions of every command: results (tables, JSON, paths) go to stdout (``results``),
progress and logs to stderr (``progress.console``), so that ``yt8m info STORE > f``
writes the table. Exit codes: 0 done, 1 a data or runtime error (the project's own
errors, a config that does not validate, a file that cannot be read or written), 2 a
usage error (Typer's). Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from yt8mkit import __version__
from yt8mkit.cli.progress import console
from yt8mkit.errors import Yt8mError

# Results: stdout. Soft wrap: long paths and ids stay on one line, whole and greppable.
results = Console(soft_wrap=True)


def report_error(err: BaseException) -> None:
    """A known error, said plainly on stderr, without a traceback."""
    # Messages quote data ("[0, 3862)"), so no markup; no wrapping, so paths stay whole.
    console.print(f"error: {err}", style="red", markup=False, soft_wrap=True)


class _Commands(TyperGroup):
    """Every command runs through here: the project's errors (config validation among
    them: ConfigError names the YAML file and the key path) and OS errors (a full disk,
    a permission, a file gone) exit 1 with their message; nothing else is caught."""

    def invoke(self, ctx: Any) -> Any:  # a click Context
        try:
            return super().invoke(ctx)
        except (Yt8mError, OSError) as err:
            report_error(err)
            raise typer.Exit(code=1) from None


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
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


SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY.PATH=VALUE",
    help="Override a config value (repeatable), e.g. --set zoo.models.logistic.optim.lr=0.01; "
         "the value is read as YAML.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def print_json(data: Any) -> None:
    """A result as JSON on stdout (plain: no colour, no wrapping)."""
    typer.echo(json.dumps(data, indent=2))
