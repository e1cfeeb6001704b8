"""The `yt8m` command: parses arguments, calls the parts, prints. No logic of its own.

Each command module registers its commands on the one Typer app when imported.
"""

from __future__ import annotations

from yt8mkit.cli import (  # noqa: F401  (each module registers its commands)
    data_commands,
    eval_commands,
    pipeline_commands,
    report_commands,
    second_level_commands,
    serve_commands,
    train_commands,
)
from yt8mkit.cli.app import app, fail


def main() -> None:
    try:
        app()
    except OSError as err:
        # A full disk, a permission, a file gone, wherever in a command: said plainly
        # (the commands' own errors are handled in each command).
        fail(err)  # prints it
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
