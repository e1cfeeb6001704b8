"""A small Parquet data set of one's own embeddings, for the README's worked example and
its test: CLIP-like video embeddings (``clip``) and CLAP-like audio embeddings (``clap``)
of videos whose labels are names from a vocabulary.

Each class has a direction in each space; a video's embedding is the sum of its
classes' directions plus noise, L2-normalised as such encoders' outputs are, so a model
can learn the labels and a wrong ingest (labels shifted, features of another video)
shows as a low GAP. Frames (``--frames``): each video's frames scatter around its
embedding, stored as a list of lists a row.

    python -m yt8mkit.data.synth_embeddings --out emb [--videos 2000] [--frames]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NAMES = ["Guitar", "Piano", "Drums", "Cooking", "Baking", "Football", "Basketball", "Tennis",
         "Car", "Motorcycle", "Train", "Airplane", "Dog", "Cat", "Bird", "Dance", "Makeup",
         "Video game", "Fishing", "Skiing"]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _split(rng: np.random.Generator, n: int, classes: int, start: int,
           directions: dict[str, np.ndarray], frames: bool) -> pa.Table:
    labels = [sorted(rng.choice(classes, size=int(rng.integers(1, 4)), replace=False).tolist())
              for _ in range(n)]
    columns: dict[str, pa.Array] = {
        "id": pa.array([f"vid{start + i:06d}" for i in range(n)]),
        "labels": pa.array([[NAMES[c] if c < len(NAMES) else f"Topic {c}" for c in row]
                            for row in labels], pa.list_(pa.string())),
    }
    counts = rng.integers(4, 13, n) if frames else None  # frames a video, every modality
    for name, space in directions.items():
        dim = space.shape[1]
        # clap carries weaker class signal than clip: the modalities differ, as real ones do.
        strength = 1.0 if name == "clip" else 0.5
        signal = np.stack([space[row].sum(axis=0) for row in labels]) * strength
        video = _unit(signal + rng.normal(0, 6.0 / np.sqrt(dim), (n, dim)))
        if not frames:
            values = pa.array(video.ravel())
            columns[name] = pa.FixedSizeListArray.from_arrays(values, dim)
            continue
        frame_values = _unit(np.repeat(video, counts, axis=0)
                             + rng.normal(0, 0.5 / np.sqrt(dim), (int(counts.sum()), dim)))
        inner = pa.FixedSizeListArray.from_arrays(pa.array(frame_values.ravel()), dim)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        columns[name] = pa.ListArray.from_arrays(offsets, inner)
    return pa.table(columns)


def write_example(out: str | Path, videos: int = 2000, test_videos: int = 400,
                  classes: int = 20, clip_dim: int = 512, clap_dim: int = 128,
                  frames: bool = False, seed: int = 0) -> dict[str, Path]:
    """``out/train.parquet``, ``out/test.parquet`` (labelled) and ``out/vocabulary.csv``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    directions = {"clip": _unit(rng.normal(size=(classes, clip_dim))),
                  "clap": _unit(rng.normal(size=(classes, clap_dim)))}
    paths = {"train": out / "train.parquet", "test": out / "test.parquet",
             "vocabulary": out / "vocabulary.csv"}
    pq.write_table(_split(rng, videos, classes, 0, directions, frames), paths["train"],
                   row_group_size=500)
    pq.write_table(_split(rng, test_videos, classes, videos, directions, frames),
                   paths["test"], row_group_size=500)
    with paths["vocabulary"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Index", "Name"])
        for c in range(classes):
            writer.writerow([c, NAMES[c] if c < len(NAMES) else f"Topic {c}"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--test-videos", type=int, default=400)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--frames", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_example(args.out, args.videos, args.test_videos, args.classes,
                          frames=args.frames, seed=args.seed)
    print(" ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
