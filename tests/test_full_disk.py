"""A full disk while training (RLIMIT_FSIZE in a child: files may not grow past a
limit, as on a full disk, without needing one): a clear error, no traceback, what was
complete kept, and the rerun gives the result of a run that never failed."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from yt8mkit.data.predictions import Predictions

ROOT = Path(__file__).resolve().parents[1]


def _train(config: Path, store: Path, out: Path, limit: int | None) -> subprocess.CompletedProcess:
    def limit_size() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "yt8mkit.cli.main", "train", str(config), "--store", str(store),
         "--out", str(out), "--folds", "0"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        preexec_fn=limit_size)


def test_training_on_a_full_disk_fails_clearly_and_the_rerun_is_clean(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    config = tmp_path / "m.yaml"
    config.write_text("name: m\nmodel: {name: logistic}\nepochs: 2\nbatch_size: 64\n"
                      "threads: 1\n")
    store = small_video_store[0]
    run = tmp_path / "run"
    # best.pt (about 7 kB) fits, last.pt (about 19 kB) does not.
    failed = _train(config, store, run, 10_000)
    said = failed.stdout + failed.stderr
    assert failed.returncode == 1, said
    assert "last.pt: checkpoint could not be written" in said and "Traceback" not in said
    assert (run / "fold0" / "best.pt").is_file() and not (run / "fold0" / "last.pt").exists()
    assert _train(config, store, run, None).returncode == 0
    clean = tmp_path / "clean"
    assert _train(config, store, clean, None).returncode == 0
    for name in ("best.pt", "last.pt"):
        a = torch.load(run / "fold0" / name, weights_only=True)["model"]
        b = torch.load(clean / "fold0" / name, weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in b), name
    got, want = Predictions(run / "fold0" / "oof"), Predictions(clean / "fold0" / "oof")
    assert np.array_equal(np.asarray(got.indices), np.asarray(want.indices))
    assert np.array_equal(np.asarray(got.scores), np.asarray(want.scores))
    history = [json.loads((d / "fold0" / "metrics.json").read_text())["history"]
               for d in (run, clean)]
    assert [h["gap"] for h in history[0]] == [h["gap"] for h in history[1]]
