"""Settings of distillation; the defaults live here only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from yt8mkit.distill.students import DEFAULT_STUDENTS


class DistillConfig(BaseModel):
    """Students on the ensemble's soft labels, then the final model over their frozen
    penultimate features (paper section 3, "Final ensemble and distillation")."""

    model_config = ConfigDict(extra="forbid")
    # Share of the hard labels blended into the soft targets (0: soft labels only).
    blend: float = Field(0.0, ge=0.0, le=1.0)
    # student_mlp parameters of each student; ``student_overrides`` applies to all.
    students: list[dict[str, Any]] = Field(
        default_factory=lambda: [dict(s) for s in DEFAULT_STUDENTS]
    )
    student_overrides: dict[str, Any] = Field(default_factory=dict)
    # TrainConfig fields (all but name and model) of the students and of the final model.
    train: dict[str, Any] = Field(default_factory=dict)
    final_train: dict[str, Any] = Field(default_factory=dict)
    use_raw_input: bool = False
    # What the students and the final model train on: the ensemble's soft labels (the
    # paper's), the hard labels, or both side by side, so that the paper's claim that soft
    # labels help is measured, not assumed.
    labels: Literal["soft", "hard", "both"] = "both"

    def kinds(self) -> list[str]:
        return ["soft", "hard"] if self.labels == "both" else [self.labels]

    def student_params(self) -> list[dict[str, Any]]:
        return [{**s, **self.student_overrides} for s in self.students]
