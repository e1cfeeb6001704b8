"""Distillation: soft labels from an ensemble's prediction set (blend, save/load, dense
batches), the student architecture, and a final model whose frozen students stay frozen
while its new layer trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.predictions import PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate
from yt8mkit.distill import (
    FinalModel,
    FinalModelParams,
    SoftLabels,
    StudentSpec,
    build_final_model,
    build_soft_labels,
    build_student,
    student_configs,
)

DIMS = {"rgb": 16, "audio": 8}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("distill")
    generate(SynthConfig(videos=60, classes=12, seed=1, rgb_dim=16, audio_dim=8), root / "syn")
    ingest([root / "syn"], root / "store", IngestConfig(workers=1, num_classes=12))
    return Store(root / "store")


def _ensemble(store: Store, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A prediction set with top-4 of random scores; the last slot padded with 0."""
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.05, 1.0, (store.num_videos, store.num_classes)).astype(np.float32)
    writer = PredictionsWriter(path, store.num_videos, store.num_classes, 4)
    writer.write_dense(np.arange(store.num_videos), probs)
    writer.scores[:, 3] = 0
    pred = writer.close()
    return np.asarray(pred.indices, np.int64), np.asarray(pred.scores, np.float32)


@pytest.mark.parametrize("blend", [0.0, 0.3])
def test_soft_labels_hold_scores_and_blend(store: Store, tmp_path: Path, blend: float) -> None:
    from yt8mkit.data.predictions import Predictions

    indices, scores = _ensemble(store, tmp_path / "oof")
    soft = build_soft_labels(Predictions(tmp_path / "oof"), store, blend=blend)
    rows = np.arange(store.num_videos)
    expected = np.zeros((store.num_videos, store.num_classes), np.float32)
    np.put_along_axis(expected, indices[:, :3], scores[:, :3], axis=1)
    expected = (1 - blend) * expected + blend * store.labels_dense(rows)
    np.testing.assert_allclose(soft.dense(rows), expected, rtol=1e-6)
    # Sparse: padding (score 0) is not stored; only hard positives outside the kept top 3.
    outside = np.ones_like(expected)
    np.put_along_axis(outside, indices[:, :3], 0, axis=1)
    hard_outside = int((store.labels_dense(rows) * outside).sum())
    assert len(soft.values) == 3 * store.num_videos + (hard_outside if blend else 0)
    # Batches in any order, and a saved copy that reads back the same.
    some = np.array([5, 0, 17])
    np.testing.assert_array_equal(soft.dense(some), expected[some])
    again = SoftLabels.load(soft.save(tmp_path / "soft"))
    assert again.meta == soft.meta
    np.testing.assert_array_equal(again.dense(rows), soft.dense(rows))
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "swish"])
def test_student_mlp_shapes_and_contract(activation: str) -> None:
    torch.manual_seed(0)
    model = build_student(7, DIMS, {"depth": 2, "width": 32, "activation": activation})
    x = {"rgb": torch.randn(5, 16), "audio": torch.randn(5, 8)}
    model.eval()
    assert model.penultimate(x).shape == (5, 32)
    torch.testing.assert_close(model(x), model.classify(model.penultimate(x)))
    flat = build_student(7, DIMS, {"depth": 0, "batchnorm": False})
    assert flat.penultimate_dim == 24
    assert len(student_configs({"width": 64})) == 6


def _students() -> list:
    torch.manual_seed(0)
    return [build_student(9, DIMS, {"depth": 2, "width": 16, "dropout": 0.5}),
            build_student(9, DIMS, {"depth": 1, "width": 8, "activation": "swish"})]


def test_final_model_trains_only_its_new_layer() -> None:
    students = _students()
    model = FinalModel(students, 9, use_raw_input=True, raw_dims=DIMS)
    assert model.penultimate_dim == 16 + 8 + 24
    before = [{k: v.clone() for k, v in s.state_dict().items()} for s in students]
    head_before = model.output.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    model.train()
    assert model.training and not any(s.training for s in students)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = {"rgb": torch.randn(32, 16, generator=generator),
             "audio": torch.randn(32, 8, generator=generator)}
        target = (torch.rand(32, 9, generator=generator) > 0.7).float()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for student, state in zip(students, before):
        for key, value in student.state_dict().items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
        assert all(not p.requires_grad for p in student.parameters())
    assert not torch.equal(model.output.weight, head_before)
    model.eval()
    torch.testing.assert_close(model(x), model.classify(model.penultimate(x)))


def test_final_model_from_student_checkpoints(tmp_path: Path) -> None:
    students = _students()
    paths = []
    for i, student in enumerate(students):
        paths.append(tmp_path / f"s{i}.pt")
        torch.save({"model": student.state_dict()}, paths[-1])
    specs = [
        StudentSpec(params={"depth": 2, "width": 16, "dropout": 0.5}, checkpoint=str(paths[0])),
        StudentSpec(params={"depth": 1, "width": 8, "activation": "swish"},
                    checkpoint=str(paths[1])),
    ]
    model = build_final_model(9, DIMS, FinalModelParams(students=specs))
    assert isinstance(model, FinalModel) and model.penultimate_dim == 16 + 8
    x = {"rgb": torch.randn(4, 16), "audio": torch.randn(4, 8)}
    model.eval()
    for student, loaded in zip(students, model.students):
        student.eval()
        torch.testing.assert_close(loaded.penultimate(x), student.penultimate(x))


def test_the_trainer_trains_a_final_model_on_soft_labels(store: Store, tmp_path: Path) -> None:
    from yt8mkit.data.predictions import Predictions
    from yt8mkit.train.config import TrainConfig
    from yt8mkit.train.trainer import train_fold

    _ensemble(store, tmp_path / "oof")
    soft = build_soft_labels(Predictions(tmp_path / "oof"), store, blend=0.2)
    torch.manual_seed(0)
    dims = store.dims
    students = [build_student(store.num_classes, dims, {"depth": 1, "width": 16}),
                build_student(store.num_classes, dims, {"depth": 2, "width": 8})]
    before = [{k: v.clone() for k, v in s.state_dict().items()} for s in students]
    config = TrainConfig.model_validate({
        "model": {"name": "student_mlp"}, "batch_size": 16, "eval_batch_size": 32,
        "epochs": 2, "threads": 1, "device": "cpu", "mixup_alpha": 0.2,
    })
    model = FinalModel(students, store.num_classes, use_raw_input=True, raw_dims=dims)
    rows = np.arange(store.num_videos)
    result = train_fold(config, store, rows[:48], rows[48:], tmp_path / "fold",
                        model_factory=lambda: model, targets=soft.dense)
    assert result.epochs_run == 2
    for student, state in zip(model.students, before):
        for key, value in student.state_dict().items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
