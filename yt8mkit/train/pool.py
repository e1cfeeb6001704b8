"""Independent (model, fold) training jobs on a pool of worker processes.

Small networks keep two threads of one process busier synchronising than computing;
two single-threaded processes side by side do not have that cost. Measured on dev/
with 2 cores, in the pipeline run of bench/results/pipeline.json: a logistic fold took
about 80 s in each of two processes (60 s alone with two threads), a 6-epoch
mixture-of-experts fold about 280 s (about 226 s alone): 1.5-1.6x the throughput.
``workers=1`` runs the jobs in this process, in order. Each worker gets
``cores // workers`` threads (at least one); a job's result does not depend on the pool
when its config fixes ``threads`` (tests), else only up to floating-point summation
order.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yt8mkit.train.cluster import RayPool

Report = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` run once; ``key`` names it in reports and results. ``fn`` must be a
    module-level function and ``args`` picklable (workers are spawned, not forked)."""

    key: Hashable
    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass
class PoolResult:
    done: list[Hashable] = field(default_factory=list)
    failed: dict[Hashable, str] = field(default_factory=dict)


def _init_worker(threads: int, devices: Any) -> None:
    device = devices.get()
    if device is not None:
        # Before torch touches CUDA: this worker sees its one GPU, as device 0.
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import torch

    torch.set_num_threads(threads)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [device.strip() for device in listed.split(",") if device.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def run_jobs(jobs: Sequence[Job], workers: int = 1, retries: int = 1,
             report: Report | None = None, cluster: RayPool | None = None) -> PoolResult:
    """Every job, each retried up to ``retries`` times after a failure; one failed job
    does not stop the others. A crashed worker (killed, out of memory) fails the jobs it
    took down with it, and a fresh pool runs their retries. With ``cluster`` the jobs
    run on that Ray cluster instead (``workers`` unused)."""
    say = report or (lambda message: None)
    if cluster is not None:
        return cluster.run(jobs, retries, say)
    result = PoolResult()
    remaining = list(jobs)
    for attempt in range(retries + 1):
        if not remaining:
            break
        errors = (_run_inline(remaining, say) if workers <= 1
                  else _run_pool(remaining, workers, say))
        for job in remaining:
            if job.key not in errors:
                result.done.append(job.key)
        for key in errors:
            say(f"failed {job_name(key)} (attempt {attempt + 1}/{retries + 1})")
        remaining = [job for job in remaining if job.key in errors]
        if attempt == retries:
            result.failed.update(errors)
    return result


def job_name(key: Hashable) -> str:
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[0]} fold {key[1]}"
    return str(key)


def _run_inline(jobs: Sequence[Job], say: Report) -> dict[Hashable, str]:
    errors: dict[Hashable, str] = {}
    for job in jobs:
        try:
            job.fn(*job.args)
            say(f"done {job_name(job.key)}")
        except Exception:  # one failed job must not stop the others
            errors[job.key] = traceback.format_exc()
    return errors


def _run_pool(jobs: Sequence[Job], workers: int, say: Report) -> dict[Hashable, str]:
    errors: dict[Hashable, str] = {}
    count = min(workers, len(jobs))
    context = get_context("spawn")
    # On a machine with GPUs, each worker on its own one (round robin when there are
    # more workers than GPUs). A broken pool starts no replacement worker, so one
    # device a worker is enough.
    gpus = visible_gpus()
    devices = context.Queue()
    for i in range(count):
        devices.put(gpus[i % len(gpus)] if gpus else None)
    executor = ProcessPoolExecutor(
        max_workers=count, mp_context=context,
        initializer=_init_worker, initargs=(worker_threads(workers), devices),
    )
    try:
        futures: dict[Future, Job] = {executor.submit(j.fn, *j.args): j for j in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                future.result()
                say(f"done {job_name(job.key)}")
            except Exception as err:
                errors[job.key] = "".join(traceback.format_exception(err))
    finally:
        # On an interrupt the queued jobs are dropped; the running ones finish their
        # fold or die with the pool, and a rerun resumes from the completed folds.
        executor.shutdown(wait=True, cancel_futures=True)
    return errors
