"""The exported model carries its class count, inputs and vocabulary; `predict` refuses
data it was not made for and names labels with the model's own vocabulary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import build_synthetic_store
from yt8mkit.cli.main import app
from yt8mkit.data.store import Store
from yt8mkit.data.vocabulary import load_vocabulary
from yt8mkit.errors import Yt8mError
from yt8mkit.export import OnnxPredictor, export_onnx, predict_store
from yt8mkit.models import create_model

runner = CliRunner()
DIMS = {"rgb": 8, "audio": 4}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("meta")
    out = {}
    for name, extra in (("fits", {}), ("wide", {"rgb_dim": 6}), ("more", {"classes": 9})):
        synth = {"videos": 30, "classes": 6, "seed": 1, "rgb_dim": 8, "audio_dim": 4,
                 "test_videos": 0, **extra}
        out[name] = build_synthetic_store(root / name, **synth)[0]
    out["vocabulary"] = root / "fits" / "synth" / "vocabulary.csv"
    return out


def _export(path: Path, vocabulary_file: Path | None) -> Path:
    torch.manual_seed(0)
    model = create_model("logistic", 6, DIMS, {})
    vocab = load_vocabulary(vocabulary_file) if vocabulary_file else None
    export_onnx(model, DIMS, path, vocabulary=vocab)
    return path


def test_metadata_holds_classes_inputs_and_names(stores, tmp_path: Path):
    model = _export(tmp_path / "m.onnx", stores["vocabulary"])
    meta = OnnxPredictor(model).metadata
    assert meta.num_classes == 6 and meta.inputs == DIMS
    assert meta.names == load_vocabulary(stores["vocabulary"]).names
    bare = OnnxPredictor(_export(tmp_path / "bare.onnx", None)).metadata
    assert bare.num_classes == 6 and bare.names == {} and bare.vocabulary() is None


def test_predict_refuses_other_dims_or_more_classes(stores, tmp_path: Path):
    model = _export(tmp_path / "m.onnx", None)
    assert sum(len(rows) for rows, _, _ in predict_store(model, Store(stores["fits"]))) == 30
    with pytest.raises(Yt8mError, match=r"reads rgb of 8 dims, the store .* has 6"):
        next(predict_store(model, Store(stores["wide"])))
    with pytest.raises(Yt8mError, match=r"predicts 6 classes, the store .* labels up to 8"):
        next(predict_store(model, Store(stores["more"])))
    bad = runner.invoke(app, ["predict", str(model), str(stores["wide"]),
                              "--out", str(tmp_path / "s.csv")])
    assert bad.exit_code == 1 and "reads rgb of 8 dims" in bad.output
    assert not (tmp_path / "s.csv").exists()


def test_predict_names_come_from_the_model_or_the_option(stores, tmp_path: Path):
    named = _export(tmp_path / "named.onnx", stores["vocabulary"])
    out = runner.invoke(app, ["predict", str(named), str(stores["fits"]), "--out",
                              str(tmp_path / "s.csv"), "--names"])
    assert out.exit_code == 0, out.output
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    vocab = load_vocabulary(stores["vocabulary"])
    first = rows[1][1].split()[0]
    assert rows[0][2] == "LabelNames" and rows[1][2].split(" | ")[0] == vocab.name(int(first))
    bare = _export(tmp_path / "bare.onnx", None)
    out = runner.invoke(app, ["predict", str(bare), str(stores["fits"]), "--out",
                              str(tmp_path / "t.csv"), "--names"])
    assert out.exit_code == 1 and "carries no vocabulary" in out.output
    assert not (tmp_path / "t.csv").exists()
    out = runner.invoke(app, ["predict", str(bare), str(stores["fits"]), "--out",
                              str(tmp_path / "t.csv"), "--names", "--vocabulary",
                              str(stores["vocabulary"])])
    assert out.exit_code == 0, out.output
