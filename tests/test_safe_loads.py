"""Checkpoints load with weights_only=True: one planted in a run directory cannot run
code on resume or export; the trainer's own checkpoints hold only plain data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yt8mkit.errors import Yt8mError
from yt8mkit.train.checkpoints import load_checkpoint, save_checkpoint


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_planted_checkpoint_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "last.pt"
    torch.save({"model": {}, "payload": _Planted(marker)}, path)
    with pytest.raises(Yt8mError, match="not a checkpoint this tool can load safely"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the unsafe load the tool used to make
    assert marker.exists()


def test_checkpoints_with_numpy_values_load_safely(tmp_path: Path) -> None:
    state = {"model": {"w": torch.ones(2)}, "best": {"gap": np.float64(0.5), "epoch": 3},
             "history": [{"gap": np.float32(0.25), "lr": 0.1}], "rows": np.arange(3)}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["best"] == {"gap": 0.5, "epoch": 3} and loaded["history"][0]["gap"] == 0.25
    assert loaded["rows"].tolist() == [0, 1, 2]


def test_garbage_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Yt8mError, match=r"best\.pt"):
        load_checkpoint(tmp_path / "best.pt")
