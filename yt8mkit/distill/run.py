"""Distillation over the folds: soft labels from the ensemble's out-of-fold scores,
students trained on them fold by fold, then per fold a final model over the frozen
features of the students of that fold, so its out-of-fold predictions never saw their
videos either.

Directory::

    soft_labels/                 the sparse soft-label matrix
    soft/student{i}/             a student over 5 folds (run directory of train.run)
    soft/final/                  the final model over 5 folds: oof/, test/, submission.csv
    hard/...                     the same trained on the hard labels (for the comparison)
    metrics.json                 out-of-fold (and test) GAP@20 of every model above

Every choice of this stage is made leak-free when the store's folds set a selection split
aside (``folds.selection_fraction``; the pipeline's default): the students' and the final
model's epochs are chosen on it (``TrainConfig.select_on``), and its GAP@20
(``selection_gap``) is the stage's score. The out-of-fold GAP of a model trained on soft
labels is optimistic and chooses nothing: the soft label of a video of fold j comes from
first-level models and a LightGBM model trained on the other folds, fold k among them, so
the student of fold k learns to imitate teachers that were fitted to fold k's labels, and
carries their fit over to fold k (measured on dev: a soft-label final model scored 0.793
out of fold against the ensemble's 0.716, and 0.710 on held-out videos). No teacher
trained on the selection split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from yt8mkit.data.folds import fold_ids, selection_rows
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.distill.config import DistillConfig
from yt8mkit.distill.final_model import (
    FinalModel,
    FinalModelParams,
    StudentSpec,
    build_final_model,
)
from yt8mkit.distill.oof_final import run_oof_final
from yt8mkit.distill.soft_labels import SoftLabels, build_soft_labels
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import is_done, lock_run_dir, write_json
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.pool import Job, run_jobs
from yt8mkit.train.run import (
    FOLD_OUTPUTS,
    check_run_config,
    run_fold,
    run_model,
    soft_targets,
    store_folds,
)

if TYPE_CHECKING:
    from yt8mkit.train.cluster import RayPool

Report = Callable[[str], None]


StudentModels = list[tuple[str, dict]]


def _train_config(name: str, model: tuple[str, dict], fields: dict, select_on: str
                  ) -> TrainConfig:
    return TrainConfig.model_validate({
        **fields, "name": name, "select_on": select_on,
        "model": {"name": model[0], "params": model[1]},
    })


def select_on_for(store: Store) -> str:
    """Where second-level epochs are chosen: the selection split when the folds have one."""
    return "selection" if len(selection_rows(store_folds(store))) else "fold"


def soft_labels_for(store: Store, ensemble_oof: Predictions, out: Path, blend: float,
                    temperature: float = 1.0) -> SoftLabels:
    path = out / "soft_labels"
    if path.is_dir():
        soft = SoftLabels.load(path)
        if soft.meta.options() != (blend, temperature):
            raise Yt8mError(
                f"{path}: soft labels built with blend {soft.meta.blend} and temperature "
                f"{soft.meta.temperature}, the config asks for {blend} and {temperature}; "
                f"use a new output directory"
            )
        return soft
    soft = build_soft_labels(ensemble_oof, store, blend, temperature)
    soft.save(path)
    return soft


def final_model_factory(
    store: Store, student_dirs: list[Path], students: StudentModels, use_raw_input: bool
) -> Callable[[int], FinalModel]:
    """fold -> a final model over the students trained without that fold."""

    def build(fold: int) -> FinalModel:
        specs = [
            StudentSpec(name=name, params=params,
                        checkpoint=str(d / f"fold{fold}" / "best.pt"))
            for d, (name, params) in zip(student_dirs, students)
        ]
        params = FinalModelParams(students=specs, use_raw_input=use_raw_input)
        return build_final_model(store.num_classes, store.dims, params)

    return build


def fold_job(config: TrainConfig, store_path: str, fold: int, run_dir: str,
              soft_labels: str | None, final_of: tuple[list[str], StudentModels, bool] | None,
              ) -> dict:
    """One fold of a student (``final_of`` None) or of the final model over the students
    in ``final_of``; in a worker process, so everything arrives as paths."""
    store = Store(store_path)
    targets = soft_targets(soft_labels, store) if soft_labels else None
    factory = None
    if final_of is not None:
        dirs, params, raw = final_of
        factory = final_model_factory(store, [Path(d) for d in dirs], params, raw)
    return run_fold(config, store, store_folds(store), fold, Path(run_dir),
                    model_factory=factory, targets=targets)


def _train_folds(configs: dict[str, TrainConfig], dirs: dict[str, Path], store: Store,
                 soft_labels: dict[str, Path | None], workers: int, say: Report,
                 final_of: tuple[list[str], StudentModels, bool] | None = None,
                 cluster: RayPool | None = None) -> None:
    """Every fold of every model named in ``configs`` not yet done, on ``workers``
    processes or the Ray ``cluster``; the caller's run_model then only assembles what
    they wrote."""
    if workers <= 1 and cluster is None:
        return  # run_model trains in this process, with its progress
    folds = fold_ids(store_folds(store))
    jobs = []
    for name, config in configs.items():
        check_run_config(dirs[name], config)
        jobs += [Job((name, fold), fold_job,
                     (config, str(store.path), fold, str(dirs[name]),
                      str(soft_labels[name]) if soft_labels[name] else None, final_of))
                 for fold in folds if not is_done(dirs[name] / f"fold{fold}", FOLD_OUTPUTS)]
    result = run_jobs(jobs, workers, retries=1, report=say, cluster=cluster)
    if result.failed:
        first = next(iter(result.failed.values()))
        raise Yt8mError(f"{len(result.failed)} distillation job(s) failed; the first:\n{first}")


def run_distill(
    store: Store,
    ensemble_oof: Predictions,
    out: Path,
    config: DistillConfig,
    test_store: Store | None = None,
    report: Report | None = None,
    kinds: Sequence[str] | None = None,
    workers: int = 1,
    cluster: RayPool | None = None,
) -> dict:
    """Students and the final model, on the labels the config names; ``kinds`` (a
    subset of soft/hard) overrides it. Every step resumes from what is complete.
    ``workers`` > 1 trains the folds of the students, then of the final model, in that
    many processes; ``cluster`` on that Ray cluster."""
    say = report or (lambda message: None)
    lock_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    soft = soft_labels_for(store, ensemble_oof, out, config.blend, config.temperature)
    students = config.student_models()
    select_on = select_on_for(store)
    if select_on == "fold":
        say("distill: no selection split in the store's folds: epochs are chosen on "
            "out-of-fold scores, which leak (see yt8mkit/data/folds.py)")
    metrics: dict = {}
    if kinds is None:
        kinds = config.kinds()
    for kind in kinds:
        targets = soft.dense if kind == "soft" else None
        soft_path = out / "soft_labels" if kind == "soft" else None
        names = [f"{kind}_student{i}" for i in range(len(students))]
        student_dirs = [out / kind / f"student{i}" for i in range(len(students))]
        configs = {name: _train_config(name, model, {**config.train, **spec.train}, select_on)
                   for name, model, spec in zip(names, students, config.students)}
        # A student fixed to the hard labels trains on them whatever the kind.
        paths = {name: None if spec.labels == "hard" else soft_path
                 for name, spec in zip(names, config.students)}
        _train_folds(configs, dict(zip(names, student_dirs)), store, paths, workers, say,
                     cluster=cluster)
        for name, spec, run_dir in zip(names, config.students, student_dirs):
            say(f"distill: {name} ({spec.describe()})")
            metrics[name] = _summary(run_model(
                configs[name], store, run_dir,
                targets=None if spec.labels == "hard" else targets))
        say(f"distill: {kind}_final over {len(students)} frozen students")
        # The final model reads the students' inputs; its config names the first one's
        # architecture, the factory builds the real network from their checkpoints.
        final_config = _train_config(f"{kind}_final", students[0], config.final_train,
                                      select_on)
        final_dir = out / kind / "final"
        factory = final_model_factory(store, student_dirs, students, config.use_raw_input)
        if config.final_fit == "out_of_fold":
            lock_run_dir(final_dir)
            final = run_oof_final(final_config, store, store_folds(store), factory, targets,
                                  final_dir, test_store, say)
        else:
            final_of = ([str(d) for d in student_dirs], students, config.use_raw_input)
            _train_folds({final_config.name: final_config}, {final_config.name: final_dir},
                         store, {final_config.name: soft_path}, workers, say, final_of,
                         cluster)
            final = run_model(final_config, store, final_dir, test_store, targets=targets,
                              model_factory=factory)
        metrics[f"{kind}_final"] = _summary(final)
    write_json(out / "metrics.json", metrics)
    return metrics


def _summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("oof_gap", "selection_gap", "selected_on", "oof_bce",
                                    "test_gap") if k in metrics}
