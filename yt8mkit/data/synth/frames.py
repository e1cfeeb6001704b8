"""Features: the quantized scene codes, the frames (jitter in code space) and their
exact video-level means."""

from __future__ import annotations

import numpy as np

from yt8mkit.data.quantize import BIAS, SCALAR, quantize
from yt8mkit.data.synth.config import SynthConfig
from yt8mkit.data.synth.labels import _Block, _Signals
from yt8mkit.data.synth.world import _Modality, _World


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
