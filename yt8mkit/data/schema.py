"""The YouTube-8M record schema: which keys hold what, for both releases and both levels."""

from __future__ import annotations

from pydantic import BaseModel, Field

# 2018 release keys its videos by `id`; the 2017 release by `video_id`.
ID_KEYS: tuple[str, ...] = ("id", "video_id")
LABELS_KEY = "labels"


class FeatureSchema(BaseModel):
    """Which record keys hold each modality. The store names modalities by the
    frame-level key (`rgb`, `audio`); video-level records prefix it with `mean_`."""

    modalities: list[str] = Field(default_factory=lambda: ["rgb", "audio"])
    video_prefix: str = "mean_"

    def video_key(self, modality: str) -> str:
        return self.video_prefix + modality
