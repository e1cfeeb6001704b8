"""The frame-level batch loader: layout and dequantization against the stored codes,
truncation, coverage of every row, length bucketing, determinism, and identical batches
with worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yt8mkit.data.frame_loader import (
    FRAME_MASK,
    frame_batches,
    padding_fraction,
    plan_batches,
)
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.loader import Batch, epoch_order
from yt8mkit.data.quantize import dequantize
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate

SYNTH = SynthConfig(videos=60, classes=20, seed=0, frames=True, rgb_dim=24, audio_dim=8,
                    min_frames=3, max_frames=90, videos_per_shard=25)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("frames")
    generate(SYNTH, root / "src")
    ingest([root / "src"], root / "store", IngestConfig(workers=1))
    return Store(root / "store")


def _all(store: Store, rows: np.ndarray, batch_size: int, **kwargs: object) -> list[Batch]:
    return list(frame_batches(store, rows, batch_size, **kwargs))


def _assert_same(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.rows, y.rows)
        assert x.inputs.keys() == y.inputs.keys()
        for key in x.inputs:
            assert torch.equal(x.inputs[key], y.inputs[key]), key
        assert (x.targets is None) == (y.targets is None)
        if x.targets is not None:
            assert torch.equal(x.targets, y.targets)


def test_layout_dequantization_and_targets(store: Store) -> None:
    rows = epoch_order(np.arange(store.num_videos), 0, 0)
    counts = store.frame_counts()
    assert counts.min() < counts.max()  # lengths vary, so padding is exercised
    batches = _all(store, rows, 16)
    assert [len(b.rows) for b in batches] == [16, 16, 16, 12]
    for batch in batches:
        mask = batch.inputs[FRAME_MASK]
        frames = int(counts[batch.rows].max())
        assert mask.dtype == torch.bool and mask.shape == (len(batch.rows), frames)
        assert mask.sum(1).tolist() == counts[batch.rows].tolist()
        for m, dim in store.dims.items():
            x = batch.inputs[m]
            assert x.dtype == torch.float32 and x.shape == (len(batch.rows), frames, dim)
            assert not x[~mask].any()  # zero padding
            for i, row in enumerate(batch.rows):
                start, stop = store.frame_offsets[row], store.frame_offsets[row + 1]
                expected = dequantize(np.asarray(store.frame_features(m)[start:stop]))
                np.testing.assert_array_equal(x[i, : stop - start].numpy(), expected)
        assert batch.targets is not None and batch.targets.dtype == torch.float32
        np.testing.assert_array_equal(batch.targets.numpy(), store.labels_dense(batch.rows))


def test_truncation_subset_and_no_targets(store: Store) -> None:
    rows = np.arange(store.num_videos)
    counts = store.frame_counts()
    batches = _all(store, rows, 20, max_frames=10, modalities=["audio"], with_targets=False)
    for batch in batches:
        assert set(batch.inputs) == {"audio", FRAME_MASK} and batch.targets is None
        assert batch.inputs["audio"].shape[1] <= 10
        assert batch.inputs[FRAME_MASK].sum(1).tolist() == np.minimum(counts[batch.rows],
                                                                     10).tolist()
        row = int(batch.rows[0])
        first = dequantize(np.asarray(
            store.frame_features("audio")[store.frame_offsets[row]:][:10]))
        n = min(int(counts[row]), 10)
        np.testing.assert_array_equal(batch.inputs["audio"][0, :n].numpy(), first[:n])


@pytest.mark.parametrize("bucket", [False, True])
def test_every_row_once_per_epoch(store: Store, bucket: bool) -> None:
    rows = np.arange(5, store.num_videos)  # a fold: not all of the store
    for epoch in range(2):
        order = epoch_order(rows, 3, epoch)
        batches = _all(store, order, 7, bucket_by_length=bucket, seed=3, epoch=epoch)
        seen = np.concatenate([b.rows for b in batches])
        assert sorted(seen.tolist()) == rows.tolist()
        assert sum(len(b.rows) < 7 for b in batches) == 1
        if not bucket:
            np.testing.assert_array_equal(seen, order)


def test_bucketing_cuts_padding_and_is_seeded(store: Store) -> None:
    rows = epoch_order(np.arange(store.num_videos), 0, 0)
    plain = padding_fraction(_all(store, rows, 8))
    bucketed = padding_fraction(_all(store, rows, 8, bucket_by_length=True))
    assert bucketed < 0.5 * plain, (bucketed, plain)
    lengths = store.frame_counts()
    first = plan_batches(lengths, rows, 8, bucket_by_length=True, seed=1, epoch=0)
    again = plan_batches(lengths, rows, 8, bucket_by_length=True, seed=1, epoch=0)
    other = plan_batches(lengths, rows, 8, bucket_by_length=True, seed=1, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert [a.tolist() for a in first] != [b.tolist() for b in other]
    assert sorted(map(sorted, (a.tolist() for a in first))) == sorted(
        map(sorted, (b.tolist() for b in other)))  # same batches, another order
    # Windows: sorting happens within chunks of batches, not across the whole epoch.
    small_windows = plan_batches(lengths, rows, 4, bucket_by_length=True, chunk_batches=2)
    for batch in small_windows:
        window = {int(np.flatnonzero(rows == r)[0]) // 8 for r in batch}
        assert len(window) == 1


def test_workers_give_identical_batches(store: Store) -> None:
    rows = epoch_order(np.arange(store.num_videos), 1, 2)
    kwargs = {"bucket_by_length": True, "seed": 1, "epoch": 2, "max_frames": 50}
    _assert_same(_all(store, rows, 9, workers=2, **kwargs), _all(store, rows, 9, **kwargs))
    kwargs["stride"] = 4
    _assert_same(_all(store, rows, 9, workers=2, **kwargs), _all(store, rows, 9, **kwargs))


def test_stride_keeps_every_kth_of_the_first_max_frames(store: Store) -> None:
    rows = np.arange(store.num_videos)
    counts = store.frame_counts()
    for batch in _all(store, rows, 16, max_frames=40, stride=3):
        kept = -(-np.minimum(counts[batch.rows], 40) // 3)
        assert batch.inputs[FRAME_MASK].sum(1).tolist() == kept.tolist()
        for i, row in enumerate(batch.rows):
            start = store.frame_offsets[row]
            span = min(int(counts[row]), 40)
            expected = dequantize(np.asarray(store.frame_features("rgb")[start:start + span]))
            np.testing.assert_array_equal(batch.inputs["rgb"][i, : kept[i]].numpy(),
                                          expected[::3])
    with pytest.raises(ValueError, match="stride"):
        _all(store, rows, 4, stride=0)


def test_bad_arguments(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frame features"):
        _all(store, np.arange(3), 2, modalities=["video"])
    with pytest.raises(ValueError, match="batch_size"):
        _all(store, np.arange(3), 0)
    assert _all(store, np.arange(0), 4) == []
    generate(SynthConfig(videos=5, classes=4, rgb_dim=4, audio_dim=2), tmp_path / "v")
    ingest([tmp_path / "v"], tmp_path / "vs", IngestConfig(workers=1))
    with pytest.raises(ValueError, match="video-level"):
        _all(Store(tmp_path / "vs"), np.arange(3), 2)
