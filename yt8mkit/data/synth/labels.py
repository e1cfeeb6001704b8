"""Labels and scenes of a block of videos: gold labels, where each label is visible, the
observed labels' noise, calibrated to the configured precision and recall."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from yt8mkit.data.synth.config import _CALIBRATION_VIDEOS, _STREAM_CALIBRATION, SynthConfig
from yt8mkit.data.synth.world import _rng, _World


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
