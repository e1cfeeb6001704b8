"""Running a zoo: every (model, fold) job, then each model's out-of-fold set and test
predictions. Finished jobs are skipped, so a zoo resumes after a crash; a failed job is
retried, reported, and does not stop the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yt8mkit.data.folds import fold_ids
from yt8mkit.data.store import Store
from yt8mkit.rundir import is_done, lock_run_dir, write_json
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.pool import Job, run_jobs
from yt8mkit.train.run import FOLD_OUTPUTS, check_run_config, run_fold, run_model, store_folds

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
    return run_fold(config, store, store_folds(store), fold, Path(model_dir))


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
    cpus_per_job: float = 1.0,
    gpus_per_job: float = 0.0,
    workers: int = 1,
    stores: dict[str, str] | None = None,
    test_stores: dict[str, str] | None = None,
) -> ZooResult:
    """``workers`` > 1 runs the local backend's jobs in that many processes. ``stores``
    and ``test_stores`` name another store for some models (derived stores, aligned row
    for row with ``store_path``: zoo/frame_inputs.py)."""
    say = report or (lambda message: None)
    lock_run_dir(out)
    store = Store(store_path)
    store_of = {name: (stores or {}).get(name, store_path) for name in configs}
    folds = fold_ids(store_folds(store))
    result = ZooResult()
    jobs = []
    for name in configs:
        for fold in folds:
            if _is_done(out / name, fold):
                result.skipped.append((name, fold))
            else:
                jobs.append((name, fold))
    say(f"{len(jobs)} jobs to run, {len(result.skipped)} already done")
    if backend == "ray":
        _run_ray(configs, store_of, out, jobs, retries, address, result, say,
                 cpus_per_job, gpus_per_job)
    else:
        for name in dict.fromkeys(name for name, _ in jobs):
            check_run_config(out / name, configs[name])  # once, before workers race on it
        pool = run_jobs([Job((name, fold), _job, (configs[name], store_of[name], fold,
                                                  str(out / name)))
                         for name, fold in jobs], workers, retries, say)
        result.done.extend(pool.done)  # type: ignore[arg-type]
        result.failed.update(pool.failed)  # type: ignore[arg-type]
    _write_failures(out, result)
    for name, config in configs.items():
        if all(_is_done(out / name, f) for f in folds):
            test_path = (test_stores or {}).get(name, test_store_path)
            result.metrics[name] = run_model(config, Store(store_of[name]), out / name,
                                             Store(test_path) if test_path else None)
    return result


def _write_failures(out: Path, result: ZooResult) -> None:
    failures = {f"{name}/fold{fold}": error for (name, fold), error in result.failed.items()}
    write_json(out / "failures.json", failures)


def _run_ray(
    configs: dict[str, TrainConfig], store_of: dict[str, str], out: Path,
    jobs: list[tuple[str, int]],
    retries: int, address: str | None, result: ZooResult, say: Report,
    cpus_per_job: float, gpus_per_job: float,
) -> None:
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the optional extra
        raise RuntimeError(
            "the Ray backend needs the optional extra: pip install 'yt8mkit[cluster]'"
        ) from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False)
    remote = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=0)(_job)
    attempts = dict.fromkeys(jobs, 0)
    pending = {remote.remote(configs[n], store_of[n], f, str(out / n)): (n, f)
               for n, f in jobs}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            name, fold = pending.pop(ref)
            try:
                ray.get(ref)
                result.done.append((name, fold))
                say(f"done {name} fold {fold}")
            except Exception as err:
                attempts[(name, fold)] += 1
                say(f"failed {name} fold {fold} "
                    f"(attempt {attempts[(name, fold)]}/{retries + 1})")
                if attempts[(name, fold)] <= retries:
                    again = remote.remote(configs[name], store_of[name], fold, str(out / name))
                    pending[again] = (name, fold)
                else:
                    result.failed[(name, fold)] = repr(err)
    finally:
        if started_here:
            ray.shutdown()
