"""The synthetic data's settings and the summaries a run writes (see the package's
docstring for what the generator imitates)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
