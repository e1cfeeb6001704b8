"""Second-level commands on a run directory: `yt8m stack`, `distill`, `export`, and
`predict` with an exported model."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from yt8mkit.cli import names
from yt8mkit.cli.app import app, print_json, results
from yt8mkit.cli.names import VocabularyOption
from yt8mkit.cli.progress import console, progress_bar
from yt8mkit.cli.train_commands import Backend
from yt8mkit.data.folds import fold_ids
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import lock_run_dir
from yt8mkit.train.runlog import RunLog


class LabelKind(str, Enum):
    soft = "soft"
    hard = "hard"


RunArgument = Annotated[Path, typer.Argument(help="Run directory of `yt8m pipeline` or `zoo`.")]


def _say(message: str) -> None:
    console.print(message, markup=False)


@app.command()
def stack(run_dir: RunArgument) -> None:
    """LightGBM over the union of every model's top candidate labels, fold by fold."""
    from yt8mkit.cli.live import follow_run
    from yt8mkit.ensemble import run_stack
    from yt8mkit.pipeline.layout import open_run, write_members

    run = open_run(run_dir)
    log = RunLog(run_dir)
    folds = len(fold_ids(run.store.folds()))
    # Messages go to run.log; the display follows it (a bar over the folds).
    with follow_run(run_dir, {"stack": folds}), log.active("stack"):
        log.write(f"stage stack: stacking {len(run.models)} models: "
                  f"{', '.join(run.models)}")

        def fold_done(kind: str, info: dict) -> None:
            if kind == "fold":
                log.write(f"done lightgbm fold {info['fold']} "
                          f"(best iteration {info['best_iteration']})")

        test = run.prediction_dirs("test") if run.test_store is not None else None
        result = run_stack(run.prediction_dirs("oof"), run.store, run.ensemble_dir,
                           run.stack, test, progress=fold_done)
        write_members(run.ensemble_dir, run.models)
    print_json({k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))})


@app.command()
def distill(
    run_dir: RunArgument,
    workers: Annotated[int, typer.Option(min=1, help="Training processes side by side.")] = 1,
    backend: Annotated[Backend, typer.Option(help="Where the jobs run.")] = Backend.local,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start Ray locally).")
    ] = None,
) -> None:
    """Students on the ensemble's out-of-fold soft labels, then the final model."""
    from contextlib import ExitStack

    from yt8mkit.cli.live import follow_run
    from yt8mkit.data.predictions import Predictions
    from yt8mkit.distill.run import run_distill
    from yt8mkit.pipeline.layout import open_run
    from yt8mkit.train.cluster import RayPool

    run = open_run(run_dir)
    oof = run.ensemble_dir / "oof"
    if not oof.is_dir():
        raise Yt8mError(f"{run_dir}: no ensemble predictions ({oof}); run `yt8m stack` first")
    log = RunLog(run_dir)
    folds = len(fold_ids(run.store.folds()))
    jobs = len(run.distill.kinds()) * (len(run.distill.students) + 1) * folds
    # The students' epochs go to run.log too; the display follows it.
    with follow_run(run_dir, {"distill": jobs}), log.active("distill"), ExitStack() as held:
        log.write(f"stage distill: {len(run.distill.students)} students on "
                  f"{' and '.join(run.distill.kinds())} labels")
        cluster = None if backend == Backend.local else held.enter_context(
            RayPool(run_dir, [run.store.path], address, report=log.tee(None)))
        metrics = run_distill(run.store, Predictions(oof), run.distill_dir, run.distill,
                              run.test_store, log.tee(None), workers=workers,
                              cluster=cluster)
    print_json(metrics)


@app.command()
def export(
    run_dir: RunArgument,
    out: Annotated[Path | None, typer.Option(help="ONNX file (default RUN/final_model.onnx).")
                   ] = None,
    max_size: Annotated[int | None, typer.Option(help="Size budget in bytes (default 1 GB).")
                        ] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Dynamic int8 quantization.")] = False,
    labels: Annotated[LabelKind | None, typer.Option(
        help="The final model trained on which labels (default: the config's, else soft).")
    ] = None,
    fold: Annotated[str | None, typer.Option(
        help="Which fold's final model, or 'all' for the mean of every fold's "
             "(default: the config's, else 0).")] = None,
    vocabulary: VocabularyOption = None,
) -> None:
    """The distilled final model as one ONNX file, checked against PyTorch and the budget;
    its metadata holds the class count, the inputs and (with a vocabulary: --vocabulary,
    the run config's, or a synthetic run's) the label names."""
    from yt8mkit.data.vocabulary import run_vocabulary
    from yt8mkit.export.final import ExportConfig, export_final_model
    from yt8mkit.pipeline.layout import open_run

    run = open_run(run_dir)
    lock_run_dir(run_dir)
    vocab = names.load(vocabulary or run_vocabulary(run_dir))
    updates: dict = {"int8": int8 or run.export.int8}
    if max_size is not None:
        updates["max_size_bytes"] = max_size
    if labels is not None:
        updates["labels"] = labels.value
    if fold is not None:
        updates["fold"] = fold
    try:  # validated like the config file's own values (a fold, a size >= 1)
        config = ExportConfig.model_validate({**run.export.model_dump(), **updates})
    except ValidationError as err:
        raise typer.BadParameter(str(err)) from None
    with RunLog(run_dir).active("export"):
        summary = export_final_model(run.store, run.distill_dir, run.distill,
                                     out or run_dir / "final_model.onnx", config, vocab)
    print_json(summary)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Exported model (ONNX).")],
    data: Annotated[list[str], typer.Argument(help="TFRecord files/folders/globs or a store.")],
    out: Annotated[Path, typer.Option(help="Kaggle submission CSV to write.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Videos per ONNX Runtime call.")] = 1024,
    workers: Annotated[int | None, typer.Option(help="Ingest processes for TFRecords.")
                       ] = None,
    vocabulary: VocabularyOption = None,
    with_names: Annotated[bool, typer.Option(
        "--names", help="Add a LabelNames column (names from --vocabulary, else the "
                        "model's own); the default is the plain Kaggle format.")] = False,
) -> None:
    """Stream videos through ONNX Runtime in batches; write the Kaggle CSV.

    TFRecords are first ingested into a temporary store beside ``--out`` (removed at the
    end): reading them in parallel, checked, costs less than the model's inference."""

    import os
    import shutil

    from yt8mkit.data.ingest import IngestConfig, ingest
    from yt8mkit.data.sources import resolve_sources
    from yt8mkit.data.store import Store
    from yt8mkit.export.predictor import predict_to_submission
    from yt8mkit.outputs import scratch_dir

    if out.is_dir():
        raise Yt8mError(f"--out {out}: is a folder; give the CSV file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is made in scratch beside --out (the store of TFRecords, the CSV, its
    # names column) and the finished CSV renamed into place: a killed predict leaves no
    # --out, and its rerun removes the scratch.
    scratch = scratch_dir(out.parent, out.name)
    try:
        vocab = names.load(vocabulary)
        if with_names and vocab is None:  # before any work: nothing is written on error
            from yt8mkit.export.predictor import OnnxPredictor

            vocab = OnnxPredictor(model).metadata.vocabulary()
            if vocab is None:
                raise Yt8mError(f"{model}: the model carries no vocabulary; give "
                                "--vocabulary to name its labels")
        if len(data) == 1 and Store.is_store(data[0]):
            store = Store(data[0])
        else:
            config = IngestConfig() if workers is None else IngestConfig(workers=workers)
            with progress_bar() as bar:
                files = resolve_sources(data)
                task = bar.add_task("ingest", total=len(files), status="")
                ingest(files, scratch / "store", config,
                       lambda path, n, done: bar.update(task, completed=done,
                                                        status=Path(path).name))
            store = Store(scratch / "store")
        made = scratch / out.name
        with progress_bar() as bar:
            task = bar.add_task("predict", total=store.num_videos, status="")
            predict_to_submission(model, store, made, batch_size,
                                  lambda done, total: bar.update(task, completed=done))
        if with_names:
            from yt8mkit.data.named_submission import add_names_column

            assert vocab is not None
            add_names_column(made, vocab)
        os.replace(made, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _say(f"{store.num_videos:,} videos")
    results.print(str(out), markup=False)  # the result: the submission's path

