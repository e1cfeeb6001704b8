"""The world a synthetic set is drawn from: classes, verticals, each class's signature
directions in feature space, scene looks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from yt8mkit.data.quantize import SCALAR
from yt8mkit.data.synth.config import _STREAM_WORLD, SynthConfig


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
