"""Settings of the frame representations that a config names outside a representation's
parameters (the zoo's ``centroids:`` section); no framework imported."""

from __future__ import annotations

from typing import Literal

# How k-means starts (features/centroids.py): faiss's own (auto), random frames, k-means++.
Init = Literal["auto", "random", "kmeans++"]
