"""The whole system in one command: `yt8m pipeline CONFIG`, and `yt8m demo` on the
embedded default config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from yt8mkit.cli.app import JsonOption, SetOption, app, print_json, results
from yt8mkit.cli.progress import console
from yt8mkit.cli.train_commands import Backend, print_table

if TYPE_CHECKING:
    from yt8mkit.pipeline.config import PipelineConfig


def _run(config: PipelineConfig, out: Path, train: list[str] | None,
         test: list[str] | None, as_json: bool = False) -> None:
    from dataclasses import asdict

    from yt8mkit.cli.live import follow_run
    from yt8mkit.pipeline.run import run_pipeline
    from yt8mkit.zoo.table import collect_rows

    # Every message goes to RUN/run.log, which the display follows.
    with follow_run(out, _stage_jobs(config)):
        result = run_pipeline(config, out, train, test)
    test_metrics = result.metrics.get("test")
    if as_json:
        print_json({"run_dir": str(out), "models": [asdict(r) for r in collect_rows(out)],
                    "submission": None if result.submission is None else str(result.submission),
                    "test": test_metrics, "seconds": result.metrics["seconds"]})
        return
    print_table(out)
    if result.submission is not None:
        results.print(f"submission: {result.submission}", markup=False)
    if test_metrics:
        results.print(
            "test: " + ", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items()
                                 if isinstance(v, float)),
            markup=False,
        )
    console.print(f"done in {result.metrics['seconds']:.0f} s; run directory {out}",
                  markup=False)


def _stage_jobs(config: PipelineConfig) -> dict[str, int]:
    """Jobs of the stages that do not count them aloud (for the ETA): LightGBM's folds,
    and the students and final models of distillation over the folds."""
    jobs = {}
    if config.stack is not None:
        jobs["stack"] = config.folds.num_folds
    if config.distill is not None:
        per_kind = len(config.distill.students) + 1
        jobs["distill"] = len(config.distill.kinds()) * per_kind * config.folds.num_folds
    return jobs


@app.command()
def pipeline(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML, e.g. configs/real/...")],
    train: Annotated[
        list[str] | None, typer.Option("--train", help="Training TFRecords or store.")
    ] = None,
    test: Annotated[list[str] | None, typer.Option("--test", help="Test TFRecords, store.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/NAME).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Training processes side by side (default: the config's `workers`).")
    ] = None,
    overrides: SetOption = None,
    backend: Annotated[Backend | None, typer.Option(
        help="Where the zoo's and distillation's jobs run (default: the config's "
             "`backend`).")] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address (default: the config's `address`, RAY_ADDRESS, or a "
             "Ray started for the run).")] = None,
    as_json: JsonOption = False,
) -> None:
    """ingest → folds → zoo → ... → submission → evaluate; resumes after an interruption."""
    from yt8mkit.pipeline.config import PipelineConfig

    cfg = PipelineConfig.from_yaml(config, overrides or [])
    changes = {"workers": workers, "backend": backend.value if backend else None,
               "address": address}
    cfg = cfg.model_copy(update={k: v for k, v in changes.items() if v is not None})
    _run(cfg, out or Path("runs") / cfg.name, train, test, as_json)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
) -> None:
    """The whole pipeline on synthetic data from the embedded default config."""
    from yt8mkit.cli.report_commands import write_report
    from yt8mkit.pipeline.config import demo_config

    _run(demo_config(), out, None, None)
    path = write_report(out)
    typer.echo(f"report: {path}")  # a result: stdout, where `yt8m report` prints it too
