"""The synthetic generator: real schema, determinism, label noise as configured, scenes,
and data that behaves like YouTube-8M (a logistic baseline well below perfect, local
labels that frame-level models can find but averages dilute)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from yt8mkit.data.example import decode_example, decode_sequence_example
from yt8mkit.data.quantize import dequantize
from yt8mkit.data.synth import SynthConfig, generate, read_gold_labels
from yt8mkit.data.tfrecord import iter_records
from yt8mkit.errors import Yt8mError

# Moderate, default dims: what the difficulty target is stated for.
VIDEO = SynthConfig(videos=3000, classes=100, seed=0, test_videos=200)
# Small dims for the frame-level checks, generated at both levels with the same seed.
SMALL = {"videos": 600, "classes": 30, "rgb_dim": 128, "audio_dim": 32, "videos_per_shard": 250}


def _shards(folder: Path, prefix: str = "train") -> list[Path]:
    return sorted(folder.glob(f"{prefix}*.tfrecord"))


def _video_records(folder: Path, prefix: str = "train") -> list[dict]:
    return [decode_example(p) for f in _shards(folder, prefix) for p in iter_records(f)]


def _frame_records(folder: Path) -> list[tuple[dict, dict]]:
    return [decode_sequence_example(p) for f in _shards(folder) for p in iter_records(f)]


def _dense(indptr: np.ndarray, indices: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(indptr) - 1, classes), np.float32)
    out[np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)), indices] = 1
    return out


def gap_at_20(scores: np.ndarray, truth: np.ndarray) -> float:
    """GAP@20 from its definition: each video's top 20 predictions pooled, sorted by
    score, precision at each rank summed over correct ones, over all positives."""
    top = np.argsort(-scores, axis=1)[:, :20]
    pooled = np.take_along_axis(scores, top, axis=1).ravel()
    relevant = np.take_along_axis(truth, top, axis=1).ravel()[np.argsort(-pooled, kind="stable")]
    precision = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
    return float((precision * relevant).sum() / truth.sum())


def test_gap_helper_on_known_cases() -> None:
    truth = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    assert gap_at_20(truth + 0.1, truth) == pytest.approx(1.0)
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.05]], np.float32)
    # pooled order: .9 R, .8 W, .7 R, .1 W, .05 R, 0 W → (1 + 2/3 + 3/5) / 3
    assert gap_at_20(scores, truth) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "video"
    advanced: list[int] = []
    summary = generate(VIDEO, out, progress=advanced.append)
    assert sum(advanced) == VIDEO.videos + VIDEO.test_videos
    assert summary.train.videos == VIDEO.videos and summary.test is not None
    return out


@pytest.fixture(scope="module")
def video_records(video_dir: Path) -> list[dict]:
    return _video_records(video_dir)


@pytest.fixture(scope="module")
def small_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth_small")
    generate(SynthConfig(frames=True, **SMALL), root / "frames")
    generate(SynthConfig(frames=False, **SMALL), root / "video")
    return root / "frames", root / "video"


@pytest.fixture(scope="module")
def small_frames(small_dirs: tuple[Path, Path]) -> list[tuple[dict, dict]]:
    return _frame_records(small_dirs[0])


# ---------------------------------------------------------------- schema and files


def test_video_level_schema_and_layout(video_dir: Path, video_records: list[dict]) -> None:
    assert [p.name for p in _shards(video_dir)] == [f"train{i:04d}.tfrecord" for i in range(3)]
    assert len(video_records) == VIDEO.videos
    ids = set()
    for record in video_records:
        assert set(record) == {"id", "labels", "mean_rgb", "mean_audio"}
        assert record["mean_rgb"].float_list.shape == (1024,)
        assert record["mean_audio"].float_list.shape == (128,)
        labels = record["labels"].int64_list
        assert len(labels) >= 1 and labels.min() >= 0 and labels.max() < VIDEO.classes
        assert np.all(np.diff(labels) > 0)
        ids.add(record["id"].bytes_list[0].decode())
    assert len(ids) == VIDEO.videos and "synth000000" in ids

    test = _video_records(video_dir / "test", "test")
    assert len(test) == VIDEO.test_videos
    assert all(set(r) == {"id", "mean_rgb", "mean_audio"} for r in test)
    assert not ids & {r["id"].bytes_list[0].decode() for r in test}


def test_side_files_agree_with_shards(video_dir: Path, video_records: list[dict]) -> None:
    gold = read_gold_labels(video_dir)
    assert gold.ids.tolist() == [r["id"].bytes_list[0].decode() for r in video_records]
    for i in (0, 17, VIDEO.videos - 1):
        observed = gold.observed_indices[gold.observed_indptr[i] : gold.observed_indptr[i + 1]]
        assert observed.tolist() == video_records[i]["labels"].int64_list.tolist()
    test = read_gold_labels(video_dir, "test")
    assert len(test.ids) == VIDEO.test_videos and test.observed_indptr[-1] > 0

    with open(video_dir / "vocabulary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["Index", "TrainVideoCount", "Name", "Vertical1"]
    assert [int(r["Index"]) for r in rows] == list(range(VIDEO.classes))
    counts = np.bincount(gold.observed_indices, minlength=VIDEO.classes)
    assert [int(r["TrainVideoCount"]) for r in rows] == counts.tolist()
    assert len({r["Vertical1"] for r in rows}) == 25

    meta = json.loads((video_dir / "synth.json").read_text())
    assert meta["config"]["videos"] == VIDEO.videos
    assert meta["stats"]["train"]["videos"] == VIDEO.videos
    assert len(meta["classes"]) == VIDEO.classes


def test_frame_level_schema(small_frames: list[tuple[dict, dict]]) -> None:
    assert len(small_frames) == SMALL["videos"]
    for context, lists in small_frames:
        assert set(context) == {"id", "labels"} and set(lists) == {"rgb", "audio"}
        rgb, audio = lists["rgb"], lists["audio"]
        assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8
        assert rgb.shape[1] == SMALL["rgb_dim"] and audio.shape[1] == SMALL["audio_dim"]
        assert len(rgb) == len(audio)
        assert 120 <= len(rgb) <= 300
    lengths = [len(lists["rgb"]) for _, lists in small_frames]
    assert min(lengths) < 150 and max(lengths) > 270  # the whole range is used


# ---------------------------------------------------------------- determinism and output


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("frames", [False, True])
def test_same_config_same_bytes(tmp_path: Path, frames: bool) -> None:
    config = SynthConfig(
        videos=300,
        classes=20,
        seed=5,
        frames=frames,
        rgb_dim=64,
        audio_dim=16,
        videos_per_shard=128,
        test_videos=20,
    )
    generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    a, b = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    assert sorted(a) == sorted(b) and len(a) == 3 + 3 + 1  # shards, test shard, side files
    assert all(a[name] == b[name] for name in a)
    generate(config.model_copy(update={"seed": 6}), tmp_path / "c")
    assert _file_bytes(tmp_path / "c")["train0000.tfrecord"] != a["train0000.tfrecord"]


def test_videos_do_not_depend_on_shard_size(tmp_path: Path) -> None:
    base = {"videos": 300, "classes": 20, "rgb_dim": 32, "audio_dim": 8}
    generate(SynthConfig(videos_per_shard=1000, **base), tmp_path / "one")
    generate(SynthConfig(videos_per_shard=7, **base), tmp_path / "many")
    assert len(_shards(tmp_path / "many")) == 43

    def payloads(folder: Path) -> list[bytes]:
        return [p for f in _shards(folder) for p in iter_records(f)]

    assert payloads(tmp_path / "one") == payloads(tmp_path / "many")


def test_no_partial_output(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def interrupt(advance: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(SynthConfig(videos=600, classes=10, rgb_dim=8, audio_dim=4), out, interrupt)
    assert list(tmp_path.iterdir()) == []

    out.mkdir()
    small = SynthConfig(videos=10, classes=10, rgb_dim=8, audio_dim=4, test_videos=4)
    generate(small, out)  # an empty folder is taken
    with pytest.raises(Yt8mError, match="already holds a synthetic dataset; pass --overwrite"):
        generate(small, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    generate(small.model_copy(update={"seed": 9}), out, overwrite=True)  # ours: replaced
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before.keys() == after.keys() and before != after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("foreign", ["a folder of the user's", "our dataset plus a user's file",
                                     "a file", "a store ingested into our dataset"])
def test_overwrite_never_deletes_what_synth_did_not_write(tmp_path: Path, foreign: str) -> None:
    """`yt8m synth --overwrite` replaces a dataset of its own only; anything else at --out
    is refused and left byte for byte."""
    from typer.testing import CliRunner

    from yt8mkit.cli.main import app

    out = tmp_path / "out"
    args = ["synth", "--out", str(out), "--videos", "10", "--classes", "10"]
    if foreign == "a file":
        out.write_text("mine")
    else:
        if foreign != "a folder of the user's":
            assert CliRunner().invoke(app, args).exit_code == 0
        extra = out / ("store/meta.json" if "store" in foreign else "notes.txt")
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text("mine")
    before = {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()}
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 1, result.output
    assert "is not a synthetic dataset" in result.output or "not a folder" in result.output
    assert {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no scratch left


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="min_frames"):
        SynthConfig(min_frames=200, max_frames=100)
    with pytest.raises(ValueError, match="gold labels"):
        SynthConfig(labels_per_video=1.0, label_precision=0.5, label_recall=1.0)
    with pytest.raises(ValueError):
        SynthConfig(videos=10, bogus=1)


# ---------------------------------------------------------------- labels


def test_class_frequencies_are_zipf_like(video_dir: Path) -> None:
    gold = read_gold_labels(video_dir)
    counts = np.sort(np.bincount(gold.observed_indices, minlength=VIDEO.classes))[::-1]
    assert counts[0] > 8 * np.median(counts)
    ranks = np.arange(1, 51)
    slope = np.polyfit(np.log(ranks), np.log(counts[:50]), 1)[0]
    assert -1.5 < slope < -0.4


def test_labels_per_video_and_noise_rates(video_dir: Path) -> None:
    gold = read_gold_labels(video_dir)
    observed = _dense(gold.observed_indptr, gold.observed_indices, VIDEO.classes)
    clean = _dense(gold.gold_indptr, gold.gold_indices, VIDEO.classes)
    assert observed.sum(1).min() >= 1
    assert observed.sum(1).mean() == pytest.approx(VIDEO.labels_per_video, abs=0.15)
    both = (observed * clean).sum()
    precision, recall = both / observed.sum(), both / clean.sum()
    assert precision == pytest.approx(VIDEO.label_precision, abs=0.03)
    assert recall == pytest.approx(VIDEO.label_recall, abs=0.03)
    assert clean.sum(1).mean() > observed.sum(1).mean() + 0.5  # gold holds more labels
    stats = json.loads((video_dir / "synth.json").read_text())["stats"]["train"]
    assert stats["label_precision"] == pytest.approx(precision)
    assert stats["label_recall"] == pytest.approx(recall)


def test_other_noise_settings_are_met(tmp_path: Path) -> None:
    config = SynthConfig(
        videos=2000, classes=200, rgb_dim=8, audio_dim=4, label_precision=0.9, label_recall=0.3
    )
    summary = generate(config, tmp_path / "out")
    assert summary.train.label_precision == pytest.approx(0.9, abs=0.03)
    assert summary.train.label_recall == pytest.approx(0.3, abs=0.03)
    assert summary.train.observed_labels_per_video == pytest.approx(3.0, abs=0.2)
    assert summary.train.gold_labels_per_video == pytest.approx(9.0, abs=0.5)


def test_labels_cooccur_and_false_positives_are_plausible(video_dir: Path) -> None:
    gold = read_gold_labels(video_dir)
    with open(video_dir / "vocabulary.csv", newline="") as f:
        vertical = np.array([r["Vertical1"] for r in csv.DictReader(f)])
    popularity = np.bincount(gold.gold_indices, minlength=VIDEO.classes) / len(gold.ids)
    same, pairs, fp_same, fp_pop, fps = 0, 0, 0, 0.0, 0
    for i in range(len(gold.ids)):
        g = gold.gold_indices[gold.gold_indptr[i] : gold.gold_indptr[i + 1]]
        o = gold.observed_indices[gold.observed_indptr[i] : gold.observed_indptr[i + 1]]
        v = vertical[g]
        same += int((v[:, None] == v[None, :]).sum() - len(v))
        pairs += len(v) * (len(v) - 1)
        for fp in np.setdiff1d(o, g):
            fp_same += int(vertical[fp] in v)
            fp_pop += popularity[fp]
            fps += 1
    chance = sum((vertical == v).mean() ** 2 for v in set(vertical))
    assert same / pairs > 3 * chance  # labels of one vertical go together
    assert fps > 0.15 * len(gold.ids)
    assert fp_same / fps > 3 * chance  # false positives share the video's vertical...
    assert fp_pop / fps > 1.5 * popularity.mean()  # ...and lean to popular classes


# ---------------------------------------------------------------- features


def test_video_features_are_mean_of_dequantized_frames(
    small_dirs: tuple[Path, Path], small_frames: list[tuple[dict, dict]]
) -> None:
    videos = _video_records(small_dirs[1])
    assert len(videos) == len(small_frames)
    for record, (context, lists) in zip(videos, small_frames):
        assert record["id"].bytes_list == context["id"].bytes_list
        assert record["labels"].int64_list.tolist() == context["labels"].int64_list.tolist()
        for key in ("rgb", "audio"):
            mean = dequantize(lists[key]).astype(np.float64).mean(axis=0)
            np.testing.assert_allclose(record[f"mean_{key}"].float_list, mean, atol=1e-6)


def test_feature_values_look_quantized_like_real_ones(
    small_frames: list[tuple[dict, dict]], video_records: list[dict]
) -> None:
    codes = np.concatenate([lists["rgb"] for _, lists in small_frames[:100]])
    values = dequantize(codes)
    assert np.abs(values).max() <= 2.0
    assert 0.3 < values.std() < 1.0
    assert (np.abs(values) > 1.5).mean() < 0.15
    means = np.stack([r["mean_rgb"].float_list for r in video_records[:500]])
    assert means.dtype == np.float32 and np.abs(means).max() < 2.0 and means.std() > 0.2


def test_scenes_show_as_jumps_in_cosine_distance(small_frames: list[tuple[dict, dict]]) -> None:
    distances = []
    for _, lists in small_frames[:100]:
        x = dequantize(lists["rgb"])
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        distances.append(1.0 - (x[1:] * x[:-1]).sum(axis=1))
    d = np.concatenate(distances)
    within, jumps = d[d < 0.1], d[d >= 0.1]
    # Bimodal: most steps stay inside a scene, a few percent are cuts, far apart.
    assert 0.01 < len(jumps) / len(d) < 0.15
    assert np.median(jumps) > 10 * np.median(within)
    assert ((d > 0.05) & (d < 0.15)).mean() < 0.005  # little in between
    cuts = [(dist >= 0.1).sum() for dist in distances]
    assert np.mean(cuts) > 3  # several scenes a video


def test_logistic_regression_is_well_below_perfect(video_dir: Path) -> None:
    gold = read_gold_labels(video_dir)
    records = _video_records(video_dir)
    x = np.stack(
        [np.concatenate([r["mean_rgb"].float_list, r["mean_audio"].float_list]) for r in records]
    )
    y = _dense(gold.observed_indptr, gold.observed_indices, VIDEO.classes)
    n = int(0.8 * len(x))
    scaler = StandardScaler().fit(x[:n])
    seen = y[:n].sum(axis=0) > 0
    model = OneVsRestClassifier(LogisticRegression(C=0.01, max_iter=200), n_jobs=2)
    model.fit(scaler.transform(x[:n]), y[:n, seen])
    scores = np.zeros((len(x) - n, VIDEO.classes))
    scores[:, seen] = model.predict_proba(scaler.transform(x[n:]))
    gap = gap_at_20(scores, y[n:])
    assert 0.5 <= gap <= 0.8, gap


def test_local_labels_show_in_frames_but_fade_in_the_mean(
    small_dirs: tuple[Path, Path], small_frames: list[tuple[dict, dict]]
) -> None:
    """A direction per class is fitted on half the videos (difference of the mean features
    of videos with and without the gold label); on the other half, the best frame's
    projection finds local classes far better than the mean's, and global ones as well."""
    classes = json.loads((small_dirs[0] / "synth.json").read_text())["classes"]
    gold = read_gold_labels(small_dirs[0])
    truth = _dense(gold.gold_indptr, gold.gold_indices, SMALL["classes"])
    frames = [
        dequantize(np.concatenate([lists["rgb"], lists["audio"]], axis=1))
        for _, lists in small_frames
    ]
    means = np.stack([f.mean(axis=0) for f in frames])
    half = len(frames) // 2
    gain: dict[str, list[float]] = {"local": [], "global": []}
    for c in range(SMALL["classes"]):
        train, test = truth[:half, c], truth[half:, c]
        if train.sum() < 5 or test.sum() < 5:
            continue
        direction = means[:half][train == 1].mean(0) - means[:half][train == 0].mean(0)
        mean_auc = roc_auc_score(test, means[half:] @ direction)
        max_auc = roc_auc_score(test, [float((f @ direction).max()) for f in frames[half:]])
        gain[classes[c]["scope"]].append(max_auc - mean_auc)
    assert len(gain["local"]) >= 4 and len(gain["global"]) >= 4
    assert np.median(gain["local"]) > 0.08
    assert np.median(gain["global"]) < 0.02


def test_intros_and_outros_are_recurring_looks_that_show_no_label(tmp_path: Path) -> None:
    from yt8mkit.data.synth.labels import _calibrate, _draw_block
    from yt8mkit.data.synth.world import _make_world, _rng

    config = SynthConfig(videos=40, classes=12, seed=2, frames=True, rgb_dim=32, audio_dim=8,
                         bumper_share=1.0, bumper_looks=2)
    generate(config, tmp_path / "b")
    rgb = [lists["rgb"].astype(np.int16) for _, lists in _frame_records(tmp_path / "b")]
    # Frames of one channel's intro differ from its look by the jitter only (a few
    # codes on average); two looks differ by about a scene's spread (tens of codes).
    def groups(frames: list[np.ndarray]) -> int:
        found: list[np.ndarray] = []
        for f in frames:
            if not any(np.abs(f - g).mean() <= 10 for g in found):
                found.append(f)
        return len(found)

    assert groups([f[0] for f in rgb]) == 2 and groups([f[-1] for f in rgb]) == 2
    plain = config.model_copy(update={"bumper_share": 0.0})
    generate(plain, tmp_path / "p")
    firsts = [lists["rgb"][0].astype(np.int16) for _, lists in _frame_records(tmp_path / "p")]
    assert groups(firsts) == len(firsts)
    # No label shows in an intro or an outro: visibility stays within content scenes.
    world = _calibrate(_make_world(config), config)
    block = _draw_block(_rng(0, 9), world, config, 200, _rng(0, 10))
    assert (block.bumper >= 0).mean() > 0.9
    assert not (block.visible & ~block.content[block.pair_video]).any()
    assert block.visible.any(axis=1).all()
