"""The pipeline's typed config: which data, which folds, which models, which stages."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from importlib import resources
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
    ConfigError,
    KeyPathError,
    describe,
    load,
    read_yaml_mapping,
    resolve_path,
    validate,
)
from yt8mkit.data.synth import SynthConfig
from yt8mkit.distill.config import DistillConfig
from yt8mkit.ensemble.config import StackConfig
from yt8mkit.export.config import ExportConfig
from yt8mkit.names import PlainName
from yt8mkit.train.cluster import JobResources
from yt8mkit.train.config import TrainConfig
from yt8mkit.zoo.config import ZooConfig


class DataConfig(BaseModel):
    """Training and test data: TFRecord files/folders/globs or stores, or a synthetic set
    generated into the run directory when no training data is named."""

    model_config = ConfigDict(extra="forbid")
    train: list[str] | None = None
    test: list[str] | None = None
    synth: SynthConfig | None = None
    num_classes: int | None = None
    # The label vocabulary (vocabulary.csv) that `yt8m report` names labels with. It does
    # not change what a run computes, so a run resumes with or without it.
    vocabulary: str | None = None

    @field_validator("train", "test")
    @classmethod
    def _absolute_data(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        # Relative to the config file's folder (files, folders, globs, stores); recorded
        # absolute, so that a run resumes (and `yt8m report` reads it) from anywhere.
        return None if value is None else [resolve_path(v, info) for v in value]

    @field_validator("vocabulary")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _some_data(self) -> DataConfig:
        if not self.train and self.synth is None:
            raise ValueError("data needs `train` (files or a store) or `synth` (a generator)")
        return self


class FoldsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_folds: int = Field(5, ge=2)
    seed: int = 0
    # Share of the training videos set aside as the selection split: no first-level
    # model trains on them, and every second-level choice and score is made on them
    # (yt8mkit/data/folds.py). 0 turns it off, and the second level then chooses on
    # leaky out-of-fold scores.
    selection_fraction: float = Field(0.1, ge=0.0, lt=1.0)


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PlainName = "pipeline"
    data: DataConfig
    folds: FoldsConfig = Field(default_factory=FoldsConfig)
    zoo: ZooConfig
    # local: worker processes on this machine; ray: the training jobs of the zoo and of
    # distillation on a Ray cluster (README: On a cluster) at `address` (None: the
    # RAY_ADDRESS variable, or a Ray started for the run), each job asking it for
    # `resources`.
    backend: Literal["local", "ray"] = "local"
    address: str | None = None
    resources: JobResources = Field(default_factory=JobResources)
    # Training jobs (zoo and distillation folds) run side by side in this many processes
    # of the local backend. How a run executes, not what it computes: a run directory
    # resumes under another value.
    workers: int = Field(1, ge=1)
    # A stage set to null is not run (nor the ones that need it).
    stack: StackConfig | None = Field(default_factory=StackConfig)
    distill: DistillConfig | None = Field(default_factory=DistillConfig)
    export: ExportConfig | None = Field(default_factory=ExportConfig)

    @model_validator(mode="after")
    def _export_what_is_trained(self) -> PipelineConfig:
        if (self.distill is not None and self.export is not None
                and self.export.labels not in self.distill.kinds()):
            raise KeyPathError(
                "export.labels", f"{self.export.labels!r}, but distill.labels "
                f"{self.distill.labels!r} trains no such final model")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
        """The config file checked whole, every zoo model built (a typo anywhere fails
        here, naming the file and the key path), ``--set`` overrides applied first."""
        return load(cls, path, overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path, source: str = "pipeline config"
                  ) -> PipelineConfig:
        return validate(cls, data, source, base)

    @classmethod
    def from_record(cls, path: Path) -> PipelineConfig:
        """The config a run recorded (resolved: its paths absolute, its zoo's models
        built and kept under ``zoo.resolved_models``)."""
        data = copy.deepcopy(read_yaml_mapping(path))
        (data.get("zoo") or {}).pop("resolved_models", None)
        try:
            return cls.model_validate(data, context={"base": path.parent, "recorded": True})
        except ValidationError as err:
            problems = describe(err, cls)
            raise ConfigError(str(path), "; ".join(f"{p}: {w}" for p, w in problems)) from None

    def results_fields(self) -> dict[str, Any]:
        """Everything that decides the run's results (not how it is executed)."""
        return self.model_dump(mode="json",
                               exclude={"backend": True, "workers": True, "address": True,
                                        "resources": True, "data": {"vocabulary"}})

    def resolved(self) -> dict[str, Any]:
        """Every setting with its default filled in, each zoo model's resolved training
        config included (``zoo.resolved_models``): what a run records."""
        data = self.model_dump(mode="json")
        data["zoo"]["resolved_models"] = {name: config.resolved() for name, config
                                          in self.zoo.train_configs().items()}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved(), sort_keys=False)


def results_fields(resolved: dict[str, Any], with_models: bool = True) -> dict[str, Any]:
    """What decides a run's results, from a recorded (resolved) config: the config's
    results fields, and each zoo model's resolved training config."""
    data = copy.deepcopy(resolved)
    models = (data.get("zoo") or {}).pop("resolved_models", None)
    # Validated as recorded: a run recorded before paths were recorded absolute read its
    # relative ones from the working directory, as then.
    fields = PipelineConfig.model_validate(data, context={"recorded": True}).results_fields()
    if with_models and models is not None:
        fields["zoo"]["resolved_models"] = {
            name: TrainConfig.model_validate(config).resolved()
            for name, config in models.items()}
    elif not with_models:
        # A run recorded before: its model files were named relative to the zoo file,
        # which the record does not say; they are compared by name, as written then.
        for spec in fields["zoo"]["models"].values():
            if "config" in spec:
                spec["config"] = os.path.basename(str(spec["config"]))
    return fields


def demo_config() -> PipelineConfig:
    """The embedded default of `make demo`: synthetic data, a small zoo."""
    text = resources.files("yt8mkit.configs").joinpath("demo.yaml").read_text()
    return PipelineConfig.from_dict(yaml.safe_load(text), base=Path("."))
