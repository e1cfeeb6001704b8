"""The pipeline's training jobs on a Ray cluster of two nodes that the test starts itself
(``ray start --head`` and ``ray start --address`` on other ports, one CPU each, in a
temporary directory): one node is killed with SIGKILL while it runs a zoo job, and the
run still ends with the outputs of a local run, array for array. A node that cannot
see the run directory or a store fails the run at once, naming both. Local worker
processes each get their own GPU.

The two-node test is this file's slow one (two Ray nodes start: about 40 s on 2 busy
cores); the others take a second or two each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import yt8mkit
from tests.pool_jobs import record_device
from yt8mkit.cli.main import app
from yt8mkit.data.predictions import Predictions
from yt8mkit.errors import Yt8mError
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.pipeline.run import run_pipeline
from yt8mkit.train.cluster import TOKEN_FILE, JobResources, NotShared, RayPool, check_node
from yt8mkit.train.pool import Job, run_jobs

RAY = Path(sys.executable).with_name("ray")
TINY = {"batch_size": 32, "eval_batch_size": 256, "epochs": 2, "threads": 1, "device": "cpu",
        "optim": {"warmup_steps": 2}, "seed": 0}
PIPELINE = {
    "name": "on_a_cluster",
    "data": {"synth": {"videos": 240, "classes": 12, "seed": 4, "rgb_dim": 16, "audio_dim": 8,
                       "test_videos": 40, "label_test": True}},
    "folds": {"num_folds": 2, "seed": 0},
    # Enough epochs (about 2 s a fold) that the node dies in training, not after it.
    "zoo": {"defaults": {**TINY, "epochs": 60, "patience": 60},
            "models": {"tiny": {"model": {"name": "resnet_like", "params": {"inner_size": 16}}}}},
    "stack": {"top_n": 10, "num_leaves": 7, "n_estimators": 20, "early_stopping_rounds": 5,
              "min_data_in_leaf": 5, "threads": 1},
    # per_fold: the final model's folds are jobs too (the out-of-fold final layer is one
    # model, fitted on the driver).
    "distill": {"labels": "soft", "students": [{"depth": 1, "width": 16}],
                "train": TINY, "final_train": TINY, "final_fit": "per_fold"},
    "export": None,
}
# The test's own clusters: no token file in the home directory, no usage report.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


NODE_PORTS = ["--node-manager-port", "--object-manager-port", "--runtime-env-agent-port",
              "--dashboard-agent-grpc-port", "--dashboard-agent-listen-port",
              "--metrics-export-port"]
WORKER_PORTS = 16


def _node_ports(ports: list[int]) -> list[str]:
    """Every port a node listens on, from ``ports`` (free ones, taken all at once for
    both nodes so that no two collide)."""
    named = [f"{n}={p}" for n, p in zip(NODE_PORTS, ports)]
    workers = ",".join(str(p) for p in ports[len(NODE_PORTS):])
    return [*named, f"--worker-port-list={workers}"]


@dataclass
class Cluster:
    address: str
    head: subprocess.Popen
    worker: subprocess.Popen
    env: dict[str, str]


def _start_node(args: list[str], log: Path, env: dict[str, str], ports: list[int]
                ) -> subprocess.Popen:
    # A session of its own: the node's raylet and helpers are one process group, to kill.
    return subprocess.Popen(
        [str(RAY), "start", "--block", "--num-cpus=1", "--num-gpus=0",
         "--object-store-memory=100000000", "--disable-usage-stats",
         "--include-log-monitor=false", *_node_ports(ports), *args],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_started(node: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while "Ray runtime started" not in log.read_text():
        assert node.poll() is None, f"ray start failed:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"ray start hangs:\n{log.read_text()}"
        time.sleep(0.1)


def _session(sid: int) -> list[int]:
    """The processes of a node started with ``ray start`` in a session of its own: the
    raylet, its helpers, and the workers (in process groups of their own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:  # ended meanwhile
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def _kill_node(node: subprocess.Popen) -> None:
    """SIGKILL every process of the node at once, the job's worker among them."""
    for pid in _session(node.pid):
        with suppress(ProcessLookupError):  # ended meanwhile
            os.kill(pid, signal.SIGKILL)
    node.wait(timeout=30)


def _ray() -> Any:
    return pytest.importorskip("ray", reason="the Ray backend is the optional extra [cluster]")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    _ray()
    # Short: Ray's socket paths under it must stay within the kernel's 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="yt8m-ray-", dir="/tmp"))
    # The nodes' workers import yt8mkit from this checkout, as a node of a real cluster
    # imports the installed package.
    root = str(Path(yt8mkit.__file__).resolve().parents[1])
    env = {**os.environ, **RAY_ENV,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    per_node = len(NODE_PORTS) + WORKER_PORTS
    port, client_port, *ports = _free_ports(2 + 2 * per_node)
    nodes: list[subprocess.Popen] = []
    try:
        head = _start_node(["--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                            "--include-dashboard=false", f"--temp-dir={temp}",
                            f"--ray-client-server-port={client_port}"],
                           temp / "head.log", env, ports[:per_node])
        nodes.append(head)
        # One after the other: on a busy machine two starting nodes at once can run past
        # Ray's own start-up deadlines.
        _wait_started(head, temp / "head.log")
        worker = _start_node([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1"],
                             temp / "worker.log", env, ports[per_node:])
        nodes.append(worker)
        _wait_started(worker, temp / "worker.log")
        yield Cluster(f"127.0.0.1:{port}", head, worker, env)
    finally:
        for node in reversed(nodes):
            _kill_node(node)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _predictions(run: Path) -> dict[str, Predictions]:
    return {str(d.relative_to(run)): Predictions(d) for d in sorted(run.rglob("*"))
            if d.is_dir() and d.name in ("oof", "test") and Predictions.exists(d)}


def test_a_node_killed_mid_job_the_pipeline_ends_as_a_local_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(PIPELINE))
    run = tmp_path / "ray"
    out = (tmp_path / "ray.out").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "yt8mkit", "pipeline", str(config_file), "--out", str(run),
         "--backend", "ray", "--address", cluster.address],
        stdout=out, stderr=subprocess.STDOUT, env=cluster.env)
    try:
        # Both folds of the zoo's model have a checkpoint (one job on each one-CPU node,
        # each in training): then every process of the worker node dies at once.
        deadline = time.monotonic() + 240
        fold_dirs = [run / "zoo" / "tiny" / f"fold{f}" for f in (0, 1)]
        while not all((d / "last.pt").is_file() for d in fold_dirs):
            assert driver.poll() is None, (tmp_path / "ray.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "ray.out").read_text()
            time.sleep(0.01)
        _kill_node(cluster.worker)
        done_at_kill = [(d / "done.json").is_file() for d in fold_dirs]
        assert driver.wait(timeout=300) == 0, (tmp_path / "ray.out").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    log = (run / "run.log").read_text()
    assert "ray: 2 node(s) can run a job" in log, log
    # The killed node's job was lost in training and run again (resuming from its
    # checkpoint), and that was no failure of the job.
    lost = re.findall(r" lost tiny fold (\d) \(NodeDiedError", log)
    assert len(lost) == 1 and not done_at_kill[int(lost[0])], log
    assert not re.search(r"Z failed ", log), log
    # Distillation's jobs went to the cluster too.
    assert "done soft_student0 fold 0 on " in log and "done soft_final fold 1 on " in log, log
    assert not (run / TOKEN_FILE).exists()

    local = tmp_path / "local"
    run_pipeline(PipelineConfig.from_yaml(config_file), local)
    on_ray, here = _predictions(run), _predictions(local)
    assert sorted(on_ray) == sorted(here) and len(here) >= 6, sorted(here)
    for name, expected in here.items():
        np.testing.assert_array_equal(np.asarray(on_ray[name].indices),
                                      np.asarray(expected.indices), err_msg=name)
        np.testing.assert_array_equal(np.asarray(on_ray[name].scores),
                                      np.asarray(expected.scores), err_msg=name)
    ray_metrics = _untimed(json.loads((run / "metrics.json").read_text()))
    local_metrics = _untimed(json.loads((local / "metrics.json").read_text()))
    for part in ("models", "ensemble", "distill", "test"):
        assert ray_metrics[part] == local_metrics[part], part


def _untimed(value: object) -> object:
    """Metrics without how long things took."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def test_a_node_that_cannot_see_a_path_fails_the_start_naming_it(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in RAY_ENV.items():
        monkeypatch.setenv(name, value)
    missing = tmp_path / "store_on_the_driver_only"
    with pytest.raises(NotShared, match=rf"node .* cannot see {missing}"), \
            RayPool(tmp_path / "run", [missing], cluster.address):
        pass
    assert not _ray().is_initialized()
    assert not (tmp_path / "run" / TOKEN_FILE).exists()


def test_an_address_where_nothing_answers_fails_at_once(tmp_path: Path) -> None:
    _ray()
    address = f"127.0.0.1:{_free_ports(1)[0]}"
    began = time.monotonic()
    with pytest.raises(Yt8mError, match=f"cannot reach the Ray cluster at {address}"), \
            RayPool(tmp_path, [], address):
        pass
    assert time.monotonic() - began < 15  # Ray alone retries for minutes


def test_the_pipeline_command_refuses_an_unknown_backend(tmp_path: Path) -> None:
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(PIPELINE))
    result = CliRunner().invoke(app, ["pipeline", str(config_file), "--backend", "slurm"])
    assert result.exit_code == 2 and "slurm" in result.output  # typer names the bad choice


def test_check_node_names_a_copy_of_the_run_directory(tmp_path: Path) -> None:
    """A directory of the run's name that is not the driver's (a node's own disk) holds
    no token, or another run's."""
    token_path = tmp_path / TOKEN_FILE
    token_path.write_text("abc")
    check_node([str(tmp_path)], str(token_path), "abc")  # the driver's own: no error
    with pytest.raises(NotShared, match=r"does not see the driver's run directory .*is missing"):
        check_node([], str(tmp_path / "elsewhere" / TOKEN_FILE), "abc")
    token_path.write_text("other")
    with pytest.raises(NotShared, match=r"another run"):
        check_node([], str(token_path), "abc")


def test_resources_have_one_default_and_refuse_bad_values() -> None:
    assert JobResources() == PipelineConfig.model_validate(
        {**PIPELINE, "backend": "ray"}).resources
    assert JobResources().gpus_per_job is None and JobResources().cpus_per_job == 1
    for bad in ({"gpus_per_job": -1}, {"cpus_per_job": 0}, {"gpu_per_job": 1}):
        with pytest.raises(ValueError):
            JobResources.model_validate(bad)
    # How a run executes, not what it computes: a run directory resumes under another.
    a = PipelineConfig.model_validate(PIPELINE)
    b = PipelineConfig.model_validate({**PIPELINE, "backend": "ray", "address": "h:1",
                                       "resources": {"gpus_per_job": 0.5}})
    assert a.results_fields() == b.results_fields()


def test_local_workers_each_get_their_own_gpu(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The GPUs this process may use, as a GPU machine's environment names them.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    jobs = [Job(i, record_device, (str(tmp_path / f"job{i}"), 2)) for i in range(2)]
    assert not run_jobs(jobs, workers=2).failed
    seen = dict(p.read_text().split() for p in tmp_path.iterdir())
    assert len(seen) == 2 and sorted(seen.values()) == ["3", "5"], seen
