"""Typed training configuration: every default of the trainer lives here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from yt8mkit.config_files import (
    apply_overrides,
    key_path_error,
    read_yaml_mapping,
    resolve_path,
    validate,
)
from yt8mkit.models.registry import ModelConfig
from yt8mkit.names import PlainName

LossName = Literal["bce", "soft_ranking", "hinge_ranking"]


class BCEParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RankingParams(BaseModel):
    """Parameters of the ranking losses; defaults are the paper's."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    top_negatives: int = Field(30, ge=1)
    margin: float = 1.0
    positive_threshold: float = Field(0.5, gt=0.0, le=1.0)
    pairs: Literal["batch", "video"] = "batch"
    # Mean BCE is ~1e-3 once trained while the ranking term is ~1: a useful weight is large.
    bce_weight: float = Field(0.0, ge=0.0)


LOSS_PARAMS: dict[str, type[BaseModel]] = {
    "bce": BCEParams,
    "soft_ranking": RankingParams,
    "hinge_ranking": RankingParams,
}


class LossConfig(BaseModel):
    """A loss named in a config, with its parameters."""

    model_config = ConfigDict(extra="forbid")
    name: LossName = "bce"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_known(self) -> LossConfig:
        # Checked when the config is read: a typo must not wait for the first epoch.
        params_class = LOSS_PARAMS[self.name]
        try:
            params_class.model_validate(self.params)
        except ValidationError as err:
            raise key_path_error("params", err, params_class) from None
        return self



class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    # Large batches need warm-up before a high learning rate (paper, "Training parameters").
    warmup_steps: int = Field(100, ge=0)
    schedule: Literal["cosine", "constant", "step"] = "cosine"
    min_lr_ratio: float = Field(0.02, ge=0, le=1)
    step_gamma: float = Field(0.5, gt=0)
    step_every_epochs: int = Field(2, ge=1)
    grad_clip: float | None = 5.0


class FrameDataConfig(BaseModel):
    """How frame-level models are fed (ignored by video-level ones)."""

    model_config = ConfigDict(extra="forbid")
    max_frames: int = Field(300, ge=1)
    # Every stride-th frame only: sequence models (LSTM, transformers) cost about
    # stride times less, and a scene spans many frames.
    stride: int = Field(1, ge=1)
    # Batching videos of similar length wastes less compute on padding.
    bucket_by_length: bool = True
    workers: int = Field(0, ge=0)


class TrainConfig(BaseModel):
    """One first-level model: architecture, loss, optimisation, and how to stop."""

    model_config = ConfigDict(extra="forbid")
    name: PlainName = "model"
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    frames: FrameDataConfig = Field(default_factory=FrameDataConfig)
    mixup_alpha: float = Field(0.0, ge=0)
    mixup_per_sample: bool = False
    # Exponential moving average of the weights, updated every step: validation, the
    # checkpoints and the predictions use the averaged weights. None: the raw weights.
    ema_decay: float | None = Field(None, gt=0, lt=1)
    batch_size: int = Field(256, ge=1)
    epochs: int = Field(10, ge=1)
    # Epochs without a better validation GAP@20 before stopping.
    patience: int = Field(3, ge=0)
    # Where the epoch is chosen (early stopping, best checkpoint): the held-out fold, or
    # the store's selection split. Second-level models (students, the final model) train
    # on soft labels from teachers that saw every fold's labels, so only the selection
    # split, which no teacher trained on, chooses for them without a leak.
    select_on: Literal["fold", "selection"] = "fold"
    # A soft-label set (a directory written by distillation, aligned with the training
    # store) to train on instead of the hard labels: the paper's "ResNetLike + soft
    # labels" as a first-level member. Epochs are still chosen against the hard labels.
    soft_labels: str | None = None
    # Partitions of the training videos into folds the model is trained over (a zoo
    # member's out-of-fold predictions are then the mean over them: data/folds.py,
    # partition_folds); ``partition`` is the one a single run trains on (set per repeat).
    repeats: int = Field(1, ge=1)
    partition: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_partition_or_repeats(self) -> TrainConfig:
        if self.repeats > 1 and self.partition:
            raise ValueError("set repeats (every partition) or partition (one), not both")
        return self

    @field_validator("soft_labels")
    @classmethod
    def _absolute_soft_labels(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else resolve_path(value, info)
    seed: int = 0
    # Top-K kept of every prediction; DESIGN.md asks for K >= 50 for the second level.
    top_k: int = Field(50, ge=20)
    eval_batch_size: int = Field(2048, ge=1)
    # Output-bias initialisation from label frequencies: large gains on small data.
    init_bias_from_frequencies: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    threads: int | None = None
    # Flush denormal floats to zero on CPU (as TensorFlow does). Gradients that fade
    # through many recurrent steps become denormals, which x86 computes far slower: a
    # training step of the 2 x 1024 LSTM took 272.0 s with them and 10.7 s without
    # (bench/bench_frame_models.py with and without --keep-denormal).
    flush_denormal: bool = True

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """The config file checked whole (``--set`` overrides applied); its name is the
        file's stem unless it says otherwise."""
        file = Path(path)
        data = apply_overrides(read_yaml_mapping(file), overrides, str(file))
        data.setdefault("name", file.stem)
        return validate(cls, data, str(file), file.parent)

    def resolved(self) -> dict[str, Any]:
        """Every setting, the model's and the loss's parameters included, with its
        default filled in: what a run records, and compares on a resume."""
        data = self.model_dump(mode="json")
        data["model"]["params"] = self.model.resolved_params().model_dump(mode="json")
        data["loss"]["params"] = (LOSS_PARAMS[self.loss.name].model_validate(self.loss.params)
                                  .model_dump(mode="json"))
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved(), sort_keys=False)

    @property
    def frame_level(self) -> bool:
        return self.model.kind == "frame"
