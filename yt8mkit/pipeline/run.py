"""Run the pipeline's stages in order inside one run directory.

Run directory::

    config.yaml         the effective config (a different one is refused: no overwriting)
    synth/              the generated data, when the config asks for synthetic data
    store/, test_store/ ingested TFRecords (a store named as data is used in place)
    baseline/           the label-frequency baseline: metrics.json, submission.csv
    zoo/NAME/           one first-level model: folds, out-of-fold and test predictions
    centroids/, derived/  k-means centroids and derived stores the zoo declares
    ensemble/           LightGBM over candidate labels: oof/, test/, metrics.json
    distill/            soft labels, students, the final model (soft and hard labels)
    final_model.onnx    the exported final model (+ .json: size, agreement, GAP check)
    stages/NAME.json    written when a stage completes; a rerun skips completed stages
    metrics.json        the summary: every model's out-of-fold GAP@20, test GAP@20
    submission.csv      the final model's submission (ONNX Runtime), when there is test
                        data; without the later stages, the best zoo model's
    table_rows.json     the second-level rows of `yt8m table`
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from yt8mkit.baselines import frequency_prior, frequency_top_k
from yt8mkit.data.folds import fold_ids, folds_info, train_rows, write_folds
from yt8mkit.data.ingest import open_or_ingest
from yt8mkit.data.store import Store
from yt8mkit.data.submission import write_submission
from yt8mkit.data.synth import TEST_DIR, generate
from yt8mkit.errors import Yt8mError
from yt8mkit.evaluation import evaluate_submission
from yt8mkit.pipeline.config import PipelineConfig, results_fields
from yt8mkit.pipeline.layout import write_members
from yt8mkit.rundir import (
    guard_config,
    lock_run_dir,
    prediction_gap,
    write_json,
)
from yt8mkit.train.cluster import RayPool
from yt8mkit.train.run import store_folds
from yt8mkit.train.runlog import RunLog
from yt8mkit.zoo.frame_inputs import prepare_zoo
from yt8mkit.zoo.neighbours import run_neighbour_members
from yt8mkit.zoo.runner import run_zoo
from yt8mkit.zoo.table import second_level_rows

Report = Callable[[str], None]


@dataclass
class PipelineResult:
    run_dir: Path
    metrics: dict = field(default_factory=dict)
    submission: Path | None = None
    skipped_stages: list[str] = field(default_factory=list)


class _Stages:
    """Completion markers: a stage that finished is not redone."""

    def __init__(self, run_dir: Path, report: Report) -> None:
        self.dir = run_dir / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.report = report
        self.skipped: list[str] = []

    def done(self, name: str) -> dict | None:
        path = self.dir / f"{name}.json"
        if path.is_file():
            self.skipped.append(name)
            self.report(f"stage {name}: complete, skipped")
            return json.loads(path.read_text())
        return None

    def finish(self, name: str, info: dict) -> dict:
        write_json(self.dir / f"{name}.json", info)
        return info


def _check_config(run_dir: Path, config: PipelineConfig) -> None:
    """Record the resolved config; a resume compares what decides the results (how the
    run executes, e.g. its number of workers, may change)."""
    path = run_dir / "config.yaml"
    stored = yaml.safe_load(path.read_text()) if path.is_file() else None
    # A run recorded before configs were recorded resolved has no zoo.resolved_models:
    # its models are compared as written, as they were then.
    with_models = not (isinstance(stored, dict)
                       and "resolved_models" not in (stored.get("zoo") or {}))
    guard_config(run_dir, "config.yaml", config.resolved(),
                 normalise=lambda data: results_fields(data, with_models))


def _data(config: PipelineConfig, run_dir: Path, stages: _Stages, report: Report,
          ) -> tuple[Store, Store | None]:
    data = config.data
    train, test = data.train, data.test
    if not train:
        assert data.synth is not None
        synth_dir = run_dir / "synth"
        if stages.done("synth") is None:
            report(f"stage synth: {data.synth.videos:,} videos, {data.synth.classes} classes")
            # overwrite: a dataset left by a crash between generate and its marker is
            # replaced; anything else there is refused, never deleted.
            summary = generate(data.synth, synth_dir, overwrite=True)
            stages.finish("synth", {"seconds": summary.seconds, "files": len(summary.files)})
        train = [str(synth_dir)]
        if data.synth.test_videos and test is None:
            test = [str(synth_dir / TEST_DIR)]
    report("stage ingest")
    store = open_or_ingest(train, run_dir, "store", data.num_classes)
    test_store = open_or_ingest(test, run_dir, "test_store", store.num_classes) if test else None
    if test_store is not None and test_store.num_classes > store.num_classes:
        raise Yt8mError(
            f"test data has labels up to {test_store.num_classes - 1}, the training data "
            f"{store.num_classes - 1}; set data.num_classes"
        )
    return store, test_store


def _folds(config: PipelineConfig, store: Store, report: Report) -> None:
    info = folds_info(store)
    wanted = config.folds
    key = (wanted.num_folds, wanted.seed, wanted.selection_fraction)
    if info is None or (info["num_folds"], info["seed"],
                        info.get("selection_fraction", 0.0)) != key:
        report(f"stage folds: {wanted.num_folds} folds, seed {wanted.seed}, "
               f"{wanted.selection_fraction:.0%} of the videos as the selection split")
        write_folds(store, *key)


def _baseline(store: Store, test_store: Store | None, run_dir: Path, stages: _Stages,
              report: Report) -> dict:
    """The label-frequency prior: out-of-fold (priors from the other folds) and on test."""
    done = stages.done("baseline")
    if done is not None:
        return done
    report("stage baseline: label frequencies")
    from yt8mkit.metrics import GapAccumulator

    folds = store_folds(store)
    accumulator = GapAccumulator(k=20)
    for fold in fold_ids(folds):
        held_out = store.scored_rows(np.flatnonzero(folds == fold))
        indices, scores = frequency_top_k(frequency_prior(store, train_rows(folds, fold)),
                                          len(held_out))
        accumulator.add_top_k(indices, scores, store.labels_dense(held_out))
    out = run_dir / "baseline"
    out.mkdir(exist_ok=True)
    metrics: dict = {"name": "label_frequency", "model": "frequency_prior",
                     "frame_level": False, "oof_gap": accumulator.gap()}
    if test_store is not None:
        indices, scores = frequency_top_k(frequency_prior(store), test_store.num_videos)
        write_submission(out / "submission.csv", test_store.ids(), indices, scores)
        if test_store.has_labels:
            metrics["test_gap"] = evaluate_submission(out / "submission.csv", test_store).gap
    write_json(out / "metrics.json", metrics)
    return stages.finish("baseline", metrics)


def run_pipeline(
    config: PipelineConfig,
    run_dir: Path,
    train: list[str] | None = None,
    test: list[str] | None = None,
    report: Report | None = None,
) -> PipelineResult:
    """Every stage in order; completed stages are skipped, so a rerun resumes. Every
    message, every epoch of the training jobs and any error go to ``run_dir/run.log``."""
    log = RunLog(run_dir)
    # The Ray connection, when the config asks for one, is opened before the zoo stage
    # and held until the end: distillation's jobs go to the same cluster.
    with log.active(f"pipeline {config.name}"), ExitStack() as held:
        return _run_stages(config, run_dir, train, test, log.tee(report), held)


def _run_stages(
    config: PipelineConfig,
    run_dir: Path,
    train: list[str] | None,
    test: list[str] | None,
    report: Report,
    held: ExitStack,
) -> PipelineResult:
    say = report
    if train or test:
        data = config.data.model_copy(
            update={"train": train or config.data.train, "test": test or config.data.test}
        )
        config = config.model_copy(update={"data": data})
    lock_run_dir(run_dir)
    _check_config(run_dir, config)
    began = time.perf_counter()
    stages = _Stages(run_dir, say)
    store, test_store = _data(config, run_dir, stages, say)
    _folds(config, store, say)
    metrics: dict = {"name": config.name, "models": {}}
    metrics["models"]["label_frequency"] = _baseline(store, test_store, run_dir, stages, say)
    members, cluster = _first_level(config, store, test_store, run_dir, say, held)
    metrics["models"].update(members)
    best = max(members, key=lambda name: members[name].get("oof_gap", -1.0))
    metrics["best_model"] = best
    submission = _second_level(config, store, test_store, run_dir, list(members), stages,
                               metrics, say, cluster) or run_dir / "zoo" / best / "submission.csv"
    write_json(run_dir / "table_rows.json",
               second_level_rows(metrics.get("ensemble"), metrics.get("distill")))
    if config.stack is not None:
        write_members(run_dir / "ensemble", list(members))

    result = PipelineResult(run_dir=run_dir, skipped_stages=stages.skipped)
    if test_store is not None:
        if submission != run_dir / "submission.csv":
            shutil.copyfile(submission, run_dir / "submission.csv")
        result.submission = run_dir / "submission.csv"
        if test_store.has_labels:
            metrics["test"] = evaluate_submission(result.submission, test_store).to_dict()
    metrics["seconds"] = time.perf_counter() - began
    write_json(run_dir / "metrics.json", metrics)
    result.metrics = metrics
    return result


def _first_level(config: PipelineConfig, store: Store, test_store: Store | None,
                 run_dir: Path, say: Report, held: ExitStack,
                 ) -> tuple[dict[str, dict], RayPool | None]:
    """The zoo (its centroids and derived stores first) and its nearest-neighbour
    members; each member's metrics, and the Ray connection when the config asks for one
    (held open by ``held`` for distillation's jobs)."""
    # Centroids and derived stores the zoo declares, computed once into the run directory.
    plan = prepare_zoo(config.zoo, store, test_store, run_dir, say)
    cluster = None
    if config.backend == "ray":
        # Checked before any job: every node sees the run directory and the stores.
        cluster = held.enter_context(RayPool(run_dir, [store.path, *plan.stores.values()],
                                             config.address, config.resources, say))
    say(f"stage zoo: {len(plan.configs)} models x {config.folds.num_folds} folds")
    zoo = run_zoo(plan.configs, str(store.path), run_dir / "zoo",
                  str(test_store.path) if test_store else None, config.backend,
                  config.zoo.retries, report=say, workers=config.workers,
                  stores=plan.stores, test_stores=plan.test_stores, cluster=cluster)
    plan.annotate(zoo.metrics)
    if zoo.failed:
        failures = run_dir / "zoo" / "failures.json"
        raise Yt8mError(f"{len(zoo.failed)} zoo job(s) failed; see {failures}")
    zoo.metrics.update(run_neighbour_members(config.zoo.neighbours, store, run_dir / "zoo",
                                             test_store, say))
    return zoo.metrics, cluster


def _second_level(config: PipelineConfig, store: Store, test_store: Store | None,
                  run_dir: Path, members: list[str], stages: _Stages, metrics: dict,
                  say: Report, cluster: RayPool | None = None) -> Path | None:
    """The stages the config asks for after the zoo (stack, distill, export, predict),
    their summaries added to ``metrics``; the final model's submission when there is one."""
    if config.stack is None:
        return None
    metrics["ensemble"] = _stack(config, store, test_store, run_dir, members, stages, say)
    if config.distill is None:
        return None
    metrics["distill"] = _distill(config, store, test_store, run_dir, stages, say, cluster)
    if config.export is None:
        return None
    metrics["export"] = _export(config, store, run_dir, stages, say)
    return _predict(run_dir, test_store, stages, say) if test_store is not None else None


def _stack(config: PipelineConfig, store: Store, test_store: Store | None, run_dir: Path,
           models: list[str], stages: _Stages, say: Report) -> dict:
    done = stages.done("stack")
    if done is not None:
        return done
    from yt8mkit.ensemble import run_stack

    assert config.stack is not None
    say(f"stage stack: LightGBM over the top-{config.stack.top_n} labels of {len(models)} models")
    zoo_dir = run_dir / "zoo"
    def fold_done(kind: str, info: dict) -> None:  # a line per fold: run.log, progress
        if kind == "fold":
            say(f"done lightgbm fold {info['fold']} (best iteration {info['best_iteration']}, "
                f"{info['seconds']:.0f} s)")

    result = run_stack(
        {m: zoo_dir / m / "oof" for m in models}, store, run_dir / "ensemble", config.stack,
        {m: zoo_dir / m / "test" for m in models} if test_store is not None else None,
        progress=fold_done,
    )
    summary = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}
    if test_store is not None and test_store.has_labels:
        # Scored once here, with the stage: a rerun reads it back from the stage's record.
        from yt8mkit.data.predictions import Predictions

        summary["test_gap"] = prediction_gap(Predictions(run_dir / "ensemble" / "test"),
                                             test_store)
    return stages.finish("stack", summary)


def _distill(config: PipelineConfig, store: Store, test_store: Store | None, run_dir: Path,
             stages: _Stages, say: Report, cluster: RayPool | None) -> dict:
    done = stages.done("distill")
    if done is not None:
        return done
    from yt8mkit.data.predictions import Predictions
    from yt8mkit.distill.run import run_distill

    assert config.distill is not None
    say(f"stage distill: {len(config.distill.students)} students on "
        f"{' and '.join(config.distill.kinds())} labels")
    metrics = run_distill(store, Predictions(run_dir / "ensemble" / "oof"), run_dir / "distill",
                          config.distill, test_store, say, workers=config.workers,
                          cluster=cluster)
    return stages.finish("distill", metrics)


def _export(config: PipelineConfig, store: Store, run_dir: Path, stages: _Stages,
            say: Report) -> dict:
    done = stages.done("export")
    if done is not None:
        return done
    from yt8mkit.data.vocabulary import load_vocabulary, run_vocabulary
    from yt8mkit.export.final import export_final_model

    assert config.export is not None and config.distill is not None
    say("stage export: final model to ONNX")
    vocabulary = run_vocabulary(run_dir)
    summary = export_final_model(store, run_dir / "distill", config.distill,
                                 run_dir / "final_model.onnx", config.export,
                                 load_vocabulary(vocabulary) if vocabulary else None)
    return stages.finish("export", summary)


def _predict(run_dir: Path, test_store: Store, stages: _Stages, say: Report) -> Path:
    out = run_dir / "final_model_submission.csv"
    if stages.done("predict") is None:
        from yt8mkit.export.predictor import predict_to_submission

        say(f"stage predict: {test_store.num_videos:,} test videos through ONNX Runtime")
        predict_to_submission(run_dir / "final_model.onnx", test_store, out)
        stages.finish("predict", {"submission": str(out)})
    return out
