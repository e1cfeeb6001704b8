"""A fixed frame representation written once into a video-level store: its values are
the representation's on each video's frames, ids, labels and folds are the source's, a
learned or random representation is refused, and an interrupted run resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from yt8mkit.cli.main import app
from yt8mkit.data.folds import write_folds
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate
from yt8mkit.errors import Yt8mError
from yt8mkit.features.derive import derive_store
from yt8mkit.features.masking import FRAME_MASK
from yt8mkit.features.registry import RepresentationConfig

STATS = RepresentationConfig(name="statistics", params={"stats": ["mean", "max"]})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("derive")
    generate(SynthConfig(videos=40, classes=10, seed=1, frames=True, rgb_dim=12, audio_dim=4,
                         min_frames=5, max_frames=30), root / "src")
    ingest([root / "src"], root / "store", IngestConfig(workers=1))
    store = Store(root / "store")
    write_folds(store, 5, 3)
    return store


def _direct(store: Store, row: int, config: RepresentationConfig) -> dict[str, np.ndarray]:
    frames = store.video_frames(row)
    batch = {m: torch.from_numpy(v)[None] for m, v in frames.items()}
    batch[FRAME_MASK] = torch.ones(1, len(frames["rgb"]), dtype=torch.bool)
    with torch.no_grad():
        return {m: v[0].numpy() for m, v in config.build(store.dims)(batch).items()}


def test_values_ids_labels_and_folds_are_the_sources(store: Store, tmp_path: Path) -> None:
    derived = derive_store(store, STATS, tmp_path / "d", batch_size=7, block_videos=16)
    assert not derived.has_frames and derived.num_videos == store.num_videos
    assert derived.ids() == store.ids() and derived.num_classes == store.num_classes
    rows = np.arange(store.num_videos)
    np.testing.assert_array_equal(derived.labels_dense(rows), store.labels_dense(rows))
    np.testing.assert_array_equal(derived.folds(), store.folds())
    for row in (0, 17, 39):
        for m, expected in _direct(store, row, STATS).items():
            np.testing.assert_allclose(derived.video_features(m)[row], expected, rtol=1e-6,
                                       atol=1e-6)


def test_learned_or_random_representations_are_refused(store: Store, tmp_path: Path) -> None:
    for spec in ({"name": "combinations"},
                 {"name": "subsampling", "params": {"method": "random", "k": 3}}):
        with pytest.raises(Yt8mError, match="no fixed value"):
            derive_store(store, RepresentationConfig(**spec), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_interrupted_run_resumes_at_its_last_block(store: Store, tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    seen = 0

    def stop_in_third_block(n: int) -> None:
        nonlocal seen
        seen += n
        if seen > 20:
            raise Stop

    with pytest.raises(Stop):
        derive_store(store, STATS, tmp_path / "d", batch_size=4, block_videos=8,
                     progress=stop_in_third_block)
    assert not Store.is_store(tmp_path / "d")
    counted: list[int] = []
    resumed = derive_store(store, STATS, tmp_path / "d", batch_size=4, block_videos=8,
                           progress=counted.append)
    assert counted[0] == 16  # two blocks were complete and are not redone
    whole = derive_store(store, STATS, tmp_path / "w", batch_size=4, block_videos=8)
    for m in whole.modalities:
        np.testing.assert_array_equal(resumed.video_features(m)[:], whole.video_features(m)[:])


def test_represent_command(store: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pcp"
    spec = "{name: dynamics, params: {method: mean_removal}}"
    result = runner.invoke(app, ["represent", str(store.path), "--features", spec,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "40 videos" in result.output and Store(out).num_videos == 40
    bad = runner.invoke(app, ["represent", str(store.path), "--features", "nothing",
                              "--out", str(tmp_path / "n")])
    assert bad.exit_code == 2 and "unknown representation" in bad.output
