"""Synthetic YouTube-8M: shards in the real schema, with known clean labels.

The generator imitates what makes the real data hard, so that the paper's effects can
show on a laptop-sized dataset:

- **Labels.** Class frequencies fall off like Zipf's law; classes belong to verticals
  (YouTube-8M's ``Vertical1``) and a video's labels mostly come from one vertical, so
  labels co-occur. Each video has *gold* labels (what is really in it) and *observed*
  labels, the gold ones corrupted like the YouTube annotation system's: a gold label is
  kept with a probability that depends on the class and on how prominent it is in the
  video (so misses are partly predictable, as real ones are), and false positives are
  plausible labels (the video's vertical, popular classes) with no trace in the
  features. The keep rate and the false-positive rate are calibrated so that observed
  labels have the configured precision and recall against the gold ones.
- **Frames.** A video is a sequence of scenes; a frame repeats its scene's features
  plus a small jitter, so the cosine distance between neighbouring frames jumps at
  scene cuts. Each class has a signature direction in rgb and/or audio space. Some
  classes are visible in every scene; *local* ones only in a few, stronger there, so
  that averaging frames dilutes them while a frame-level model can find them.
- **Intros and outros** (``bumper_share``, off by default). Many real videos open with
  a channel's intro and close with its end screen: the first and the last scene of such
  a video show one of a few recurring looks and none of the video's labels. The mean
  over frames mixes them in; a model that weighs frames by their place can leave them
  out.
- **Quantization.** Scene features are quantized with ``quantize`` and the jitter is
  added in code space. The jitter of a scene sums to zero exactly (frame ``t`` adds
  ``e_t`` and subtracts ``e_{t+s}``, a cyclic shift within the scene), so the mean of
  the dequantized frames depends on scene codes only: the video-level path computes it
  without generating frames and still gets the means that the frame-level files of the
  same seed give.

Determinism: every block of ``_BLOCK`` videos draws from its own seeded stream, so the
same config gives byte-identical files, the videos do not depend on the shard size, and
the frame jitter (its own stream) does not change the rest when ``frames`` is off.

Output (written to a temporary directory next to ``out_dir``, renamed when complete)::

    train0000.tfrecord ...      labelled split (Example, or SequenceExample with frames)
    test/test0000.tfrecord ...  test split, when test_videos > 0: unlabelled (no `labels`
                                key) unless label_test;
                                in a subfolder so that ingesting out_dir reads train only
    vocabulary.csv              Index,TrainVideoCount,Name,Vertical1
    gold_labels.npz             per split ("train", "test"): {split}_ids, and gold and
                                observed labels as CSR: {split}_{gold,observed}_{indptr,
                                indices} (test's observed labels are the hidden ones)
    synth.json                  config, calibration, measured stats, class table
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from yt8mkit.data.example import encode_example, encode_sequence_example
from yt8mkit.data.quantize import BIAS, SCALAR, quantize
from yt8mkit.data.tfrecord import TFRecordWriter
from yt8mkit.errors import Yt8mError

# Videos a random stream covers. Fixed (not the shard size) so that resharding keeps
# the videos, and small enough that a block's padded scene arrays stay a few MB.
_BLOCK = 256
_STREAM_TRAIN, _STREAM_TEST, _STREAM_WORLD, _STREAM_CALIBRATION = 0, 1, 2, 3
_CALIBRATION_VIDEOS = 4096
GOLD_FILE = "gold_labels.npz"
VOCABULARY_FILE = "vocabulary.csv"
SUMMARY_FILE = "synth.json"
TEST_DIR = "test"

# YouTube-8M's Vertical1 values, largest first; more verticals get numbered names.
_VERTICAL_NAMES = (
    "Arts & Entertainment", "Games", "Autos & Vehicles", "Sports", "Food & Drink",
    "Computers & Electronics", "Hobbies & Leisure", "Business & Industrial",
    "Pets & Animals", "Beauty & Fitness", "Science", "Home & Garden", "Shopping",
    "Travel", "People & Society", "Internet & Telecom", "Law & Government", "Health",
    "Books & Literature", "Jobs & Education", "Reference", "News", "Finance",
    "Real Estate", "Online Communities",
)  # fmt: skip


class SynthConfig(BaseModel):
    """Everything that decides what the generator writes; the defaults live here only.

    Noise and signal amplitudes are in feature units. A signature is a unit direction,
    so an amplitude is how far a label moves a scene along its direction, to be compared
    with ``scene_noise`` and ``video_noise`` (the spread of any direction's projection).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    videos: int = Field(3000, ge=1, description="labelled (train) videos")
    classes: int = Field(100, ge=2)
    seed: int = Field(0, ge=0)
    frames: bool = Field(False, description="frame-level SequenceExamples, else video-level")
    rgb_dim: int = Field(1024, ge=1)
    audio_dim: int = Field(128, ge=1)
    verticals: int = Field(
        25, ge=1, description="at most; capped at classes // 4 so verticals hold several"
    )
    labels_per_video: float = Field(3.0, ge=1.0, description="mean observed labels a video")
    label_precision: float = Field(0.79, gt=0.0, le=1.0, description="observed vs gold")
    label_recall: float = Field(0.6, gt=0.0, le=1.0, description="observed vs gold")
    min_frames: int = Field(120, ge=1)
    max_frames: int = Field(300, ge=1)
    videos_per_shard: int = Field(1000, ge=1)
    test_videos: int = Field(0, ge=0, description="videos in test/")
    # Off: test/ is like Kaggle's test shards (labels hidden in gold_labels.npz). On: like
    # the real validation shards, so a run can score its own submission.
    label_test: bool = Field(False, description="write the observed labels into test/")
    id_prefix: str = Field("synth", min_length=1)
    # Label structure.
    zipf_exponent: float = Field(1.0, gt=0.0, description="class weight ∝ 1/(rank+2)^s")
    vertical_affinity: float = Field(
        0.75, ge=0.0, lt=1.0, description="chance a label comes from the video's vertical"
    )
    recall_spread: float = Field(
        1.5, ge=0.0, description="sd of per-class keep logits: some classes are rarely tagged"
    )
    recall_prominence: float = Field(
        1.5, ge=0.0, description="how much a label's prominence in the video raises its keep odds"
    )
    false_positive_trace: float = Field(
        0.5, ge=0.0, description="gain of the faint look-alike a false positive leaves"
    )
    # Scenes.
    mean_scene_frames: float = Field(25.0, gt=0.0)
    min_scene_frames: int = Field(3, ge=2, description="≥ 2 so that every frame gets jitter")
    bumper_share: float = Field(
        0.0, ge=0.0, le=1.0,
        description="videos (of 3 scenes or more) whose first and last scene are a "
        "channel's intro and outro, showing no label",
    )
    bumper_looks: int = Field(16, ge=1, description="channels: distinct intro/outro looks")
    # Features.
    signal: float = Field(3.0, ge=0.0, description="amplitude of a global class signature")
    local_fraction: float = Field(
        0.4, ge=0.0, le=1.0, description="classes visible in a few scenes only"
    )
    local_visibility: tuple[float, float] = Field(
        (0.08, 0.25), description="range of the share of scenes a local class shows in"
    )
    local_boost: float = Field(2.0, gt=0.0, description="local classes are stronger where seen")
    rgb_only_fraction: float = Field(0.5, ge=0.0, le=1.0)
    audio_only_fraction: float = Field(0.15, ge=0.0, le=1.0)
    audio_signal: float = Field(0.7, ge=0.0, description="audio amplitude of rgb+audio classes")
    vertical_signal: float = Field(0.4, ge=0.0, description="shared look of a vertical")
    video_noise: float = Field(0.3, ge=0.0, description="per-video offset, same in all scenes")
    scene_noise: float = Field(0.45, ge=0.0, description="per-scene content unrelated to labels")
    frame_jitter: float = Field(0.045, ge=0.0, description="sd of a frame around its scene")
    offset_spread: float = Field(0.2, ge=0.0, description="sd of the dataset-wide mean per dim")

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames {self.min_frames} > max_frames {self.max_frames}")
        if self.min_scene_frames > self.min_frames:
            raise ValueError("min_scene_frames must not exceed min_frames")
        low, high = self.local_visibility
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"local_visibility must satisfy 0 < low <= high <= 1: {low, high}")
        if self.rgb_only_fraction + self.audio_only_fraction > 1.0:
            raise ValueError("rgb_only_fraction + audio_only_fraction exceeds 1")
        if self.gold_labels_per_video < 1.0:
            raise ValueError(
                "labels_per_video * label_precision / label_recall (gold labels a video) "
                f"is {self.gold_labels_per_video:.2f}; it must be at least 1"
            )
        return self

    @property
    def gold_labels_per_video(self) -> float:
        """Kept gold labels are precision × observed = recall × gold, per video."""
        return self.labels_per_video * self.label_precision / self.label_recall

    @property
    def effective_verticals(self) -> int:
        return max(1, min(self.verticals, self.classes // 4))


class SplitStats(BaseModel):
    """Measured over one split: observed labels against gold ones, and the frames."""

    videos: int
    shards: int
    observed_labels_per_video: float
    gold_labels_per_video: float
    label_precision: float
    label_recall: float
    videos_with_false_positive: float
    mean_frames: float
    mean_scenes: float


class SynthSummary(BaseModel):
    out_dir: str
    train: SplitStats
    test: SplitStats | None
    files: list[str]
    seconds: float


Progress = Callable[[int], None]  # advance by this many videos


# ---------------------------------------------------------------- the world


@dataclass(frozen=True)
class _Modality:
    """Per-class signatures of one feature kind (rgb or audio)."""

    name: str
    offset: np.ndarray  # (d,) dataset-wide mean
    signature: np.ndarray  # (C, d) unit rows, float32
    amplitude: np.ndarray  # (C,) 0 where the class is invisible in this modality
    vertical_look: np.ndarray  # (V, d) with the vertical amplitude folded in
    # (2L, d): channel l's intro is row l, its outro row L + l (None: no bumpers)
    bumper_look: np.ndarray | None = None


@dataclass(frozen=True)
class _World:
    """Everything shared by all videos of a seed: classes, verticals, signatures."""

    log_weight: np.ndarray  # (C,) Zipf class weights, log
    vertical: np.ndarray  # (C,) vertical of each class
    vertical_prob: np.ndarray  # (V,) chance a video's main vertical is this one
    vertical_boost: np.ndarray  # (V,) log odds boost of the main vertical's classes
    local: np.ndarray  # (C,) bool, visible in a few scenes only
    visibility: np.ndarray  # (C,) chance a scene shows the class (1 for global classes)
    modality: np.ndarray  # (C,) "rgb", "audio" or "both"
    keep_bias: np.ndarray  # (C,) per-class keep logit offset (annotator habits)
    rgb: _Modality
    audio: _Modality
    jitter_lut: np.ndarray  # (256,) int16 byte → jitter code
    jitter_margin: int  # scene codes stay this far from 0 and 255
    keep_logit: float = 0.0  # calibrated
    fp_rate: float = 0.0  # calibrated, false positives a video (Poisson mean)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    m = rng.standard_normal((rows, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _assign_verticals(rng: np.random.Generator, classes: int, verticals: int) -> np.ndarray:
    """Verticals of Zipf-like sizes, each with at least one class, numbered by mass."""
    share = 1.0 / np.arange(1, verticals + 1) ** 0.8
    vertical = rng.choice(verticals, size=classes, p=share / share.sum())
    vertical[rng.permutation(classes)[:verticals]] = np.arange(verticals)
    return vertical


def _jitter_lut(jitter: float) -> tuple[np.ndarray, int]:
    """A byte → code table whose values follow a discretised normal; a frame's jitter is
    the difference of two such values, hence the 1/√2."""
    sd = jitter / float(SCALAR) / math.sqrt(2.0)
    if sd == 0.0:
        return np.zeros(256, np.int16), 0
    bound = max(1, math.ceil(3.0 * sd))
    normal = NormalDist()
    codes = [round(sd * normal.inv_cdf((i + 0.5) / 256)) for i in range(256)]
    lut = np.clip(np.array(codes, np.int16), -bound, bound)
    return lut, 2 * bound


def _modality(
    name: str,
    rng: np.random.Generator,
    dim: int,
    amplitude: np.ndarray,
    c: SynthConfig,
    verticals: int,
) -> _Modality:
    return _Modality(
        name=name,
        offset=(c.offset_spread * rng.standard_normal(dim)).astype(np.float32),
        signature=_unit_rows(rng, len(amplitude), dim),
        amplitude=amplitude.astype(np.float32),
        vertical_look=(c.vertical_signal * _unit_rows(rng, verticals, dim)).astype(np.float32),
    )


def _make_world(c: SynthConfig) -> _World:
    rng = _rng(c.seed, _STREAM_WORLD)
    n, v = c.classes, c.effective_verticals
    log_weight = -c.zipf_exponent * np.log(np.arange(n) + 2.0)
    vertical = _assign_verticals(rng, n, v)
    mass = np.bincount(vertical, weights=np.exp(log_weight), minlength=v)
    # Order verticals by mass so that vertical 0 takes the first name, like the real one.
    rank = np.empty(v, np.int64)
    rank[np.argsort(-mass, kind="stable")] = np.arange(v)
    vertical, mass = rank[vertical], np.sort(mass)[::-1]
    # Boost that makes the first label come from the main vertical with the affinity's
    # chance whatever the vertical's size.
    rest = np.maximum(mass.sum() - mass, 1e-12)
    odds = c.vertical_affinity / (1.0 - c.vertical_affinity)
    boost = np.log(np.maximum(odds * rest / mass, 1e-12)) if v > 1 else np.zeros(1)

    local = rng.random(n) < c.local_fraction
    low, high = c.local_visibility
    visibility = np.where(local, rng.uniform(low, high, n), 1.0)
    draw = rng.random(n)
    modality = np.where(
        draw < c.rgb_only_fraction,
        "rgb",
        np.where(draw < c.rgb_only_fraction + c.audio_only_fraction, "audio", "both"),
    )
    strength = c.signal * np.exp(0.3 * rng.standard_normal(n)) * np.where(local, c.local_boost, 1)
    rgb_amp = np.where(modality == "audio", 0.0, strength)
    audio_amp = np.select(
        [modality == "audio", modality == "both"], [strength, c.audio_signal * strength], 0.0
    )
    keep_bias = c.recall_spread * rng.standard_normal(n)
    lut, margin = _jitter_lut(c.frame_jitter)
    rgb = _modality("rgb", rng, c.rgb_dim, rgb_amp, c, v)
    audio = _modality("audio", rng, c.audio_dim, audio_amp, c, v)
    if c.bumper_share > 0:
        # Their own stream: switching bumpers on changes nothing else of the world.
        looks = _rng(c.seed, _STREAM_WORLD, 1)
        # A look is as far from the mean as a scene's own content is.
        rgb, audio = (
            dataclasses.replace(mod, bumper_look=(c.scene_noise * looks.standard_normal(
                (2 * c.bumper_looks, dim))).astype(np.float32))
            for mod, dim in ((rgb, c.rgb_dim), (audio, c.audio_dim))
        )
    return _World(
        log_weight=log_weight,
        vertical=vertical,
        vertical_prob=mass / mass.sum(),
        vertical_boost=boost,
        local=local,
        visibility=visibility,
        modality=modality,
        keep_bias=keep_bias,
        rgb=rgb,
        audio=audio,
        jitter_lut=lut,
        jitter_margin=margin,
    )


# ---------------------------------------------------------------- labels and scenes


@dataclass
class _Block:
    """The labels and scene layout of a block of videos (features come later).

    Gold labels are "pairs" in CSR order (video-major); per pair: its class, strength,
    which scenes show it, and its keep logit before calibration.
    """

    main_vertical: np.ndarray  # (n,)
    gold_indptr: np.ndarray  # (n+1,)
    pair_class: np.ndarray  # (P,)
    pair_video: np.ndarray  # (P,)
    strength: np.ndarray  # (P,) per-video scaling of the class amplitude
    visible: np.ndarray  # (P, K) bool, scenes that show the label
    keep_score: np.ndarray  # (P,) keep logit without the calibrated constant
    n_frames: np.ndarray  # (n,)
    scene_len: np.ndarray  # (n, K), 0 past the last scene
    content: np.ndarray  # (n, K) bool, scenes that may show labels (not intro/outro)
    bumper: np.ndarray  # (n,) channel of the video's intro and outro, -1 for none

    @property
    def size(self) -> int:
        return len(self.n_frames)


def _top_k(
    rng: np.random.Generator, scores: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[i]`` classes drawn without replacement with probability ∝ exp(score) for
    each row (Gumbel top-k); -inf scores are never drawn. Returns CSR (indptr, indices)."""
    n, classes = scores.shape
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    kmax = int(counts.max()) if n else 0
    if kmax == 0:
        return indptr, np.zeros(0, np.int64)
    keys = scores + rng.gumbel(size=scores.shape)
    if kmax < classes:
        top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
    else:
        top = np.broadcast_to(np.arange(classes), (n, classes))
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    return indptr, top[np.arange(kmax) < counts[:, None]].astype(np.int64)


def _draw_scenes(rng: np.random.Generator, n: int, c: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frame counts and scene lengths; scene lengths are min + geometric, the last one
    cut at the video's end and merged into the previous one when too short."""
    n_frames = rng.integers(c.min_frames, c.max_frames + 1, size=n)
    cap = c.max_frames // c.min_scene_frames + 2
    p = 1.0 / max(c.mean_scene_frames - c.min_scene_frames + 1.0, 1.0)
    lengths = c.min_scene_frames - 1 + rng.geometric(p, size=(n, cap))
    ends = np.cumsum(lengths, axis=1)
    starts = ends - lengths
    inside = starts < n_frames[:, None]
    lengths = np.where(inside, np.minimum(ends, n_frames[:, None]) - starts, 0)
    count = inside.sum(axis=1)
    rows = np.arange(n)
    last = lengths[rows, count - 1]
    merge = (last < c.min_scene_frames) & (count > 1)
    lengths[rows[merge], count[merge] - 2] += last[merge]
    lengths[rows[merge], count[merge] - 1] = 0
    width = int((lengths > 0).sum(axis=1).max())
    return n_frames, lengths[:, :width]


def _visibility(
    rng: np.random.Generator, world: _World, pair_class: np.ndarray, content: np.ndarray
) -> np.ndarray:
    """(P, K) scenes that show each label: every content scene for global classes, a few
    for local ones, and at least one (what is in a video shows somewhere). Content
    scenes are consecutive: all of a video's scenes but its intro and outro."""
    visible = (rng.random(content.shape) < world.visibility[pair_class, None]) & content
    unseen = np.flatnonzero(~visible.any(axis=1))
    first = content[unseen].argmax(axis=1)
    pick = first + (rng.random(len(unseen)) * content[unseen].sum(axis=1)).astype(np.int64)
    visible[unseen, pick] = True
    return visible


def _bumpers(rng: np.random.Generator | None, c: SynthConfig, scene_len: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Channel of each video's intro and outro (-1: none), and its content scenes."""
    n = len(scene_len)
    content = scene_len > 0
    bumper = np.full(n, -1, np.int64)
    if rng is None:
        return bumper, content
    scenes = content.sum(axis=1)
    has = (rng.random(n) < c.bumper_share) & (scenes >= 3)
    bumper[has] = rng.integers(0, c.bumper_looks, int(has.sum()))
    rows = np.flatnonzero(has)
    content[rows, 0] = False
    content[rows, scenes[rows] - 1] = False
    return bumper, content


def _draw_block(rng: np.random.Generator, world: _World, c: SynthConfig, n: int,
                bumper_rng: np.random.Generator | None = None) -> _Block:
    classes = c.classes
    main = rng.choice(len(world.vertical_prob), size=n, p=world.vertical_prob)
    extra = rng.poisson(max(c.gold_labels_per_video - 1.0, 0.0), size=n)
    counts = np.minimum(1 + extra, classes)
    in_main = world.vertical[None, :] == main[:, None]
    scores = world.log_weight[None, :] + in_main * world.vertical_boost[main][:, None]
    indptr, pair_class = _top_k(rng, scores, counts)
    pair_video = np.repeat(np.arange(n), counts)

    n_frames, scene_len = _draw_scenes(rng, n, c)
    bumper, content = _bumpers(bumper_rng, c, scene_len)
    visible = _visibility(rng, world, pair_class, content[pair_video])
    strength = np.exp(0.35 * rng.standard_normal(len(pair_class)))
    shown = (visible * scene_len[pair_video]).sum(axis=1) / n_frames[pair_video]
    prominence = np.log(strength) + np.log(shown / world.visibility[pair_class])
    keep_score = world.keep_bias[pair_class] + c.recall_prominence * prominence
    return _Block(
        main_vertical=main,
        gold_indptr=indptr,
        pair_class=pair_class,
        pair_video=pair_video,
        strength=strength,
        visible=visible,
        keep_score=keep_score,
        n_frames=n_frames,
        scene_len=scene_len,
        content=content,
        bumper=bumper,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _calibrate(world: _World, c: SynthConfig) -> _World:
    """Keep logit and false-positive rate that give the configured recall and precision,
    in expectation over a calibration sample, counting the rule that a video with no
    observed label gets its most prominent gold one (real videos have at least one)."""
    rng = _rng(c.seed, _STREAM_CALIBRATION)
    bumper_rng = _rng(c.seed, _STREAM_CALIBRATION, 2) if c.bumper_share > 0 else None
    block = _draw_block(rng, world, c, _CALIBRATION_VIDEOS, bumper_rng)
    gold = len(block.pair_class)
    n = block.size
    fp_rate = 0.0
    keep_logit = 0.0
    for _ in range(8):
        lo, hi = -30.0, 30.0
        for _ in range(60):
            keep_logit = 0.5 * (lo + hi)
            kept = _sigmoid(keep_logit + block.keep_score)
            # Per video: chance that no gold label is kept, via a log-sum per row.
            log_miss = np.log(np.maximum(1.0 - kept, 1e-300))
            none = np.exp(np.bincount(block.pair_video, log_miss, minlength=n))
            tp = kept.sum() + (none * math.exp(-fp_rate)).sum()
            if tp / gold < c.label_recall:
                lo = keep_logit
            else:
                hi = keep_logit
        fp_rate = tp / n * (1.0 - c.label_precision) / c.label_precision
    return dataclasses.replace(world, keep_logit=keep_logit, fp_rate=fp_rate)


@dataclass
class _Signals:
    """What the features of a block show: (video, class) pairs with a gain on the class
    amplitude and the scenes they show in. Gold labels, plus the faint look-alikes that
    made the annotator add false positives."""

    video: np.ndarray  # (S,)
    cls: np.ndarray  # (S,)
    gain: np.ndarray  # (S,)
    visible: np.ndarray  # (S, K) bool

    def slots(self) -> tuple[np.ndarray, int]:
        """Rank of each pair among its video's pairs, and the largest count."""
        order = np.argsort(self.video, kind="stable")
        counts = np.bincount(self.video)
        starts = np.cumsum(counts) - counts
        slot = np.empty(len(order), np.int64)
        slot[order] = np.arange(len(order)) - starts[self.video[order]]
        return slot, int(counts.max()) if len(counts) else 0


@dataclass
class _Labels:
    observed_indptr: np.ndarray
    observed: np.ndarray  # classes, sorted within each video
    gold: np.ndarray  # classes, sorted within each video
    true_positives: np.ndarray  # (n,)
    signals: _Signals


def _sorted_csr(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return indices[np.lexsort((indices, rows))]


def _observe(rng: np.random.Generator, world: _World, c: SynthConfig, b: _Block) -> _Labels:
    """Corrupt the gold labels: drop some, add plausible false positives."""
    n, classes = b.size, c.classes
    logit = world.keep_logit + b.keep_score
    kept = rng.random(len(logit)) < _sigmoid(logit)
    gold_counts = np.diff(b.gold_indptr)
    scores = world.log_weight[None, :] + np.where(
        world.vertical[None, :] == b.main_vertical[:, None],
        world.vertical_boost[b.main_vertical][:, None],
        0.0,
    )
    scores[b.pair_video, b.pair_class] = -np.inf  # a false positive is not a gold label
    fp_counts = np.minimum(rng.poisson(world.fp_rate, size=n), classes - gold_counts)
    _, fp = _top_k(rng, scores, fp_counts)

    tp_counts = np.bincount(b.pair_video[kept], minlength=n)
    empty = np.flatnonzero((tp_counts == 0) & (fp_counts == 0))
    if len(empty):
        # The most prominent gold label of each empty video (first pair on ties).
        masked = np.where(np.isin(b.pair_video, empty), logit, -np.inf)
        order = np.lexsort((-masked, b.pair_video))
        first = order[b.gold_indptr[:-1][empty]]
        kept[first] = True
        tp_counts[empty] = 1
    fp_video = np.repeat(np.arange(n), fp_counts)
    obs_video = np.concatenate([b.pair_video[kept], fp_video])
    obs_class = np.concatenate([b.pair_class[kept], fp])
    order = np.lexsort((obs_class, obs_video))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(tp_counts + fp_counts, out=indptr[1:])
    # Annotators err on what looks like a class: a false positive leaves a faint trace.
    fp_visible = _visibility(rng, world, fp, b.content[fp_video])
    fp_gain = c.false_positive_trace * np.exp(0.35 * rng.standard_normal(len(fp)))
    signals = _Signals(
        video=np.concatenate([b.pair_video, fp_video]),
        cls=np.concatenate([b.pair_class, fp]),
        gain=np.concatenate([b.strength, fp_gain]),
        visible=np.concatenate([b.visible, fp_visible]),
    )
    return _Labels(
        observed_indptr=indptr,
        observed=obs_class[order],
        gold=_sorted_csr(b.gold_indptr, b.pair_class),
        true_positives=tp_counts,
        signals=signals,
    )


# ---------------------------------------------------------------- features


def _scene_codes(
    rng: np.random.Generator,
    world: _World,
    mod: _Modality,
    c: SynthConfig,
    b: _Block,
    signals: _Signals,
) -> np.ndarray:
    """(n, K, d) uint8 codes of every scene (rows past a video's last scene are unused)."""
    n, k = b.scene_len.shape
    dim = mod.signature.shape[1]
    x = np.empty((n, k, dim), np.float32)
    x[:] = mod.offset
    x += mod.vertical_look[b.main_vertical][:, None, :]
    x += np.float32(c.video_noise) * rng.standard_normal((n, 1, dim), dtype=np.float32)
    real = b.scene_len > 0
    x[real] += np.float32(c.scene_noise) * rng.standard_normal(
        (int(real.sum()), dim), dtype=np.float32
    )
    # Label signals: per video, (scenes × its labels) weights times (labels × dim).
    slot, width = signals.slots()
    weights = np.zeros((n, k, width), np.float32)
    coef = (mod.amplitude[signals.cls] * signals.gain).astype(np.float32)
    weights[signals.video, :, slot] = signals.visible * coef[:, None]
    directions = np.zeros((n, width, dim), np.float32)
    directions[signals.video, slot] = mod.signature[signals.cls]
    x += weights @ directions
    if mod.bumper_look is not None:
        # Intro and outro: the channel's look, nothing of the video's own.
        rows = np.flatnonzero(b.bumper >= 0)
        last = (b.scene_len[rows] > 0).sum(axis=1) - 1
        looks = mod.offset + mod.bumper_look
        x[rows, 0] = looks[b.bumper[rows]]
        x[rows, last] = looks[c.bumper_looks + b.bumper[rows]]
    codes = quantize(x)
    # Room for the jitter, so that frames never clip and their mean stays exact.
    return np.clip(codes, world.jitter_margin, 255 - world.jitter_margin)


def _video_means(codes: np.ndarray, b: _Block) -> np.ndarray:
    """Mean of the dequantized frames of each video, from the scene codes: the jitter of
    a scene sums to zero. Code sums are integers below 2^24, exact in float32."""
    sums = (b.scene_len[:, None, :].astype(np.float32) @ codes.astype(np.float32))[:, 0, :]
    mean_code = sums.astype(np.float64) / b.n_frames[:, None]
    return (mean_code * float(SCALAR) + float(BIAS)).astype(np.float32)


def _frames(
    rng: np.random.Generator, codes: np.ndarray, lengths: np.ndarray, lut: np.ndarray
) -> np.ndarray:
    """(frames, d) uint8 of one video: scene codes repeated, plus zero-sum jitter."""
    lengths = lengths[lengths > 0]
    base = np.repeat(codes[: len(lengths)], lengths, axis=0).astype(np.int16)
    jitter = lut[rng.integers(0, 256, size=base.shape, dtype=np.uint8)]
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    length = np.repeat(lengths, lengths)
    shift = np.repeat(rng.integers(1, np.maximum(lengths, 2)), lengths)
    partner = starts + (np.arange(len(base)) - starts + shift) % length
    return (base + jitter - jitter[partner]).astype(np.uint8)


# ---------------------------------------------------------------- writing


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
    """Write a synthetic dataset to ``out_dir`` (see the module docstring for the layout).

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
