"""The `yt8m` command: parses arguments, calls the parts, prints. No logic of its own.

Each command module registers its commands on the one Typer app when imported; errors
are handled once, in the app (``cli/app.py``).
"""

from __future__ import annotations

from yt8mkit.cli import (  # noqa: F401  (each module registers its commands)
    config_commands,
    data_commands,
    eval_commands,
    pipeline_commands,
    report_commands,
    second_level_commands,
    serve_commands,
    train_commands,
)
from yt8mkit.cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
