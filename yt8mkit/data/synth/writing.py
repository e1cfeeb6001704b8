"""Writing a synthetic set: shards of both splits, the vocabulary, the gold labels and
the summary, into a temporary folder renamed when complete; reading the gold labels."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yt8mkit.data.example import encode_example, encode_sequence_example
from yt8mkit.data.synth.config import (
    _BLOCK,
    _STREAM_TEST,
    _STREAM_TRAIN,
    _VERTICAL_NAMES,
    GOLD_FILE,
    SUMMARY_FILE,
    TEST_DIR,
    VOCABULARY_FILE,
    Progress,
    SplitStats,
    SynthConfig,
    SynthSummary,
)
from yt8mkit.data.synth.frames import _frames, _scene_codes, _video_means
from yt8mkit.data.synth.labels import _Block, _calibrate, _draw_block, _Labels, _observe
from yt8mkit.data.synth.world import _make_world, _rng, _World
from yt8mkit.data.tfrecord import TFRecordWriter
from yt8mkit.errors import Yt8mError


@dataclass
class _SplitPlan:
    name: str
    stream: int
    videos: int
    first_id: int
    folder: Path
    labelled: bool


class _SplitAccumulator:
    """Ids and labels of a split for the side files, and its running statistics."""

    def __init__(self, classes: int) -> None:
        self.ids: list[str] = []
        self.gold_indptr: list[np.ndarray] = [np.zeros(1, np.int64)]
        self.gold: list[np.ndarray] = []
        self.observed_indptr: list[np.ndarray] = [np.zeros(1, np.int64)]
        self.observed: list[np.ndarray] = []
        self.observed_count = np.zeros(classes, np.int64)
        self.gold_count = np.zeros(classes, np.int64)
        self.true_positives = 0
        self.with_false_positive = 0
        self.frames = 0
        self.scenes = 0
        self.shards = 0

    def add(self, ids: list[str], labels: _Labels, block: _Block) -> None:
        self.ids.extend(ids)
        self.gold_indptr.append(self.gold_indptr[-1][-1] + block.gold_indptr[1:])
        self.gold.append(labels.gold.astype(np.int32))
        self.observed_indptr.append(self.observed_indptr[-1][-1] + labels.observed_indptr[1:])
        self.observed.append(labels.observed.astype(np.int32))
        self.observed_count += np.bincount(labels.observed, minlength=len(self.observed_count))
        self.gold_count += np.bincount(labels.gold, minlength=len(self.gold_count))
        self.true_positives += int(labels.true_positives.sum())
        fp = np.diff(labels.observed_indptr) - labels.true_positives
        self.with_false_positive += int((fp > 0).sum())
        self.frames += int(block.n_frames.sum())
        self.scenes += int((block.scene_len > 0).sum())

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        width = max((len(i) for i in self.ids), default=1)
        return {
            f"{split}_ids": np.array(self.ids, dtype=f"<U{width}"),
            f"{split}_gold_indptr": np.concatenate(self.gold_indptr),
            f"{split}_gold_indices": _concat(self.gold),
            f"{split}_observed_indptr": np.concatenate(self.observed_indptr),
            f"{split}_observed_indices": _concat(self.observed),
        }

    def stats(self) -> SplitStats:
        videos = max(len(self.ids), 1)
        observed, gold = int(self.observed_count.sum()), int(self.gold_count.sum())
        return SplitStats(
            videos=len(self.ids),
            shards=self.shards,
            observed_labels_per_video=observed / videos,
            gold_labels_per_video=gold / videos,
            label_precision=self.true_positives / max(observed, 1),
            label_recall=self.true_positives / max(gold, 1),
            videos_with_false_positive=self.with_false_positive / videos,
            mean_frames=self.frames / videos,
            mean_scenes=self.scenes / videos,
        )


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


class _ShardSink:
    """Writes records into ``{prefix}0000.tfrecord``…, a new file every ``per_shard``."""

    def __init__(self, folder: Path, prefix: str, per_shard: int, total: int) -> None:
        self.folder, self.prefix, self.per_shard = folder, prefix, per_shard
        self.width = max(4, len(str(max(math.ceil(total / per_shard) - 1, 0))))
        self.writer: TFRecordWriter | None = None
        self.in_shard = 0
        self.shards = 0
        self.files: list[Path] = []

    def write(self, payload: bytes) -> None:
        if self.writer is None or self.in_shard == self.per_shard:
            self.close()
            path = self.folder / f"{self.prefix}{self.shards:0{self.width}d}.tfrecord"
            self.writer = TFRecordWriter(path)
            self.files.append(path)
            self.shards += 1
            self.in_shard = 0
        self.writer.write(payload)
        self.in_shard += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _blocks(plan: _SplitPlan) -> Iterator[tuple[int, int, int]]:
    """(block index, first video, videos) of a split."""
    for index, start in enumerate(range(0, plan.videos, _BLOCK)):
        yield index, start, min(_BLOCK, plan.videos - start)


def _records(
    c: SynthConfig, world: _World, plan: _SplitPlan, block_index: int, first: int, n: int
) -> tuple[list[bytes], list[str], _Labels, _Block]:
    rng = _rng(c.seed, plan.stream, block_index, 0)
    bumper_rng = _rng(c.seed, plan.stream, block_index, 2) if c.bumper_share > 0 else None
    block = _draw_block(rng, world, c, n, bumper_rng)
    labels = _observe(rng, world, c, block)
    rgb = _scene_codes(rng, world, world.rgb, c, block, labels.signals)
    audio = _scene_codes(rng, world, world.audio, c, block, labels.signals)
    width = max(6, len(str(c.videos + c.test_videos - 1)))
    ids = [f"{c.id_prefix}{plan.first_id + first + i:0{width}d}" for i in range(n)]
    payloads: list[bytes] = []
    if c.frames:
        jitter_rng = _rng(c.seed, plan.stream, block_index, 1)
    else:
        mean_rgb, mean_audio = _video_means(rgb, block), _video_means(audio, block)
    for i in range(n):
        context: dict[str, bytes | np.ndarray] = {"id": ids[i].encode()}
        if plan.labelled:
            lo, hi = labels.observed_indptr[i], labels.observed_indptr[i + 1]
            context["labels"] = labels.observed[lo:hi].astype(np.int64)
        if c.frames:
            lengths = block.scene_len[i]
            lists = {
                "rgb": _frames(jitter_rng, rgb[i], lengths, world.jitter_lut),
                "audio": _frames(jitter_rng, audio[i], lengths, world.jitter_lut),
            }
            payloads.append(encode_sequence_example(context, lists))
        else:
            context["mean_rgb"] = mean_rgb[i]
            context["mean_audio"] = mean_audio[i]
            payloads.append(encode_example(context))
    return payloads, ids, labels, block


def _write_split(
    c: SynthConfig, world: _World, plan: _SplitPlan, progress: Progress | None
) -> _SplitAccumulator:
    acc = _SplitAccumulator(c.classes)
    plan.folder.mkdir(parents=True, exist_ok=True)
    sink = _ShardSink(plan.folder, plan.name, c.videos_per_shard, plan.videos)
    try:
        for block_index, first, n in _blocks(plan):
            payloads, ids, labels, block = _records(c, world, plan, block_index, first, n)
            for payload in payloads:
                sink.write(payload)
            acc.add(ids, labels, block)
            if progress is not None:
                progress(n)
    finally:
        sink.close()
    acc.shards = sink.shards
    return acc


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so files are byte-stable."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def _vertical_names(count: int) -> list[str]:
    return [
        _VERTICAL_NAMES[v] if v < len(_VERTICAL_NAMES) else f"Vertical {v + 1}"
        for v in range(count)
    ]


def _class_names(world: _World) -> list[str]:
    """Names like ``Games 3``: the vertical, then the class's frequency rank within it."""
    names = _vertical_names(len(world.vertical_prob))
    seen: dict[int, int] = {}
    out = []
    for v in world.vertical.tolist():
        seen[v] = seen.get(v, 0) + 1
        out.append(f"{names[v]} {seen[v]}")
    return out


def _write_vocabulary(path: Path, world: _World, train_counts: np.ndarray) -> None:
    verticals = _vertical_names(len(world.vertical_prob))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Index", "TrainVideoCount", "Name", "Vertical1"])
    for index, name in enumerate(_class_names(world)):
        vertical = verticals[int(world.vertical[index])]
        writer.writerow([index, int(train_counts[index]), name, vertical])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _class_table(world: _World, train: _SplitAccumulator) -> list[dict[str, object]]:
    names = _class_names(world)
    return [
        {
            "index": i,
            "name": names[i],
            "vertical": int(world.vertical[i]),
            "scope": "local" if world.local[i] else "global",
            "visibility": round(float(world.visibility[i]), 4),
            "modality": str(world.modality[i]),
            "rgb_amplitude": round(float(world.rgb.amplitude[i]), 4),
            "audio_amplitude": round(float(world.audio.amplitude[i]), 4),
            "train_observed": int(train.observed_count[i]),
            "train_gold": int(train.gold_count[i]),
        }
        for i in range(len(names))
    ]


def _summary_json(
    c: SynthConfig, world: _World, stats: dict[str, SplitStats], train: _SplitAccumulator
) -> str:
    doc = {
        "format_version": 1,
        "config": c.model_dump(mode="json"),
        "derived": {
            "verticals": c.effective_verticals,
            "vertical_names": _vertical_names(c.effective_verticals),
            "gold_labels_per_video_target": c.gold_labels_per_video,
            "keep_logit": world.keep_logit,
            "false_positives_per_video": world.fp_rate,
            "jitter_margin_codes": world.jitter_margin,
        },
        "stats": {name: s.model_dump() for name, s in stats.items()},
        "classes": _class_table(world, train),
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


_OUR_FILE = re.compile(rf"({re.escape(GOLD_FILE)}|{re.escape(VOCABULARY_FILE)}|"
                       rf"{re.escape(SUMMARY_FILE)}|train\d+\.tfrecord|"
                       rf"{TEST_DIR}/test\d+\.tfrecord)")


def is_synth_output(path: Path) -> bool:
    """A folder that ``generate`` wrote and nobody added to: its summary, and no file but
    the ones it writes (a store ingested into it, notes of the user's, make it another's)."""
    if not (path / SUMMARY_FILE).is_file():
        return False
    for item in path.rglob("*"):
        name = item.relative_to(path).as_posix()
        if item.is_dir() and name == TEST_DIR:
            continue
        if item.is_symlink() or not item.is_file() or not _OUR_FILE.fullmatch(name):
            return False
    return True


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that holds anything but a dataset of ours (whatever
    ``overwrite`` says: the tool never deletes what it did not write), and one of ours
    unless ``overwrite``; an empty folder is taken."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise Yt8mError(f"{out}: exists and is not a folder; give a folder to write")
    if not out.exists() or not any(out.iterdir()):
        return
    if not is_synth_output(out):
        raise Yt8mError(f"{out}: exists and is not a synthetic dataset of `yt8m synth` "
                        "(it holds other files); it is left as it is")
    if not overwrite:
        raise Yt8mError(f"{out}: already holds a synthetic dataset; pass --overwrite "
                        "(overwrite=True) to replace it")


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    if out.exists():
        _check_out(out, overwrite)  # again: it may have changed while we wrote
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def generate(
    config: SynthConfig,
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    overwrite: bool = False,
) -> SynthSummary:
    """Write a synthetic dataset to ``out_dir`` (the layout: the package docstring).

    ``progress(n)`` is called after each block of n videos (train, then test). Nothing
    appears under ``out_dir`` until everything is written. An existing non-empty
    ``out_dir`` is refused, unless it is a dataset of ours and ``overwrite`` is given;
    anything else there (a file of the user's) is never deleted.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    _check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    world = _calibrate(_make_world(config), config)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        plans = [_SplitPlan("train", _STREAM_TRAIN, config.videos, 0, tmp, True)]
        if config.test_videos:
            plans.append(
                _SplitPlan(
                    "test", _STREAM_TEST, config.test_videos, config.videos, tmp / TEST_DIR,
                    config.label_test,
                )
            )
        results = {plan.name: _write_split(config, world, plan, progress) for plan in plans}
        arrays: dict[str, np.ndarray] = {}
        for name, acc in results.items():
            arrays.update(acc.arrays(name))
        _write_npz(tmp / GOLD_FILE, arrays)
        train = results["train"]
        _write_vocabulary(tmp / VOCABULARY_FILE, world, train.observed_count)
        stats = {name: acc.stats() for name, acc in results.items()}
        (tmp / SUMMARY_FILE).write_text(_summary_json(config, world, stats, train), "utf-8")
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(
        out_dir=str(out),
        train=stats["train"],
        test=stats.get("test"),
        files=files,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class GoldLabels:
    """One split of ``gold_labels.npz``: ids, and gold and observed labels as CSR."""

    ids: np.ndarray
    gold_indptr: np.ndarray
    gold_indices: np.ndarray
    observed_indptr: np.ndarray
    observed_indices: np.ndarray


def read_gold_labels(out_dir: str | os.PathLike[str], split: str = "train") -> GoldLabels:
    with np.load(Path(out_dir) / GOLD_FILE) as data:
        return GoldLabels(
            ids=data[f"{split}_ids"],
            gold_indptr=data[f"{split}_gold_indptr"],
            gold_indices=data[f"{split}_gold_indices"],
            observed_indptr=data[f"{split}_observed_indptr"],
            observed_indices=data[f"{split}_observed_indices"],
        )
