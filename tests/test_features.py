"""Frame representations against direct numpy computations: statistics, subsampling (with
scene cuts on a video of known scenes), dynamics (db3 detail against PyWavelets, PCP
recovering a planted sparse component), learnable combinations, global centroids; that
padding never changes a result; and the frame-level models built on them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import pywt
import torch
from torch.nn import functional

from yt8mkit.data.example import encode_sequence_example
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.quantize import dequantize, quantize
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate
from yt8mkit.data.tfrecord import TFRecordWriter
from yt8mkit.features import (
    RepresentationConfig,
    RepresentationError,
    create_representation,
    list_representations,
)
from yt8mkit.features.centroids import (
    BAG,
    default_centroids_path,
    fit_centroids,
    load_centroids,
    run_centroids,
    save_centroids,
)
from yt8mkit.features.dynamics import principal_component_pursuit, wavelet_detail
from yt8mkit.features.subsampling import random_indices, regular_indices, scene_indices
from yt8mkit.models import ModelConfig, ModelConfigError, create_model, init_output_bias

DIMS = {"rgb": 6, "audio": 3}
LENGTHS = [9, 4, 1, 7, 2, 9]
FRAMES = max(LENGTHS)


def _mask(lengths: list[int], frames: int) -> torch.Tensor:
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def _batch(
    lengths: list[int] = LENGTHS,
    frames: int = FRAMES,
    seed: int = 0,
    garbage: bool = False,
    dims: dict[str, int] = DIMS,
) -> dict[str, torch.Tensor]:
    """Dequantized random codes (so that modes and ties occur), zero or garbage padding."""
    rng = np.random.default_rng(seed)
    mask = _mask(lengths, frames)
    batch: dict[str, torch.Tensor] = {"frame_mask": mask}
    for name, dim in dims.items():
        codes = rng.integers(100, 108, size=(len(lengths), frames, dim), dtype=np.uint8)
        x = torch.from_numpy(dequantize(codes))
        fill = torch.from_numpy(rng.normal(size=x.shape).astype(np.float32) * 9)
        batch[name] = torch.where(mask[..., None], x, fill if garbage else torch.zeros_like(x))
    return batch


def _repadded(batch: dict[str, torch.Tensor], extra: int, seed: int = 7) -> dict[str, torch.Tensor]:
    """The same videos with ``extra`` more frames of garbage padding."""
    rng = np.random.default_rng(seed)
    mask = functional.pad(batch["frame_mask"], (0, extra), value=False)
    out: dict[str, torch.Tensor] = {"frame_mask": mask}
    for name, x in batch.items():
        if name == "frame_mask":
            continue
        x = functional.pad(x, (0, 0, 0, extra))
        noise = torch.from_numpy(rng.normal(size=x.shape).astype(np.float32) * 5)
        out[name] = torch.where(mask[..., None], x, noise)
    return out


def _real(batch: dict[str, torch.Tensor], name: str, i: int) -> np.ndarray:
    return batch[name][i, : int(batch["frame_mask"][i].sum())].double().numpy()


# ---------------------------------------------------------------- registry


def test_registry_names_and_errors() -> None:
    assert set(list_representations()) >= {
        "statistics", "subsampling", "centroids", "dynamics", "combinations"
    }
    with pytest.raises(RepresentationError, match=r"known representations: .*statistics"):
        create_representation("nope", DIMS)
    with pytest.raises(RepresentationError, match=r"unknown parameter\(s\) \['stat'\]"):
        create_representation("statistics", DIMS, {"stat": ["mean"]})
    with pytest.raises(RepresentationError, match="invalid parameters"):
        create_representation("statistics", DIMS, {"stats": ["mean", "mean"]})
    with pytest.raises(ValueError, match="unknown representation"):
        RepresentationConfig(name="nope")
    assert RepresentationConfig().name == "statistics"


PADDING_CASES: list[tuple[str, dict]] = [
    ("statistics", {}),
    ("subsampling", {"method": "regular", "k": 3}),
    ("subsampling", {"method": "random", "k": 3, "pool": "sequence"}),
    ("subsampling", {"method": "scenes", "k": 2, "threshold": 0.01}),
    ("dynamics", {"method": "mean_removal"}),
    ("dynamics", {"method": "wavelet", "pool": ["mean", "abs_mean", "max"]}),
    ("dynamics", {"method": "wavelet", "level": 2}),
    ("dynamics", {"method": "pcp", "pcp_tol": 1e-6}),
    ("combinations", {}),
    ("combinations", {"normalise": "mean", "combinations": 2}),
]


@pytest.mark.parametrize(("name", "params"), PADDING_CASES)
def test_padding_does_not_change_results_and_dims_match(name: str, params: dict) -> None:
    torch.manual_seed(0)
    rep = create_representation(name, DIMS, {**params, "max_frames": 20}
                                if name == "combinations" else params).eval()
    batch = _batch()
    with torch.no_grad():
        out = rep(batch)
        again = rep(_repadded(_batch(garbage=True), extra=5))
        alone = rep({k: v[2:3, :1] for k, v in batch.items()})  # the one-frame video
    assert {k: v.shape for k, v in out.items()} == {
        k: (len(LENGTHS), d) for k, d in rep.output_dims.items()
    }
    for key in out:
        torch.testing.assert_close(again[key], out[key], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(alone[key][0], out[key][2], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- statistics


def _numpy_mode(x: np.ndarray) -> np.ndarray:
    codes = quantize(x)
    levels = [np.bincount(codes[:, d], minlength=256).argmax() for d in range(x.shape[1])]
    return dequantize(np.array(levels, np.uint8)).astype(np.float64)


def test_statistics_match_numpy() -> None:
    rep = create_representation("statistics", DIMS)
    batch = _batch()
    out = rep(batch)
    for name, dim in DIMS.items():
        assert rep.output_dims[name] == 6 * dim + 1
        for i, n in enumerate(LENGTHS):
            x = _real(batch, name, i)
            expected = np.concatenate([
                x.mean(0), x.std(0), np.median(x, 0), x.min(0), x.max(0), _numpy_mode(x),
                [n / 300.0],
            ])
            np.testing.assert_allclose(out[name][i].double().numpy(), expected, atol=1e-5)


def test_statistics_order_subset_and_mode_ties() -> None:
    rep = create_representation("statistics", {"rgb": 1}, {"stats": ["mode", "max", "length"],
                                                           "length_scale": 10})
    codes = np.array([[3, 3, 5, 5, 1, 0, 0]], np.uint8)  # 3 and 5 tie: the lower wins
    mask = _mask([5], 7)
    x = torch.from_numpy(dequantize(codes))[..., None]
    out = rep({"rgb": x, "frame_mask": mask})["rgb"][0].double().numpy()
    np.testing.assert_allclose(out, [dequantize(np.uint8(3)), dequantize(np.uint8(5)), 0.5],
                               atol=1e-6)


# ---------------------------------------------------------------- subsampling


def test_regular_indices() -> None:
    index, valid = regular_indices(torch.tensor([10, 3, 0, 4]), 4)
    assert index.tolist() == [[1, 3, 6, 8], [0, 1, 2, 0], [0, 0, 0, 0], [0, 1, 2, 3]]
    assert valid.tolist() == [[True] * 4, [True, True, True, False], [False] * 4, [True] * 4]
    for n, k in [(300, 10), (17, 5), (5, 5)]:
        got = regular_indices(torch.tensor([n]), k)[0][0].numpy()
        np.testing.assert_array_equal(got, np.floor((np.arange(k) + 0.5) * n / k).astype(int))


def test_random_indices_distinct_sorted_real_and_seeded() -> None:
    mask = _mask([10, 3, 6], 10)
    draws = []
    for _ in range(2):
        g = torch.Generator().manual_seed(5)
        draws.append(random_indices(mask, 4, g))
    assert torch.equal(draws[0][0], draws[1][0])
    index, valid = draws[0]
    assert valid.sum(1).tolist() == [4, 3, 4]
    for row, (n, ok) in enumerate(zip([10, 3, 6], valid)):
        picked = index[row][ok].tolist()
        assert picked == sorted(set(picked)) and all(0 <= p < n for p in picked)
    assert index[1][:3].tolist() == [0, 1, 2]
    # Uniform over real frames: every frame of a 10-frame video is drawn about equally.
    g = torch.Generator().manual_seed(0)
    counts = np.bincount(
        random_indices(_mask([10] * 2000, 10), 3, g)[0].flatten().numpy(), minlength=10)
    assert counts.min() > 0.8 * counts.mean()


def test_random_subsampling_trains_random_and_evaluates_regular() -> None:
    params = {"method": "random", "k": 3, "seed": 1}
    rep, twin = (create_representation("subsampling", DIMS, params) for _ in range(2))
    batch = _batch()
    first, second = rep(batch)["rgb"], rep(batch)["rgb"]
    assert not torch.equal(first, second)  # fresh draws each step
    torch.testing.assert_close(twin(batch)["rgb"], first)  # same seed, same draws
    regular = create_representation("subsampling", DIMS, {"method": "regular", "k": 3})
    torch.testing.assert_close(rep.eval()(batch)["rgb"], regular(batch)["rgb"])


def test_subsampling_pools_match_numpy() -> None:
    batch = _batch()
    mean = create_representation("subsampling", DIMS, {"k": 3})(batch)
    sequence = create_representation("subsampling", DIMS, {"k": 3, "pool": "sequence"})(batch)
    for i, n in enumerate(LENGTHS):
        picked = np.floor((np.arange(3) + 0.5) * n / 3).astype(int) if n >= 3 else np.arange(n)
        x = _real(batch, "audio", i)[picked]
        np.testing.assert_allclose(mean["audio"][i].numpy(), x.mean(0), atol=1e-6)
        flat = np.zeros(3 * DIMS["audio"])
        flat[: x.size] = x.ravel()
        np.testing.assert_allclose(sequence["audio"][i].numpy(), flat, atol=1e-6)


SCENES = [(0, 5), (5, 12), (12, 13), (13, 20)]  # [start, stop) of each scene


def _scene_video(seed: int = 0, dim: int = 16) -> torch.Tensor:
    """Each scene a random direction, each frame that direction plus 1% jitter."""
    rng = np.random.default_rng(seed)
    frames = []
    for start, stop in SCENES:
        direction = rng.normal(size=dim)
        frames += [direction + 0.01 * rng.normal(size=dim) for _ in range(stop - start)]
    return torch.tensor(np.array(frames), dtype=torch.float32)[None]


@pytest.mark.parametrize(
    ("k", "frame", "expected"),
    [(4, "first", [0, 5, 12, 13]), (4, "middle", [2, 8, 12, 16]),
     (6, "first", [0, 5, 12, 13]), (2, "middle", [8, 16]), (3, "first", [0, 5, 13])],
)
def test_scene_cuts_on_known_scenes(k: int, frame: str, expected: list[int]) -> None:
    x = _scene_video()
    mask = torch.ones(1, 20, dtype=torch.bool)
    index, valid = scene_indices(x, mask, threshold=0.2, k=k, frame=frame)
    assert index[0][valid[0]].tolist() == expected
    assert valid[0].sum() == len(expected)
    padded = functional.pad(x, (0, 0, 0, 6), value=3.0)
    index2, valid2 = scene_indices(padded, _mask([20], 26), threshold=0.2, k=k, frame=frame)
    assert torch.equal(index2, index) and torch.equal(valid2, valid)
    # Cut short, the video loses its last scene's cut and end.
    short, _ = scene_indices(x[:, :12], torch.ones(1, 12, dtype=torch.bool), 0.2, 4, "first")
    assert short[0][:2].tolist() == [0, 5]


def test_scene_representation_uses_the_chosen_features() -> None:
    x = _scene_video()
    flat = torch.ones(1, 20, 2)  # no cuts in "audio": one scene
    batch = {"rgb": x, "audio": flat, "frame_mask": torch.ones(1, 20, dtype=torch.bool)}
    dims = {"rgb": 16, "audio": 2}
    by_rgb = create_representation("subsampling", dims, {"method": "scenes", "k": 4,
                                                          "pool": "sequence"})
    out = by_rgb(batch)["rgb"].view(4, 16)
    torch.testing.assert_close(out, x[0, [2, 8, 12, 16]])
    by_audio = create_representation(
        "subsampling", dims,
        {"method": "scenes", "k": 4, "pool": "sequence", "scene_features": ["audio"]})
    out = by_audio(batch)["rgb"].view(4, 16)
    torch.testing.assert_close(out[0], x[0, 9])  # the middle of the one scene
    assert not out[1:].any()
    with pytest.raises(RepresentationError, match="video"):
        create_representation("subsampling", dims, {"scene_features": ["video"]})


# ---------------------------------------------------------------- dynamics


def test_mean_removal_matches_numpy() -> None:
    batch = _batch()
    out = create_representation("dynamics", DIMS, {"pool": ["abs_mean", "max"]})(batch)
    for i in range(len(LENGTHS)):
        x = _real(batch, "rgb", i)
        centred = x - x.mean(0)
        expected = np.concatenate([np.abs(centred).mean(0), centred.max(0)])
        np.testing.assert_allclose(out["rgb"][i].numpy(), expected, atol=1e-5)
    with pytest.raises(RepresentationError, match="zero"):
        create_representation("dynamics", DIMS, {"pool": ["mean"]})


@pytest.mark.parametrize("level", [1, 2, 3])
def test_wavelet_detail_is_pywavelets(level: int) -> None:
    lengths = [1, 2, 3, 5, 6, 11, 30]
    rng = np.random.default_rng(level)
    x = torch.from_numpy(rng.normal(size=(len(lengths), 30, 4)))
    mask = _mask(lengths, 30)
    detail, valid = wavelet_detail(x, mask, "db3", level)
    for i, n in enumerate(lengths):
        with warnings.catch_warnings():  # pywt warns when the level exceeds log2(n / 5)
            warnings.simplefilter("ignore", UserWarning)
            expected = pywt.wavedec(x[i, :n].numpy(), "db3", mode="symmetric", level=level,
                                    axis=0)[1]
        np.testing.assert_allclose(detail[i][valid[i]].numpy(), expected, atol=1e-10)
        assert not detail[i][~valid[i]].any()


def test_wavelet_representation_pools_the_detail() -> None:
    batch = _batch()
    out = create_representation(
        "dynamics", DIMS, {"method": "wavelet", "pool": ["mean", "abs_mean", "max"]})(batch)
    for i in range(len(LENGTHS)):
        d = pywt.dwt(_real(batch, "audio", i), "db3", mode="symmetric", axis=0)[1]
        expected = np.concatenate([d.mean(0), np.abs(d).mean(0), d.max(0)])
        np.testing.assert_allclose(out["audio"][i].numpy(), expected, atol=1e-5)


def _low_rank_plus_sparse(seed: int, rows: int = 60, cols: int = 40) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(rows, 2)) @ rng.normal(size=(2, cols))
    sparse = np.zeros((rows, cols))
    where = rng.random((rows, cols)) < 0.05
    sparse[where] = rng.choice([-8.0, 8.0], size=where.sum())
    return low, sparse


def test_pcp_recovers_a_planted_sparse_component() -> None:
    low, sparse = _low_rank_plus_sparse(0)
    got_low, got_sparse = principal_component_pursuit(torch.from_numpy(low + sparse))
    np.testing.assert_allclose(got_sparse.numpy(), sparse, atol=1e-3)
    np.testing.assert_allclose(got_low.numpy(), low, atol=1e-3)
    assert np.linalg.matrix_rank(got_low.numpy(), tol=1e-3) == 2


def test_pcp_batched_with_padding_equals_alone() -> None:
    (l1, s1), (l2, s2) = _low_rank_plus_sparse(1), _low_rank_plus_sparse(2, rows=45)
    x = torch.zeros(2, 70, 40, dtype=torch.float64)
    x[0, :60], x[1, :45] = torch.from_numpy(l1 + s1), torch.from_numpy(l2 + s2)
    x[1, 45:] = 100.0  # garbage padding
    low, sparse = principal_component_pursuit(x, _mask([60, 45], 70))
    alone_low, alone_sparse = principal_component_pursuit(x[1, :45])
    torch.testing.assert_close(sparse[1, :45], alone_sparse)
    torch.testing.assert_close(low[1, :45], alone_low)
    assert not sparse[1, 45:].any() and not low[1, 45:].any()
    torch.testing.assert_close(sparse[0, :60], principal_component_pursuit(x[0, :60])[1])


def test_pcp_representation_pools_the_sparse_component() -> None:
    low, sparse = _low_rank_plus_sparse(3, rows=30, cols=6)
    x = torch.from_numpy(low + sparse).float()[None]
    rep = create_representation("dynamics", {"rgb": 6}, {"method": "pcp", "pool": ["abs_mean"],
                                                         "pcp_tol": 1e-7, "pcp_max_iter": 500})
    out = rep({"rgb": x, "frame_mask": torch.ones(1, 30, dtype=torch.bool)})["rgb"][0]
    _, s = principal_component_pursuit(x[0].double(), tol=1e-7)
    np.testing.assert_allclose(out.numpy(), s.abs().mean(0).numpy(), atol=1e-3)


# ---------------------------------------------------------------- combinations


def _softmax(w: np.ndarray) -> np.ndarray:
    e = np.exp(w - w.max())
    return e / e.sum()


def test_combinations_match_numpy_and_are_tied_to_position() -> None:
    torch.manual_seed(0)
    rep = create_representation("combinations", DIMS, {"combinations": 3, "max_frames": 12,
                                                        "init_std": 1.0})
    batch = _batch()
    out = rep(batch)
    w = rep.weight.detach().double().numpy()
    for i, n in enumerate(LENGTHS):
        x = _real(batch, "rgb", i)
        expected = np.concatenate([_softmax(w[j, :n]) @ x for j in range(3)])
        np.testing.assert_allclose(out["rgb"][i].detach().numpy(), expected, atol=1e-5)
    # The coefficients depend on the position and the length only, not on the content.
    coefficients = rep.coefficients(_mask([9, 9, 4], 9))
    torch.testing.assert_close(coefficients[0], coefficients[1])
    reversed_frames = {k: v.flip(1) if k != "frame_mask" else v for k, v in batch.items()}
    reversed_frames = {k: v[:1] for k, v in reversed_frames.items()}
    assert not torch.allclose(rep(reversed_frames)["rgb"][0], out["rgb"][0])


def test_combinations_gradient_reaches_the_used_positions_only() -> None:
    torch.manual_seed(0)
    rep = create_representation("combinations", DIMS, {"max_frames": 15})
    out = rep(_batch())
    (out["rgb"].sum() * 0 + (out["rgb"] ** 2).sum() + out["audio"].pow(2).sum()).backward()
    grad = rep.weight.grad
    assert grad is not None and grad.shape == (5, 15)
    assert (grad[:, :FRAMES].abs().sum(0) > 0).all()
    assert not grad[:, FRAMES:].any()
    with pytest.raises(ValueError, match="max_frames"):
        rep(_batch(frames=16))


def test_combinations_mean_normalisation_starts_at_the_mean() -> None:
    rep = create_representation("combinations", DIMS, {"normalise": "mean", "init_std": 0.0,
                                                        "combinations": 2, "max_frames": 9})
    batch = _batch()
    out = rep(batch)["audio"].view(len(LENGTHS), 2, 3)
    for i in range(len(LENGTHS)):
        mean = _real(batch, "audio", i).mean(0)
        np.testing.assert_allclose(out[i].detach().numpy(), [mean, mean], atol=1e-6)


def test_combinations_with_relative_positions_interpolate_the_knots() -> None:
    torch.manual_seed(0)
    rep = create_representation("combinations", DIMS, {"combinations": 2, "knots": 5,
                                                        "position": "relative",
                                                        "init_std": 1.0})
    knots = rep.weight.detach().double().numpy()
    grid = (np.arange(5) + 0.5) / 5
    batch = _batch()
    out = rep(batch)
    for i, n in enumerate(LENGTHS):
        place = (np.arange(n) + 0.5) / n  # a frame's place in its own video
        x = _real(batch, "rgb", i)
        expected = np.concatenate([_softmax(np.interp(place, grid, knots[j])) @ x
                                   for j in range(2)])
        np.testing.assert_allclose(out["rgb"][i].detach().numpy(), expected, atol=1e-5)
    # Not bound to max_frames: any length is a place in [0, 1].
    assert rep(_batch(frames=400))["rgb"].shape == out["rgb"].shape


def test_combinations_segment_init_covers_one_part_each() -> None:
    rep = create_representation("combinations", DIMS, {"combinations": 4, "knots": 32,
                                                        "position": "relative",
                                                        "init": "segments", "init_std": 0.0})
    a = rep.coefficients(_mask([200], 200))[0].detach().numpy()
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-5)
    for j in range(4):
        own = a[j, 50 * j : 50 * (j + 1)].sum()
        assert own > 0.6 and a[j].argmax() // 50 == j
    with pytest.raises(ValueError, match="softmax"):
        create_representation("combinations", DIMS, {"init": "segments", "normalise": "mean"})


# ---------------------------------------------------------------- centroids

CENTRES = np.array([[40, 40], [40, 210], [210, 40], [210, 210]])  # codes of rgb dims 0-1


def _cluster_store(folder: Path, videos: int = 24) -> tuple[Store, np.ndarray]:
    """A frame store whose frames come from 4 known clusters (in rgb's first two dims;
    the rest, and audio, small noise), with each frame's cluster returned in store order."""
    rng = np.random.default_rng(0)
    labels = []
    shard = folder / "src" / "train0000.tfrecord"
    shard.parent.mkdir(parents=True)
    with TFRecordWriter(shard) as writer:
        for v in range(videos):
            n = int(rng.integers(3, 20))
            cluster = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
            rgb = rng.integers(120, 136, size=(n, 4))
            rgb[:, :2] = CENTRES[cluster] + rng.integers(-6, 7, size=(n, 2))
            audio = rng.integers(120, 136, size=(n, 2))
            labels.append(cluster)
            writer.write(encode_sequence_example(
                {"id": f"v{v}".encode(), "labels": np.array([v % 3], np.int64)},
                {"rgb": rgb.astype(np.uint8), "audio": audio.astype(np.uint8)},
            ))
    ingest([shard], folder / "store", IngestConfig(workers=1, num_classes=3))
    return Store(folder / "store"), np.concatenate(labels)


@pytest.fixture(scope="module")
def cluster_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, np.ndarray]:
    return _cluster_store(tmp_path_factory.mktemp("clusters"))


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_finds_the_constructed_clusters(cluster_store: tuple[Store, np.ndarray]) -> None:
    store, truth = cluster_store
    centroids = fit_centroids(store, 4, iterations=10, seed=0)
    assert centroids.shape == (4, 6) and centroids.dtype == np.float32
    expected = dequantize(CENTRES.astype(np.uint8))
    side = np.sign(centroids[:, :2])  # sort by quadrant: CENTRES' order
    found = centroids[:, :2][np.lexsort((side[:, 1], side[:, 0]))]
    np.testing.assert_allclose(found, expected, atol=0.05)
    frames = np.concatenate([dequantize(np.asarray(store.frame_features(m)))
                             for m in store.modalities], axis=1)
    nearest = ((frames[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert _same_partition(nearest, truth)


def test_kmeans_is_seeded_and_deterministic(tmp_path: Path) -> None:
    generate(SynthConfig(videos=30, classes=20, seed=0, frames=True, rgb_dim=16, audio_dim=4,
                         min_frames=5, max_frames=40), tmp_path / "src")
    ingest([tmp_path / "src"], tmp_path / "store", IngestConfig(workers=1))
    store = Store(tmp_path / "store")
    first = fit_centroids(store, 8, sample_frames=300, iterations=5, seed=3)
    again = fit_centroids(store, 8, sample_frames=300, iterations=5, seed=3)
    other = fit_centroids(store, 8, sample_frames=300, iterations=5, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    rgb_only = fit_centroids(store, 8, sample_frames=300, iterations=2, modalities=["rgb"])
    assert rgb_only.shape == (8, 16)


def test_run_centroids_saves_and_loads(cluster_store: tuple[Store, np.ndarray]) -> None:
    store, _ = cluster_store
    seen: list[tuple[str, int, int]] = []
    path = run_centroids(store.path, 4, seed=1, progress=lambda *a: seen.append(a),
                         iterations=3)
    assert path == default_centroids_path(store.path, 4) and path.is_file()
    centroids, info = load_centroids(path)
    assert centroids.shape == (4, 6)
    assert info["modalities"] == ["rgb", "audio"] and info["dims"] == {"rgb": 4, "audio": 2}
    assert info["sample_frames"] == store.meta.num_frames
    assert ("kmeans", 3, 3) in seen and seen[0][0] == "sample"
    assert ("sample", store.meta.num_frames, store.meta.num_frames) in seen
    with pytest.raises(FileNotFoundError, match="yt8m centroids"):
        load_centroids(store.path / "missing.npy")


def test_centroids_command(cluster_store: tuple[Store, np.ndarray], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yt8mkit.cli.main import app

    store, _ = cluster_store
    out = tmp_path / "c4.npy"
    result = CliRunner().invoke(app, ["centroids", str(store.path), "--k", "4", "--out",
                                      str(out), "--iterations", "3"])
    assert result.exit_code == 0, result.output
    assert "4 centroids" in result.output
    np.testing.assert_array_equal(load_centroids(out)[0],
                                  fit_centroids(store, 4, iterations=3, seed=0))
    bad = CliRunner().invoke(app, ["centroids", str(tmp_path / "none"), "--k", "4"])
    assert bad.exit_code == 1 and "none" in bad.output


def test_centroid_representation_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(7, 9)).astype(np.float32)
    path = save_centroids(centroids, tmp_path / "c.npy", {"dims": DIMS})
    rep = create_representation("centroids", DIMS, {"path": str(path), "stats": ["mean", "std"],
                                                     "chunk_frames": 5})
    assert rep.output_dims == {"rgb": 12, "audio": 6, BAG: 7}
    batch = _batch(garbage=True)
    out = rep(batch)
    for i, n in enumerate(LENGTHS):
        x = np.concatenate([_real(batch, m, i) for m in DIMS], axis=1)
        nearest = ((x[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        unique = centroids[np.unique(nearest)].astype(np.float64)
        mean, std = unique.mean(0), unique.std(0)
        np.testing.assert_allclose(out["rgb"][i].numpy(), np.r_[mean[:6], std[:6]], atol=1e-5)
        np.testing.assert_allclose(out["audio"][i].numpy(), np.r_[mean[6:], std[6:]], atol=1e-5)
        np.testing.assert_allclose(out[BAG][i].numpy(), np.bincount(nearest, minlength=7) / n,
                                   atol=1e-6)
    assert "centroids" in dict(rep.named_buffers())


def test_centroid_representation_checks_the_space(tmp_path: Path) -> None:
    path = save_centroids(np.zeros((3, 4), np.float32), tmp_path / "c.npy", {"dims": {"rgb": 4}})
    rep = create_representation("centroids", {"rgb": 4, "audio": 2}, {"path": str(path),
                                                                      "bag": False})
    assert rep.output_dims == {"rgb": 4}
    with pytest.raises(RepresentationError, match="4-d"):
        create_representation("centroids", {"rgb": 6}, {"path": str(path)})
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((3, 9), np.float32))  # no .json: all features, in order
    assert create_representation("centroids", DIMS, {"path": str(plain)}).output_dims == {
        "rgb": 6, "audio": 3, BAG: 3}


# ---------------------------------------------------------------- frame models


def _model_cases(tmp: Path) -> list[tuple[str, dict]]:
    path = save_centroids(np.random.default_rng(0).normal(size=(5, 9)).astype(np.float32),
                          tmp / "c.npy", {"dims": DIMS})
    small = {"inner_size": 16, "dropout": 0.1}
    return [
        ("features_resnet_like", small),
        ("features_resnet_like", {**small, "features": {"name": "subsampling",
                                                        "params": {"k": 3, "pool": "sequence"}}}),
        ("features_resnet_like", {**small, "features": "dynamics", "inputs": ["rgb"]}),
        ("centroids_resnet_like", {**small, "centroids": str(path)}),
        ("linear_combinations_resnet_like", {**small, "max_frames": 12}),
        ("linear_combinations_resnet_like", {**small, "position": "relative",
                                             "init": "segments", "knots": 8}),
    ]


def test_frame_feature_models(tmp_path: Path) -> None:
    for name, params in _model_cases(tmp_path):
        config = ModelConfig(name=name, params=params)
        assert config.kind == "frame"
        torch.manual_seed(0)
        model = config.build(4, DIMS).eval()
        batch = _batch()
        with torch.no_grad():
            logits = model(batch)
            features = model.penultimate(batch)
            assert logits.shape == (len(LENGTHS), 4) and features.shape[1] == model.penultimate_dim
            torch.testing.assert_close(model.classify(features), logits)
            torch.testing.assert_close(model(_repadded(batch, 3)), logits, rtol=1e-4, atol=1e-5)
        init_output_bias(model, np.array([0.1, 0.2, 0.3, 0.4]))
        torch.nn.init.zeros_(model.output.weight)
        with torch.no_grad():
            np.testing.assert_allclose(torch.sigmoid(model(batch))[0].numpy(),
                                       [0.1, 0.2, 0.3, 0.4], rtol=1e-5)


def test_linear_combinations_model_learns(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("linear_combinations_resnet_like", 3, DIMS,
                         {"inner_size": 16, "dropout": 0.0, "max_frames": 12}).train()
    batch = _batch(lengths=[9] * 32, seed=1)
    targets = (batch["rgb"][:, 0, :3] > batch["rgb"][:, 0, :3].median()).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        loss = functional.binary_cross_entropy_with_logits(model(batch), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert model.representation.weight.grad is not None


def test_frame_model_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="centroids"):
        ModelConfig(name="centroids_resnet_like")
    with pytest.raises(ModelConfigError, match="yt8m centroids"):
        create_model("centroids_resnet_like", 3, DIMS, {"centroids": str(tmp_path / "no.npy")})
    with pytest.raises(ValueError, match="unknown representation"):
        ModelConfig(name="features_resnet_like", params={"features": {"name": "nope"}})
    with pytest.raises(ValueError, match=r"frame-level model, not video-level"):
        ModelConfig(name="features_resnet_like", kind="video")
