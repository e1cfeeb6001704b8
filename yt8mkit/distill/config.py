"""Settings of distillation; the defaults live here only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yt8mkit.config_files import KeyPathError, key_path_error
from yt8mkit.models.registry import ModelConfig, ModelConfigError
from yt8mkit.train.config import TrainConfig

# Diversity for the final layer to combine: depth, width and activation all vary.
DEFAULT_STUDENTS: tuple[dict[str, object], ...] = (
    {"depth": 1, "width": 2048, "activation": "relu", "dropout": 0.3},
    {"depth": 2, "width": 2048, "activation": "leaky_relu", "dropout": 0.4},
    {"depth": 2, "width": 1536, "activation": "swish", "dropout": 0.3},
    {"depth": 3, "width": 1024, "activation": "relu", "dropout": 0.3},
    {"depth": 3, "width": 1536, "activation": "swish", "dropout": 0.4},
    {"depth": 4, "width": 1024, "activation": "leaky_relu", "dropout": 0.3},
)


class StudentConfig(BaseModel):
    """One student: any registered video-level model, and the training settings it needs
    beyond the shared ``DistillConfig.train`` (its own learning rate, epochs, mixup...).

    A plain mapping of ``student_mlp`` parameters (``{depth: 2, width: 1024}``) is read as
    ``{model: student_mlp, params: {...}}``, the form of earlier configs."""

    model_config = ConfigDict(extra="forbid")
    model: str = "student_mlp"
    params: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    # "hard": this student trains on the hard labels even among the soft-label students
    # (the final layer over them still trains on soft targets). Students of one teacher
    # err alike; a hard-label one brings back the fold models' own diversity.
    labels: Literal["hard"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_student_mlp(cls, data: Any) -> Any:
        if isinstance(data, dict) and not {"model", "params", "train", "labels"} & set(data):
            return {"params": data}
        return data

    @model_validator(mode="after")
    def _buildable(self) -> StudentConfig:
        # Checked when the config is read: a typo must not wait for the students' stage.
        if ModelConfig(name=self.model, params=self.params).kind != "video":
            raise ModelConfigError(
                f"student {self.model!r} is a frame-level model; students read video-level "
                f"features (their frozen features feed the final model)"
            )
        return self

    def describe(self) -> str:
        if self.model == "student_mlp":
            p = self.params
            shape = f"{p.get('depth', '?')}x{p.get('width', '?')}"
            return f"student_mlp {shape} {p.get('activation', '')}".rstrip()
        return self.model


class DistillConfig(BaseModel):
    """Students on the ensemble's soft labels, then the final model over their frozen
    penultimate features (paper section 3, "Final ensemble and distillation")."""

    model_config = ConfigDict(extra="forbid")
    # Share of the hard labels blended into the soft targets (0: soft labels only).
    # Measured leak-free on dev/ (resnet_like, fold 0, epochs chosen on the selection
    # split; bench/results/soft_targets_screen.md): hard labels 0.7032, soft only 0.6995,
    # blends 0.3 / 0.5 / 0.7: 0.7116 / 0.7128 / 0.7113.
    blend: float = Field(0.5, ge=0.0, le=1.0)
    # The ensemble's probabilities are sharpened (< 1) or softened (> 1) before the blend:
    # p -> sigmoid(logit(p) / temperature). Measured as above: 0.5 gave 0.7118, 1 0.7128.
    temperature: float = Field(1.0, gt=0.0)
    students: list[StudentConfig] = Field(
        default_factory=lambda: [StudentConfig.model_validate(dict(s)) for s in DEFAULT_STUDENTS]
    )
    # Parameters applied to every student_mlp student (e.g. a smaller width for a quick run).
    student_overrides: dict[str, Any] = Field(default_factory=dict)
    # TrainConfig fields (all but name and model) of the students and of the final model.
    train: dict[str, Any] = Field(default_factory=dict)
    final_train: dict[str, Any] = Field(default_factory=dict)
    use_raw_input: bool = False
    # How the final layer learns over the frozen students: "out_of_fold" (the paper's:
    # one layer over every training video's features from the students that did not train
    # on it, distill/oof_final.py) or "per_fold" (each fold's layer over its own
    # students' training videos). Measured on dev/ (bench/results/final_fit.md).
    final_fit: Literal["out_of_fold", "per_fold"] = "out_of_fold"
    # What the students and the final model train on: the ensemble's soft labels (the
    # paper's), the hard labels, or both side by side, so that the paper's claim that soft
    # labels help is measured, not assumed.
    labels: Literal["soft", "hard", "both"] = "both"

    @model_validator(mode="after")
    def _train_settings_valid(self) -> DistillConfig:
        # Checked when the config is read, not an hour later when the students start.
        for where, fields in [("train", self.train), ("final_train", self.final_train),
                              *((f"students.{i}.train", {**self.train, **s.train})
                                for i, s in enumerate(self.students))]:
            try:
                TrainConfig.model_validate({**fields, "model": {"name": "student_mlp"}})
            except ValidationError as err:
                raise key_path_error(where, err, TrainConfig) from None
            for key in ("repeats", "partition"):
                if key in fields:
                    # The students and the final layer share the store's one partition:
                    # the out-of-fold layer reads each video's features from its fold.
                    raise KeyPathError(f"{where}.{key}", "a zoo model's setting; the "
                                       "second level trains on the store's folds")
        for name, params in self.student_models():
            if params is not None and name == "student_mlp" and self.student_overrides:
                try:
                    ModelConfig(name=name, params=params)
                except ValueError as err:
                    raise KeyPathError("student_overrides", str(err)) from None
        return self

    @model_validator(mode="after")
    def _raw_input_fit(self) -> DistillConfig:
        if self.use_raw_input and self.final_fit == "out_of_fold":
            raise KeyPathError("use_raw_input", "needs final_fit: per_fold (the out-of-fold "
                               "layer starts from the students' own output layers)")
        return self

    def kinds(self) -> list[str]:
        return ["soft", "hard"] if self.labels == "both" else [self.labels]

    def student_models(self) -> list[tuple[str, dict[str, Any]]]:
        """(registered model name, parameters) of each student, overrides applied."""
        return [(s.model, {**s.params, **self.student_overrides}
                 if s.model == "student_mlp" else dict(s.params)) for s in self.students]
