"""Training commands: one model over the folds, a zoo of models, the results table."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from yt8mkit.cli.app import JsonOption, SetOption, app, print_json, results
from yt8mkit.cli.progress import console, progress_bar
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import lock_run_dir

if TYPE_CHECKING:
    from yt8mkit.data.store import Store

StoreOption = Annotated[
    list[str] | None,
    typer.Option("--store", help="Training store, or TFRecord files/folders to ingest."),
]
TestStoreOption = Annotated[
    list[str] | None,
    typer.Option("--test-store", help="Test store, or TFRecord files/folders to ingest."),
]


def _parse_folds(text: str) -> list[int] | None:
    if text == "all":
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"--folds takes 'all' or a list like 0,2; got {text!r}") from None


def _stores(train: list[str], test: list[str] | None, run_dir: Path) -> tuple[Store, Store | None]:
    from yt8mkit.data.ingest import open_or_ingest

    with progress_bar() as bar:
        task = bar.add_task("ingest", total=None, status="")

        def advance(path: str, n: int, done: int) -> None:
            bar.update(task, completed=done, status=Path(path).name)

        train_store = open_or_ingest(train, run_dir, "store", progress=advance)
        test_store = (
            open_or_ingest(test, run_dir, "test_store", train_store.num_classes, advance)
            if test
            else None
        )
    return train_store, test_store


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Model config YAML (see configs/).")],
    store: StoreOption = None,
    test_store: TestStoreOption = None,
    folds: Annotated[str, typer.Option(help="'all' or a list of folds, e.g. 0,2.")] = "all",
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/NAME).")] = None,
    overrides: SetOption = None,
) -> None:
    """Train one model over the folds: out-of-fold and test predictions, submission.
    With --folds, only those folds train; the out-of-fold set, the test predictions and
    the submission come once every fold of the store is done."""
    from yt8mkit.train.config import TrainConfig
    from yt8mkit.train.repeats import run_partitions
    from yt8mkit.train.runlog import RunLog

    if not store:
        raise typer.BadParameter("--store is required")
    chosen = _parse_folds(folds)
    cfg = TrainConfig.from_yaml(config, overrides or [])
    run_dir = out or Path("runs") / cfg.name
    lock_run_dir(run_dir)
    train_store, test = _stores(store, test_store, run_dir)
    with progress_bar() as bar:
        task = bar.add_task(cfg.name, total=None, status="")

        def show(kind: str, info: dict) -> None:
            if kind == "step":
                bar.update(
                    task, total=info["steps"], completed=info["step"],
                    description=f"{cfg.name} fold {info['fold']} epoch {info['epoch']}",
                    status=f"loss {info['loss']:.4f}",
                )
            else:
                bar.console.print(
                    f"fold {info['fold']} epoch {info['epoch']}: GAP@20 {info['gap']:.4f} "
                    f"BCE {info['bce']:.3e}"
                )

        with RunLog(run_dir).active(f"train {cfg.name}"):  # epochs go to run.log
            metrics = run_partitions(cfg, train_store, run_dir, test, chosen, show)
    # A model over several partitions (repeats) reports each partition's folds.
    parts = metrics.get("partitions", [metrics])
    trained = sorted({f["fold"] for part in parts for f in part.get("folds", [])})
    if "oof_gap" not in metrics:
        # Said, not left to be guessed from a missing file.
        console.print(
            f"trained fold(s) {trained}; the out-of-fold GAP, the test predictions and the "
            f"submission need every fold of the store: not written (train the others with "
            f"--folds, then rerun with --folds all)", markup=False)
    print_json({k: v for k, v in metrics.items() if k not in ("folds", "partitions")}
               | {"folds_trained": trained, "run_dir": str(run_dir)})


class Backend(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
def zoo(
    zoo_file: Annotated[Path, typer.Argument(help="Zoo YAML: named model configs.")],
    store: StoreOption = None,
    test_store: TestStoreOption = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/NAME).")] = None,
    backend: Annotated[Backend, typer.Option(help="Where the jobs run.")] = Backend.local,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start Ray locally).")
    ] = None,
    retries: Annotated[int | None, typer.Option(help="Retries of a failed job.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Local backend: training processes side by side.")] = 1,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    cpus_per_job: Annotated[float | None, typer.Option(
        help="Ray backend: CPUs a job asks for (default 1).")] = None,
    gpus_per_job: Annotated[float | None, typer.Option(
        help="Ray backend: GPUs a job asks for (default: 1 when the cluster has GPUs).")
    ] = None,
) -> None:
    """Train every model of a zoo on every fold; resumes, retries, reports failures."""
    from yt8mkit.cli.live import follow_run
    from yt8mkit.train.cluster import JobResources
    from yt8mkit.train.runlog import RunLog
    from yt8mkit.zoo.config import ZooConfig
    from yt8mkit.zoo.frame_inputs import prepare_zoo
    from yt8mkit.zoo.neighbours import run_neighbour_members
    from yt8mkit.zoo.runner import run_zoo

    wanted = {"cpus_per_job": cpus_per_job, "gpus_per_job": gpus_per_job}
    resources = JobResources.model_validate({k: v for k, v in wanted.items() if v is not None})
    cfg = ZooConfig.from_yaml(zoo_file, overrides or [])
    run_dir = out or Path("runs") / cfg.name
    lock_run_dir(run_dir)
    train_source = store or ([cfg.store] if cfg.store else None)
    if not train_source:
        raise Yt8mError(f"{zoo_file}: no data: give --store or set `store:` in the zoo file")
    test_source = test_store or ([cfg.test_store] if cfg.test_store else None)
    train_store, test = _stores(train_source, test_source, run_dir)
    log = RunLog(run_dir)
    # Messages and the workers' epochs go to RUN/run.log, which the display follows.
    with follow_run(run_dir), log.active(f"zoo {cfg.name}"):
        plan = prepare_zoo(cfg, train_store, test, run_dir, log.tee(None))
        result = run_zoo(
            plan.configs, str(train_store.path), run_dir,
            str(test.path) if test else None, backend.value,
            cfg.retries if retries is None else retries, address,
            report=log.tee(None), resources=resources, workers=workers,
            stores=plan.stores, test_stores=plan.test_stores,
        )
        run_neighbour_members(cfg.neighbours, train_store, run_dir, test, log.tee(None))
    print_table(run_dir, as_json)
    if result.failed:
        console.print(f"{len(result.failed)} job(s) failed; see {run_dir / 'failures.json'}",
                      style="red", markup=False)
        raise typer.Exit(code=1)


def print_table(run_dir: Path, as_json: bool = False) -> None:
    """The run's models, best first, on stdout; a run without any is an error."""
    from yt8mkit.zoo.table import collect_rows

    rows = collect_rows(run_dir)
    if not rows:
        raise Yt8mError(
            f"{run_dir}: no finished model here (the table reads a zoo's or a pipeline's "
            f"run directory once a model has all its folds; a `yt8m train` run prints its "
            f"metrics, and keeps them in metrics.json)")
    if as_json:
        print_json([asdict(row) for row in rows])
        return
    table = Table(title=f"{run_dir}: best first")
    for column in ("model", "Fr.", "OOF GAP@20", "BCE", "Ens.", "selection GAP@20",
                   "test GAP@20"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            "X" if row.frame_level else "×",
            "—" if row.gap is None else f"{row.gap:.5f}",
            "—" if row.bce is None else f"{row.bce:.2e}",
            {True: "X", False: "×", None: "—"}[row.in_ensemble],
            "—" if row.selection_gap is None else f"{row.selection_gap:.5f}",
            "—" if row.test_gap is None else f"{row.test_gap:.5f}",
        )
    results.print(table)


@app.command()
def table(run_dir: Annotated[Path, typer.Argument(help="Zoo or pipeline run directory.")],
          as_json: JsonOption = False) -> None:
    """A table like the paper's Table 1: model, frame-level, GAP@20, BCE, in the ensemble."""
    if not run_dir.is_dir():
        raise Yt8mError(f"{run_dir}: no such run directory")
    print_table(run_dir, as_json)
