"""Settings of the second level; the defaults live here only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StackConfig(BaseModel):
    """LightGBM stacking over candidate labels (paper section 3, slides "Second level")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Candidates: union of each model's top ``top_n`` labels (the paper's top-30).
    top_n: int = Field(30, ge=1)
    # Labels kept per video in the ensemble's prediction sets (DESIGN: K >= 50).
    top_k: int = Field(50, ge=1)
    rank_features: bool = True
    context_features: bool = True
    # LightGBM.
    num_leaves: int = Field(63, ge=2)
    learning_rate: float = Field(0.05, gt=0.0)
    n_estimators: int = Field(1000, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    min_data_in_leaf: int = Field(100, ge=1)
    feature_fraction: float = Field(0.8, gt=0.0, le=1.0)
    max_bin: int = Field(255, ge=2)
    # 0 lets LightGBM use every core.
    threads: int = Field(0, ge=0)
    seed: int = 0
    # Share of each fold model's training videos held out for early stopping; the scored
    # fold itself is never used for it (the authors' code stopped on the scored fold).
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    # Videos per block when building features and scoring: bounds the memory in use.
    chunk_videos: int = Field(8192, ge=1)
    # The feature table on disk is only needed while fold models train.
    keep_features: bool = False

    def result_key(self) -> dict[str, object]:
        """The settings that decide the results; a run directory with other ones is refused
        (a resumed run must not mix folds trained under different settings)."""
        return self.model_dump(exclude={"threads", "chunk_videos", "keep_features"})
