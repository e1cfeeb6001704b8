"""Running a zoo: every (model, fold) job, then each model's out-of-fold set and test
predictions. Finished jobs are skipped, so a zoo resumes after a crash; a failed job is
retried, reported, and does not stop the others."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yt8mkit.data.folds import fold_ids
from yt8mkit.data.store import Store
from yt8mkit.rundir import is_done, lock_run_dir, write_json
from yt8mkit.train.cluster import JobResources, RayPool
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.pool import Job, run_jobs
from yt8mkit.train.repeats import repeat_units, run_partitions
from yt8mkit.train.run import FOLD_OUTPUTS, check_run_config, run_fold, store_folds

Backend = Literal["local", "ray"]
Report = Callable[[str], None]


@dataclass
class ZooResult:
    done: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: dict[tuple[str, int], str] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)


def _job(config: TrainConfig, store_path: str, fold: int, model_dir: str) -> dict:
    """One (model, fold): self-contained so that it can run in another process or node."""
    store = Store(store_path)
    check_run_config(Path(model_dir), config)
    return run_fold(config, store, store_folds(store, config.partition), fold, Path(model_dir))


def _is_done(model_dir: Path, fold: int) -> bool:
    return is_done(model_dir / f"fold{fold}", FOLD_OUTPUTS)


def run_zoo(
    configs: dict[str, TrainConfig],
    store_path: str,
    out: Path,
    test_store_path: str | None = None,
    backend: Backend = "local",
    retries: int = 1,
    address: str | None = None,
    report: Report | None = None,
    resources: JobResources | None = None,
    workers: int = 1,
    stores: dict[str, str] | None = None,
    test_stores: dict[str, str] | None = None,
    cluster: RayPool | None = None,
) -> ZooResult:
    """``workers`` > 1 runs the local backend's jobs in that many processes. ``stores``
    and ``test_stores`` name another store for some models (derived stores, aligned row
    for row with ``store_path``: zoo/frame_inputs.py). The Ray backend connects to
    ``address`` for this call, unless ``cluster`` is a connection already open (the
    pipeline's, shared by its stages)."""
    say = report or (lambda message: None)
    lock_run_dir(out)
    store = Store(store_path)
    store_of = {name: (stores or {}).get(name, store_path) for name in configs}
    folds = fold_ids(store_folds(store))
    result = ZooResult()
    # A model trained over several partitions into folds (TrainConfig.repeats) is one
    # unit a partition, named NAME/repeatR in jobs and failures; otherwise one, NAME.
    units = {name: repeat_units(config, out / name) for name, config in configs.items()}
    jobs: dict[tuple[str, int], tuple[TrainConfig, str, Path]] = {}
    for name, model_units in units.items():
        for unit_config, unit_dir in model_units:
            label = str(unit_dir.relative_to(out))
            for fold in folds:
                if _is_done(unit_dir, fold):
                    result.skipped.append((label, fold))
                else:
                    jobs[(label, fold)] = (unit_config, store_of[name], unit_dir)
    say(f"{len(jobs)} jobs to run, {len(result.skipped)} already done")
    for name in dict.fromkeys(unit_config.name for unit_config, _, _ in jobs.values()):
        # Once, before workers race on them.
        if configs[name].repeats > 1:
            check_run_config(out / name, configs[name])
        for unit_config, unit_dir in units[name]:
            check_run_config(unit_dir, unit_config)
    with ExitStack() as stack:
        if cluster is None and backend == "ray" and jobs:
            cluster = stack.enter_context(
                RayPool(out, sorted(set(store_of.values())), address, resources, say))
        pool = run_jobs([Job(key, _job, (unit_config, store_path, key[1], str(unit_dir)))
                         for key, (unit_config, store_path, unit_dir) in jobs.items()],
                        workers, retries, say, cluster)
    result.done.extend(pool.done)  # type: ignore[arg-type]
    result.failed.update(pool.failed)  # type: ignore[arg-type]
    _write_failures(out, result)
    for name, config in configs.items():
        if all(_is_done(unit_dir, f) for _, unit_dir in units[name] for f in folds):
            test_path = (test_stores or {}).get(name, test_store_path)
            result.metrics[name] = run_partitions(config, Store(store_of[name]), out / name,
                                             Store(test_path) if test_path else None)
    return result


def _write_failures(out: Path, result: ZooResult) -> None:
    failures = {f"{name}/fold{fold}": error for (name, fold), error in result.failed.items()}
    write_json(out / "failures.json", failures)
