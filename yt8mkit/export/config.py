"""Settings of the export stage; the defaults live here only (no framework imported:
the pipeline's config reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The challenge's rule, and the tolerance on held-out GAP the export must keep.
DEFAULT_MAX_SIZE = 1_000_000_000
GAP_TOLERANCE = 1e-3


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The final model of this fold is exported (its held-out videos check the export), or
    # with "all" the mean probability of every fold's final model: each was trained on
    # all but one fold, so together they used all of the training videos, and their mean
    # is what the run's test predictions measured.
    fold: int | Literal["all"] = 0
    # Which final model: trained on the ensemble's soft labels (the paper's) or on the
    # hard labels (when distill.labels is "hard" or "both").
    labels: Literal["soft", "hard"] = "soft"
    max_size_bytes: int = Field(DEFAULT_MAX_SIZE, ge=1)
    int8: bool = False
    check_videos: int = Field(4096, ge=1)
    batch_size: int = Field(1024, ge=1)
