"""A store of one's own embeddings, with modalities named clip, clap and text, goes
through every model, training, the pipeline, export and predict unchanged; and the
README's worked example ("Your own embeddings") runs as written."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from typer.testing import CliRunner

from yt8mkit.cli.main import app
from yt8mkit.data import synth_embeddings
from yt8mkit.data.embedding_ingest import ingest_embeddings
from yt8mkit.data.embeddings import EmbeddingOptions
from yt8mkit.data.store import Store
from yt8mkit.features.centroids import save_centroids
from yt8mkit.models.registry import create_model, list_models

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

FRAME_SMALL: dict[str, dict] = {
    "early_concat_lstm": {"hidden": 12, "head_sizes": [16]},
    "lstm_bi_attention": {"hidden": 8, "attention_size": 8, "head_sizes": [16]},
    "attention_net": {"hidden": 12, "layers": 2, "head_sizes": [16]},
    "transformer_encoder": {"d_model": 16, "heads": 2, "feedforward": 16, "head_sizes": [16]},
    "vlad_bow": {"clusters": 8, "inner_size": 16},
    "td_dense_maxpool": {"frame_sizes": [24]},
    "td_dense_sorting": {"inner_size": 16, "top_k": 3, "sort_hidden": 8},
    "td_conv": {"channel_multipliers": [1.0], "head_sizes": [16]},
    "features_resnet_like": {"inner_size": 16},
    "linear_combinations_resnet_like": {"inner_size": 16, "max_frames": 12},
    "centroids_resnet_like": {"inner_size": 16},  # + the centroids file, below
}
VIDEO_SMALL: dict[str, dict] = {
    "logistic": {}, "moe": {"num_mixtures": 2}, "resnet_like": {"inner_size": 16},
    "student_mlp": {"depth": 1, "width": 16},
}


def _frame_store(tmp: Path) -> Store:
    """30 videos of 2-9 frames, three modalities of other names than rgb and audio."""
    rng = np.random.default_rng(0)
    counts = rng.integers(2, 10, 30)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    columns: dict[str, object] = {"id": [f"x{i}" for i in range(30)]}
    for name, dim in (("clip", 6), ("clap", 3), ("text", 2)):
        values = np.clip(rng.normal(0, 0.5, (int(counts.sum()), dim)), -2, 2).astype(np.float32)
        columns[name] = pa.ListArray.from_arrays(
            offsets, pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), dim))
    columns["labels"] = [[int(i % 4)] for i in range(30)]
    pq.write_table(pa.table(columns), tmp / "frames.parquet", row_group_size=8)
    ingest_embeddings([tmp / "frames.parquet"], tmp / "store", EmbeddingOptions(workers=1))
    return Store(tmp / "store")


def _batch(store: Store, rows: range) -> dict[str, torch.Tensor]:
    """Video features and zero-padded frames with their mask, from the store's own API."""
    frames = [store.video_frames(i) for i in rows]
    longest = max(len(f["clip"]) for f in frames)
    batch: dict[str, torch.Tensor] = {
        "frame_mask": torch.tensor([[t < len(f["clip"]) for t in range(longest)]
                                    for f in frames])}
    for m, dim in store.dims.items():
        padded = np.zeros((len(frames), longest, dim), np.float32)
        for i, f in enumerate(frames):
            padded[i, : len(f[m])] = f[m]
        batch[m] = torch.from_numpy(padded)
    return batch


def test_every_model_reads_modalities_by_name(tmp_path: Path) -> None:
    store = _frame_store(tmp_path)
    assert store.modalities == ["clip", "clap", "text"]
    centroids = save_centroids(np.random.default_rng(1).normal(size=(4, 11)).astype(np.float32),
                               tmp_path / "c.npy", {"dims": store.dims})
    FRAME_SMALL["centroids_resnet_like"]["centroids"] = str(centroids)
    assert set(list_models("frame")) == set(FRAME_SMALL)
    assert set(list_models("video")) == set(VIDEO_SMALL)
    frames = _batch(store, range(8))
    video = {m: torch.from_numpy(v) for m, v in store.video_batch(slice(0, 8)).items()}
    for kind, small, batch in (("video", VIDEO_SMALL, video), ("frame", FRAME_SMALL, frames)):
        for name, params in small.items():
            torch.manual_seed(0)
            model = create_model(name, store.num_classes, store.dims, params).eval()
            with torch.no_grad():
                out = model(batch)
                # The third modality is read too: other values of it, another output.
                changed = model({**batch, "text": batch["text"] + 1.0})
            assert out.shape == (8, store.num_classes) and torch.isfinite(out).all(), name
            assert not torch.allclose(out, changed), f"{kind} model {name} ignores 'text'"


def test_a_frame_model_trains_on_a_parquet_frame_store(tmp_path: Path) -> None:
    _frame_store(tmp_path)
    config = tmp_path / "lstm.yaml"
    config.write_text(yaml.safe_dump({
        "name": "lstm", "model": {"name": "early_concat_lstm", "params": FRAME_SMALL[
            "early_concat_lstm"]}, "batch_size": 8, "eval_batch_size": 16, "epochs": 1,
        "threads": 1, "device": "cpu", "optim": {"warmup_steps": 1}}))
    result = runner.invoke(app, ["train", str(config), "--store", str(tmp_path / "store"),
                                 "--folds", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["frame_level"] and 0 < metrics["folds"][0]["best_gap"] <= 1


def test_no_rgb_or_audio_names_in_the_code_that_reads_a_store() -> None:
    """Modality names come from the store; only the TFRecord schema's defaults and the
    synthetic YouTube-8M generator name rgb and audio (as string constants; docstrings
    and comments may)."""
    allowed = {"schema.py", "ingest.py", "synth.py"}  # by name: files may move
    found = []
    for path in sorted((REPO / "yt8mkit").rglob("*.py")):
        if path.name in allowed or "synth" in path.parent.name:  # the generator's package
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in (
                    "rgb", "audio", "mean_rgb", "mean_audio"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def _readme_example() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- embeddings-example -->")[1].split("```bash")[1].split("```")[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_worked_example_runs_as_written(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command of the README's block, in order, in a fresh folder (with the
    repository's configs/): the generator, ingest, train, pipeline, predict, evaluate."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(REPO / "configs")
    commands = _readme_example()
    assert len(commands) >= 6
    outputs = []
    for command in commands:
        args = shlex.split(command.split("  #")[0])
        if args[:3] == [".venv/bin/python", "-m", "yt8mkit.data.synth_embeddings"]:
            assert synth_embeddings.main(args[3:]) == 0
            continue
        assert args[0] == ".venv/bin/yt8m", command
        result = runner.invoke(app, args[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
        outputs.append(result.output)
    train = Store(tmp_path / "emb" / "train")
    assert train.dims == {"clip": 512, "clap": 128} and train.num_classes == 20
    gap = float(re.search(r"GAP@20\D+([0-9.]+)", outputs[-1]).group(1))  # type: ignore[union-attr]
    # The labels are learnt (names mapped, rows aligned): 0.856 measured, 0.094 by chance.
    assert gap > 0.7, outputs[-1]


def test_the_generator_writes_frames_that_ingest_reads(tmp_path: Path) -> None:
    paths = synth_embeddings.write_example(tmp_path / "emb", videos=40, test_videos=8,
                                           classes=5, clip_dim=16, clap_dim=8, frames=True)
    meta = ingest_embeddings([paths["train"]], tmp_path / "s", EmbeddingOptions(
        vocabulary=str(paths["vocabulary"])))
    store = Store(tmp_path / "s")
    assert meta.level == "frame" and store.dims == {"clip": 16, "clap": 8}
    assert store.frame_counts().min() >= 4 and store.frame_counts().max() <= 12
    assert store.num_classes == 5 and store.labels_indices.max() < 5
