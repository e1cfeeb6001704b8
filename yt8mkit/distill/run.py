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

The out-of-fold GAP of a model trained on soft labels is optimistic, and only its test
GAP (held-out videos) compares it fairly with the first level: the soft label of a
video of fold j comes from first-level models and a LightGBM model trained on the other
folds, fold k among them, so the student of fold k learns to imitate teachers that were
fitted to fold k's labels, and carries their fit over to fold k. Measured on dev: the
soft-label final model's out-of-fold GAP@20 was 0.734 against the ensemble's 0.714,
but 0.697 on held-out videos. A clean out-of-fold figure would need nested folds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from yt8mkit.data.store import Store
from yt8mkit.distill.config import DistillConfig
from yt8mkit.distill.final_model import FinalModelParams, StudentSpec, build_final_model
from yt8mkit.distill.soft_labels import SoftLabels, build_soft_labels
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import lock_run_dir
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.pool import Job, run_jobs
from yt8mkit.train.predictions import Predictions
from yt8mkit.train.run import check_run_config, run_fold, run_model, store_folds

Report = Callable[[str], None]


def _train_config(name: str, params: dict, fields: dict) -> TrainConfig:
    return TrainConfig.model_validate(
        {**fields, "name": name, "model": {"name": "student_mlp", "params": params}}
    )


def soft_labels_for(store: Store, ensemble_oof: Predictions, out: Path, blend: float
                    ) -> SoftLabels:
    path = out / "soft_labels"
    if path.is_dir():
        return SoftLabels.load(path)
    soft = build_soft_labels(ensemble_oof, store, blend)
    soft.save(path)
    return soft


def final_model_factory(
    store: Store, student_dirs: list[Path], student_params: list[dict], use_raw_input: bool
) -> Callable[[int], nn.Module]:
    """fold -> a final model over the students trained without that fold."""

    def build(fold: int) -> nn.Module:
        specs = [
            StudentSpec(params=params, checkpoint=str(d / f"fold{fold}" / "best.pt"))
            for d, params in zip(student_dirs, student_params)
        ]
        params = FinalModelParams(students=specs, use_raw_input=use_raw_input)
        return build_final_model(store.num_classes, store.dims, params)

    return build


def _fold_job(config: TrainConfig, store_path: str, fold: int, run_dir: str,
              soft_labels: str | None, final_of: tuple[list[str], list[dict], bool] | None,
              ) -> dict:
    """One fold of a student (``final_of`` None) or of the final model over the students
    in ``final_of``; in a worker process, so everything arrives as paths."""
    store = Store(store_path)
    targets = SoftLabels.load(soft_labels).dense if soft_labels else None
    factory = None
    if final_of is not None:
        dirs, params, raw = final_of
        factory = final_model_factory(store, [Path(d) for d in dirs], params, raw)
    return run_fold(config, store, store_folds(store), fold, Path(run_dir),
                    model_factory=factory, targets=targets)


def _train_folds(configs: dict[str, TrainConfig], dirs: dict[str, Path], store: Store,
                 soft_labels: Path | None, workers: int, say: Report,
                 final_of: tuple[list[str], list[dict], bool] | None = None) -> None:
    """Every fold of every model named in ``configs`` not yet done, on ``workers``
    processes; the caller's run_model then only assembles what they wrote."""
    if workers <= 1:
        return  # run_model trains in this process, with its progress
    folds = sorted(int(f) for f in np.unique(store_folds(store)))
    jobs = []
    for name, config in configs.items():
        check_run_config(dirs[name], config)
        jobs += [Job((name, fold), _fold_job,
                     (config, str(store.path), fold, str(dirs[name]),
                      str(soft_labels) if soft_labels else None, final_of))
                 for fold in folds if not (dirs[name] / f"fold{fold}" / "done.json").is_file()]
    result = run_jobs(jobs, workers, retries=1, report=say)
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
) -> dict:
    """Students and the final model, on the labels the config names; ``kinds`` (a
    subset of soft/hard) overrides it. Every step resumes from what is complete.
    ``workers`` > 1 trains the folds of the students, then of the final model, in that
    many processes."""
    say = report or (lambda message: None)
    lock_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    soft = soft_labels_for(store, ensemble_oof, out, config.blend)
    params = config.student_params()
    metrics: dict = {}
    if kinds is None:
        kinds = config.kinds()
    for kind in kinds:
        targets = soft.dense if kind == "soft" else None
        soft_path = out / "soft_labels" if kind == "soft" else None
        names = [f"{kind}_student{i}" for i in range(len(params))]
        student_dirs = [out / kind / f"student{i}" for i in range(len(params))]
        configs = {name: _train_config(name, student, config.train)
                   for name, student in zip(names, params)}
        _train_folds(configs, dict(zip(names, student_dirs)), store, soft_path, workers, say)
        for name, student, run_dir in zip(names, params, student_dirs):
            say(f"distill: {name} ({student.get('depth')}x{student.get('width')} "
                f"{student.get('activation')})")
            metrics[name] = _summary(run_model(configs[name], store, run_dir,
                                               targets=targets))
        say(f"distill: {kind}_final over {len(params)} frozen students")
        # The final model reads the students' inputs; its config names their
        # architecture, the factory builds the real network from their checkpoints.
        final_config = _train_config(f"{kind}_final", params[0], config.final_train)
        final_dir = out / kind / "final"
        final_of = ([str(d) for d in student_dirs], params, config.use_raw_input)
        _train_folds({final_config.name: final_config}, {final_config.name: final_dir}, store,
                     soft_path, workers, say, final_of)
        final = run_model(
            final_config, store, final_dir, test_store, targets=targets,
            model_factory=final_model_factory(store, student_dirs, params,
                                              config.use_raw_input),
        )
        metrics[f"{kind}_final"] = _summary(final)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("oof_gap", "oof_bce", "test_gap") if k in metrics}
