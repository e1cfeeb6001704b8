"""ONNX export: outputs equal PyTorch's, deterministic files, the size budget (a clear error
and nothing left behind), int8 smaller and close, and the predictor streaming a store into
top-K predictions and a submission."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import yt8mkit.export.onnx_export as onnx_export
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.predictions import top_k_of
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate
from yt8mkit.distill import FinalModel, build_student
from yt8mkit.errors import Yt8mError
from yt8mkit.export import OnnxPredictor, export_onnx, predict_store, predict_to_submission
from yt8mkit.models import create_model

DIMS = {"rgb": 64, "audio": 16}


def _inputs(batch: int, seed: int = 3, dims: dict[str, int] = DIMS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=(batch, d)).astype(np.float32) for n, d in dims.items()}


def _torch_probs(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model({n: torch.from_numpy(v) for n, v in inputs.items()})).numpy()


def _resnet_like() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet_like", 40, DIMS, {"inner_size": 64, "context_gating": True})


def _final_model() -> FinalModel:
    torch.manual_seed(0)
    students = [build_student(40, DIMS, {"depth": 2, "width": 48, "activation": "swish"}),
                build_student(40, DIMS, {"depth": 1, "width": 32, "inputs": ["rgb"]})]
    return FinalModel(students, 40, use_raw_input=True, raw_dims=DIMS)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("build", [_resnet_like, _final_model], ids=["resnet_like", "final"])
def test_onnx_output_equals_pytorch(build, tmp_path: Path) -> None:
    model = build()
    model.train()  # export must use eval mode, and give the model back as it was
    report = export_onnx(model, DIMS, tmp_path / "m.onnx")
    assert model.training
    assert report.max_abs_diff <= 1e-4 and report.top20_agreement == 1.0
    assert report.size_bytes == (tmp_path / "m.onnx").stat().st_size
    assert _leftovers(tmp_path) == ["m.onnx"]
    # Any batch size, fresh inputs.
    inputs = _inputs(7)
    got = OnnxPredictor(tmp_path / "m.onnx", threads=1).predict(inputs)
    np.testing.assert_allclose(got, _torch_probs(model, inputs), atol=1e-5)
    assert got.shape == (7, 40)
    # The same model exports to the same bytes.
    export_onnx(model, DIMS, tmp_path / "again.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == (tmp_path / "again.onnx").read_bytes()


def test_size_budget_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Yt8mError, match=r"over the budget of 10,000 bytes") as error:
        export_onnx(_resnet_like(), DIMS, tmp_path / "big.onnx", max_size_bytes=10_000)
    assert "big.onnx" in str(error.value)
    assert _leftovers(tmp_path) == []


def test_disagreement_with_pytorch_is_an_error(tmp_path: Path, monkeypatch) -> None:
    real = onnx_export._onnx_probabilities
    monkeypatch.setattr(onnx_export, "_onnx_probabilities", lambda p, x: real(p, x) + 1e-3)
    with pytest.raises(Yt8mError, match="differ by"):
        export_onnx(_resnet_like(), DIMS, tmp_path / "m.onnx")
    assert _leftovers(tmp_path) == []


def test_int8_is_smaller_and_agrees(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("resnet_like", 200, DIMS, {"inner_size": 256})
    fp32 = export_onnx(model, DIMS, tmp_path / "fp32.onnx")
    int8 = export_onnx(model, DIMS, tmp_path / "int8.onnx", quantize_int8=True,
                       check_inputs=_inputs(256))
    assert int8.quantized and int8.fp32_size_bytes == fp32.size_bytes
    assert int8.size_bytes < 0.4 * fp32.size_bytes
    assert int8.top20_agreement > 0.85
    assert int8.max_abs_diff < 0.05


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("export_store")
    generate(SynthConfig(videos=200, classes=30, seed=0, rgb_dim=32, audio_dim=8), root / "syn")
    ingest([root / "syn"], root / "store", IngestConfig(workers=1, num_classes=30))
    return Store(root / "store")


def test_predictor_streams_a_store(small_store: Store, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("student_mlp", 30, small_store.dims, {"depth": 2, "width": 32})
    export_onnx(model, small_store.dims, tmp_path / "m.onnx")
    seen: list[int] = []
    batches = list(predict_store(tmp_path / "m.onnx", small_store, batch_size=64,
                                 progress=lambda done, total: seen.append(done)))
    assert [len(rows) for rows, _, _ in batches] == [64, 64, 64, 8]
    assert seen == [64, 128, 192, 200]
    rows = np.concatenate([b[0] for b in batches])
    assert np.array_equal(rows, np.arange(200))
    want_idx, want_sc = top_k_of(_torch_probs(model, small_store.video_batch(slice(None))), 20)
    got_idx = np.concatenate([b[1] for b in batches])
    got_sc = np.concatenate([b[2] for b in batches])
    np.testing.assert_allclose(got_sc, want_sc, atol=1e-5)
    assert (got_idx == want_idx).mean() > 0.99  # only near-ties may swap


def test_predict_to_submission(small_store: Store, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("logistic", 30, small_store.dims)
    export_onnx(model, small_store.dims, tmp_path / "m.onnx")
    out = predict_to_submission(tmp_path / "m.onnx", small_store, tmp_path / "sub.csv",
                                batch_size=50)
    lines = out.read_text().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs"
    assert len(lines) == 201
    first = lines[1].split(",")
    assert first[0] == small_store.video_id(0)
    assert len(first[1].split()) == 40  # 20 (label, confidence) pairs


def test_predictor_errors(tmp_path: Path) -> None:
    with pytest.raises(Yt8mError, match="no such model file"):
        OnnxPredictor(tmp_path / "missing.onnx")
    export_onnx(_resnet_like(), DIMS, tmp_path / "m.onnx")
    with pytest.raises(Yt8mError, match="lack"):
        OnnxPredictor(tmp_path / "m.onnx").predict({"rgb": np.zeros((1, 64), np.float32)})


def test_predict_with_other_feature_widths_is_a_clear_error(
    small_store: Store, tmp_path: Path
) -> None:
    """A model exported for other widths than the store's: an error naming both, before
    ONNX Runtime fails on the first batch with its own message."""
    export_onnx(create_model("logistic", 30, DIMS), DIMS, tmp_path / "m.onnx")
    with pytest.raises(Yt8mError, match=r"reads rgb of 64 dims, the store .* has 32"):
        predict_to_submission(tmp_path / "m.onnx", small_store, tmp_path / "sub.csv")
    assert not (tmp_path / "sub.csv").exists()
