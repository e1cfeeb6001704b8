"""The zoo: every (model, fold) job, resuming, retrying failures without stopping the
others, the Ray backend on a local 2-worker instance, and the results table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yt8mkit.data.predictions import Predictions
from yt8mkit.train.config import TrainConfig
from yt8mkit.zoo.config import ZooConfig
from yt8mkit.zoo.runner import run_zoo
from yt8mkit.zoo.table import collect_rows

DEFAULTS = {"batch_size": 64, "eval_batch_size": 256, "epochs": 1, "threads": 1,
            "device": "cpu", "optim": {"warmup_steps": 2}}


def _zoo(models: dict[str, dict]) -> dict[str, TrainConfig]:
    return ZooConfig.model_validate({"defaults": DEFAULTS, "models": models}).train_configs()


GOOD = {"logistic": {"model": {"name": "logistic"}}}
# Valid as a config, fails when the job builds the model: the store has no "depth" feature.
BAD = {"broken": {"model": {"name": "logistic", "params": {"inputs": ["depth"]}}}}


def test_a_failed_job_is_retried_reported_and_does_not_stop_the_others(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    messages: list[str] = []
    result = run_zoo(_zoo({**BAD, **GOOD}), str(small_video_store[0]), tmp_path, retries=1,
                     report=messages.append)
    assert sorted(result.done) == [("logistic", f) for f in range(5)]
    assert sorted(result.failed) == [("broken", f) for f in range(5)]
    assert sum("failed broken fold 0" in m for m in messages) == 2  # first try + 1 retry
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert "depth" in failures["broken/fold0"]
    assert "logistic" in result.metrics and "broken" not in result.metrics


def test_a_killed_zoo_resumes_without_redoing_finished_jobs(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    configs = _zoo({**GOOD, "moe": {"model": {"name": "moe", "params": {"num_mixtures": 2}}}})

    class Killed(BaseException):
        pass

    def kill_after_three(message: str) -> None:
        if message.startswith("done") and sum(1 for _ in tmp_path.glob("*/fold*/done.json")) == 3:
            raise Killed

    with pytest.raises(Killed):
        run_zoo(configs, str(small_video_store[0]), tmp_path, report=kill_after_three)
    assert len(list(tmp_path.glob("*/fold*/done.json"))) == 3
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/fold*/best.pt")}
    result = run_zoo(configs, str(small_video_store[0]), tmp_path)
    assert len(result.skipped) == 3 and len(result.done) == 7 and not result.failed
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    rows = collect_rows(tmp_path)
    assert [r.name for r in rows] == sorted(["logistic", "moe"],
                                            key=lambda n: -result.metrics[n]["oof_gap"])


def test_ray_backend_on_two_local_workers_matches_the_local_backend(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray", reason="the Ray backend is the optional extra [cluster]")
    configs = _zoo(GOOD)
    store = str(small_video_store[0])
    local = run_zoo(configs, store, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_zoo(configs, store, tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    assert sorted(remote.done) == [("logistic", f) for f in range(5)] and not remote.failed
    a = Predictions(tmp_path / "local" / "logistic" / "oof")
    b = Predictions(tmp_path / "ray" / "logistic" / "oof")
    np.testing.assert_array_equal(np.asarray(a.indices), np.asarray(b.indices))
    np.testing.assert_array_equal(np.asarray(a.scores), np.asarray(b.scores))
    assert remote.metrics["logistic"]["oof_gap"] == local.metrics["logistic"]["oof_gap"]


def test_local_worker_processes_match_one_process_and_report_failures(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = str(small_video_store[0])
    one = run_zoo(_zoo(GOOD), store, tmp_path / "one")
    messages: list[str] = []
    two = run_zoo(_zoo({**BAD, **GOOD}), store, tmp_path / "two", retries=1, workers=2,
                  report=messages.append)
    assert sorted(two.done) == [("logistic", f) for f in range(5)]
    assert sorted(two.failed) == [("broken", f) for f in range(5)]
    assert sum("failed broken fold 0" in m for m in messages) == 2
    assert "depth" in json.loads((tmp_path / "two" / "failures.json").read_text())[
        "broken/fold0"]
    a = Predictions(tmp_path / "one" / "logistic" / "oof")
    b = Predictions(tmp_path / "two" / "logistic" / "oof")
    np.testing.assert_array_equal(np.asarray(a.indices), np.asarray(b.indices))
    np.testing.assert_array_equal(np.asarray(a.scores), np.asarray(b.scores))
    assert two.metrics["logistic"]["oof_gap"] == one.metrics["logistic"]["oof_gap"]


def test_a_zoo_member_trains_on_soft_labels(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    """The paper's "ResNetLike + soft labels" as a first-level member: soft labels equal
    to the hard ones (blend 1) train exactly the hard-label model; the ensemble's own
    scores (blend 0) train another."""
    from yt8mkit.data.store import Store
    from yt8mkit.distill.soft_labels import build_soft_labels

    store = Store(small_video_store[0])
    teacher = run_zoo(_zoo(GOOD), str(store.path), tmp_path / "teacher")
    assert "logistic" in teacher.metrics
    oof = Predictions(tmp_path / "teacher" / "logistic" / "oof")
    build_soft_labels(oof, store, blend=1.0).save(tmp_path / "as_hard")
    build_soft_labels(oof, store, blend=0.0).save(tmp_path / "soft")
    member = {"model": {"name": "logistic"}}
    configs = _zoo({"hard": member,
                    "as_hard": {**member, "soft_labels": str(tmp_path / "as_hard")},
                    "soft": {**member, "soft_labels": str(tmp_path / "soft")}})
    result = run_zoo(configs, str(store.path), tmp_path / "zoo")
    assert not result.failed and set(result.metrics) == {"hard", "as_hard", "soft"}
    scores = {name: np.asarray(Predictions(tmp_path / "zoo" / name / "oof").scores)
              for name in configs}
    assert np.array_equal(scores["hard"], scores["as_hard"])
    assert not np.allclose(scores["hard"], scores["soft"])
    rows = {row.name: row for row in collect_rows(tmp_path / "zoo")}
    assert rows["soft"].gap is not None
