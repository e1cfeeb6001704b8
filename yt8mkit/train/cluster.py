"""Training jobs on a Ray cluster (the optional extra ``cluster``).

The cluster shares the run directory and the stores through a filesystem mounted at the
same path on every node (NFS, a cloud filestore, Lustre...), not through Ray's object
store. A store is memory-mapped arrays that a job reads in random batches (a frame-level
one is tens of GiB), and a job's outputs (checkpoints, predictions, ``done.json``) are
what the next stages and a resumed run read back from the run directory: shipping the
store to every node's object store would copy all of it into each node's shared memory,
and every output would have to travel back and be written by the driver, which then
also decides what is complete. With a shared filesystem a job on any node reads and
writes exactly what a local worker process does, so resume, retries and the outputs
are those of the local backend.

:class:`RayPool` checks that at start: the driver writes a token file into the run
directory, and a probe on every node that can run a job must see the stores and read
that token (a directory of the same name on a node's local disk holds no token), and
must be able to write there. Each job checks the token again before it starts, so a
node that joins later without the mount fails the run at once, naming itself and the
path. A job lost with its node or worker process (SIGKILL, preemption) is resubmitted
without counting as a failure of the job; it resumes from its fold's last checkpoint
on the shared filesystem.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from yt8mkit.errors import Yt8mError
from yt8mkit.train.pool import Job, PoolResult, Report, job_name

TOKEN_FILE = ".cluster_token"
# A job whose node or worker dies this many times is a failure, not bad luck (a job that
# runs its worker out of memory kills it every time).
MAX_LOSSES = 3
PROBE_TIMEOUT_S = 180.0


class JobResources(BaseModel):
    """What one training job asks the Ray cluster for: the one place of the defaults."""

    model_config = ConfigDict(extra="forbid")
    cpus_per_job: float = Field(1.0, gt=0)
    # None: one GPU a job when the cluster has GPUs, none otherwise. 0 keeps the jobs on
    # CPUs (and hides the nodes' GPUs from them); 0.5 puts two jobs on one GPU.
    gpus_per_job: float | None = Field(None, ge=0)


class NotShared(Yt8mError):
    """A node cannot use the run directory or a store at the driver's path."""


def node_name() -> str:
    return f"{socket.gethostname()} ({_node_ip()})"


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside a Ray worker: the name alone still names the node
        return "?"


def check_node(paths: Sequence[str], token_path: str, token: str, write: bool = True) -> None:
    """Raise :class:`NotShared` naming this node and the first path it cannot use."""
    node = node_name()
    hint = ("every node must mount the run directory and the stores at the driver's "
            "paths (README: On a cluster)")
    for path in paths:
        if not os.path.exists(path):
            raise NotShared(f"node {node} cannot see {path}; {hint}")
    run_dir = os.path.dirname(token_path)
    try:
        seen = Path(token_path).read_text()
    except OSError:
        seen = None
    if seen != token:
        raise NotShared(
            f"node {node} does not see the driver's run directory {run_dir} (its "
            f"{TOKEN_FILE} {'is missing' if seen is None else 'is another run’s'}: a "
            f"directory of that name on the node's own disk?); {hint}"
        )
    if write:
        probe = Path(run_dir) / f".cluster_write_{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise NotShared(f"node {node} cannot write to {run_dir}: {err}") from None


def _probe(paths: list[str], token_path: str, token: str) -> str:
    check_node(paths, token_path, token)
    return node_name()


def _run_job(fn: Any, args: tuple, token_path: str, token: str) -> str:
    """One job on a Ray worker; returns the node it ran on."""
    import ray

    check_node([], token_path, token, write=False)
    if not ray.get_gpu_ids():
        # Ray leaves a job without GPUs the node's GPUs; one it did not reserve for the
        # job must not be taken by a config asking for `device: auto`.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    # As many threads as CPUs asked for (a config's `threads` still decides in the end).
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    fn(*args)
    return node_name()


def _check_reachable(address: str | None) -> None:
    """Fail at once on a HOST:PORT nothing answers at: Ray itself retries for minutes."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None or "://" in address:
        return  # a Ray started here, or a ray:// client address: Ray resolves those
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as err:
        raise Yt8mError(f"cannot reach the Ray cluster at {address}: {err}") from None


class RayPool:
    """A connection to a Ray cluster (``address``; None: ``RAY_ADDRESS`` or a Ray started
    here) that runs :class:`~yt8mkit.train.pool.Job` s, checked at start to share
    ``run_dir`` and ``paths`` (the stores the jobs read) with the driver."""

    def __init__(self, run_dir: Path, paths: Sequence[str | Path], address: str | None = None,
                 resources: JobResources | None = None, report: Report | None = None) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.paths = sorted({str(Path(p).resolve()) for p in paths})
        self.address = address
        self.resources = resources or JobResources()
        self.say = report or (lambda message: None)
        self.token = uuid.uuid4().hex
        self.token_path = str(self.run_dir / TOKEN_FILE)
        self.gpus_per_job = 0.0
        self._started_here = False

    def __enter__(self) -> RayPool:
        try:
            import ray
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise Yt8mError(
                "the Ray backend needs the optional extra: pip install 'yt8mkit[cluster]'"
            ) from err
        if not ray.is_initialized():
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError) as err:
                raise Yt8mError(f"cannot reach the Ray cluster at {self.address}: {err}") from None
            self._started_here = True
        try:
            self._check_cluster(ray)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        Path(self.token_path).unlink(missing_ok=True)
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False

    def _check_cluster(self, ray: Any) -> None:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = self.resources.cpus_per_job
        has_gpus = any(n["Resources"].get("GPU", 0) > 0 for n in nodes)
        gpus = self.resources.gpus_per_job
        self.gpus_per_job = (1.0 if has_gpus else 0.0) if gpus is None else gpus
        able = [n for n in nodes if n["Resources"].get("CPU", 0) >= cpus
                and n["Resources"].get("GPU", 0) >= self.gpus_per_job]
        if not able:
            largest = max((n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0))
                          for n in nodes) if nodes else (0, 0)
            raise Yt8mError(
                f"no node of the Ray cluster has {cpus:g} CPUs and {self.gpus_per_job:g} "
                f"GPUs for a job (the largest: {largest[0]:g} CPUs, {largest[1]:g} GPUs); "
                f"lower resources.cpus_per_job / resources.gpus_per_job"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        Path(self.token_path).write_text(self.token)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(_probe)
        refs = {probe.options(num_cpus=0, max_retries=0, scheduling_strategy=(
                    NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))).remote(
                    [*self.paths, str(self.run_dir)], self.token_path, self.token):
                n for n in able}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        if late:
            node = refs[late[0]]
            raise Yt8mError(f"node {node['NodeManagerAddress']} (Ray node "
                            f"{node['NodeID'][:12]}) did not answer the start-up check in "
                            f"{PROBE_TIMEOUT_S:.0f} s")
        answered = 0
        for ref in ready:
            try:
                ray.get(ref)
                answered += 1
            except ray.exceptions.RayTaskError as err:
                if isinstance(err.cause, NotShared):
                    raise NotShared(str(err.cause)) from None
                raise
            except ray.exceptions.RayError as err:  # the node left meanwhile: no job for it
                self.say(f"ray: node {refs[ref]['NodeManagerAddress']} left during the "
                         f"start-up check ({type(err).__name__})")
        if not answered:
            raise Yt8mError("no node of the Ray cluster answered the start-up check")
        self.say(f"ray: {answered} node(s) can run a job ({cpus:g} CPUs, "
                 f"{self.gpus_per_job:g} GPUs each), every one sees {self.run_dir}")

    def run(self, jobs: Sequence[Job], retries: int = 1, report: Report | None = None
            ) -> PoolResult:
        """Every job, each retried up to ``retries`` times after it raised; a job lost
        with its node or worker is resubmitted (up to :data:`MAX_LOSSES` times)."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        say = report or self.say
        remote = ray.remote(_run_job).options(num_cpus=self.resources.cpus_per_job,
                                              num_gpus=self.gpus_per_job, max_retries=0)
        result = PoolResult()
        attempts: Counter = Counter()
        losses: Counter = Counter()

        def submit(job: Job) -> Any:
            return remote.remote(job.fn, job.args, self.token_path, self.token)

        pending = {submit(job): job for job in jobs}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready[0])
                name = job_name(job.key)
                try:
                    node = ray.get(ready[0])
                except RayTaskError as err:  # the job raised
                    if isinstance(err.cause, NotShared):
                        raise NotShared(str(err.cause)) from None
                    attempts[job.key] += 1
                    say(f"failed {name} (attempt {attempts[job.key]}/{retries + 1})")
                    if attempts[job.key] <= retries:
                        pending[submit(job)] = job
                    else:
                        result.failed[job.key] = str(err)
                except RayError as err:  # its node or worker process died under it
                    losses[job.key] += 1
                    # Ray's first sentence says what happened; the rest is how to debug.
                    cause = str(err).split(". ")[0].strip()
                    if losses[job.key] <= MAX_LOSSES:
                        say(f"lost {name} ({type(err).__name__}: {cause}); resubmitted")
                        pending[submit(job)] = job
                    else:
                        say(f"failed {name}: lost {losses[job.key]} times")
                        result.failed[job.key] = f"{type(err).__name__}: {err}"
                else:
                    result.done.append(job.key)
                    say(f"done {name} on {node}")
        finally:
            for ref in pending:  # an error or an interrupt: nothing left running
                ray.cancel(ref, force=True)
        return result
