"""Label names from the vocabulary in `yt8m info`, `evaluate` and `predict --names`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.run_fixture import make_run
from yt8mkit.cli.main import app
from yt8mkit.data.named_submission import add_names_column
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.data.submission import write_submission
from yt8mkit.data.vocabulary import load_vocabulary

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


def test_info_names_the_most_frequent_labels(run_dir: Path):
    vocabulary = run_dir / "synth" / "vocabulary.csv"
    vocab = load_vocabulary(vocabulary)
    store = Store(run_dir / "store")
    top = int(np.argmax(store.label_counts()))
    plain = runner.invoke(app, ["info", str(run_dir / "store")])
    named = runner.invoke(app, ["info", str(run_dir / "store"), "--vocabulary", str(vocabulary)])
    assert plain.exit_code == 0 and named.exit_code == 0, named.output
    assert vocab.name(top) not in plain.output
    assert f"{top} {vocab.name(top)}" in " ".join(named.output.split())


def test_evaluate_lists_the_labels_with_most_errors_by_name(run_dir: Path, tmp_path: Path):
    vocabulary = run_dir / "synth" / "vocabulary.csv"
    test = Predictions(run_dir / "zoo" / "weak" / "test")
    store = Store(run_dir / "test_store")
    csv_path = write_submission(tmp_path / "s.csv", store.ids(), np.asarray(test.indices),
                                np.asarray(test.scores))
    out = runner.invoke(app, ["evaluate", str(csv_path), "--labels", str(run_dir / "test_store"),
                              "--vocabulary", str(vocabulary), "--worst", "3"])
    assert out.exit_code == 0, out.output
    assert "3 labels with the most errors" in out.output
    from yt8mkit.analysis.outcomes import analyse

    outcomes = analyse(test, store)
    worst = int(np.argmax(outcomes.fp + outcomes.fn))
    text = " ".join(out.output.split())
    assert load_vocabulary(vocabulary).label(worst) in text


def test_names_column_is_quoted_csv_and_keeps_the_kaggle_columns(tmp_path: Path):
    vocab_path = tmp_path / "v.csv"
    vocab_path.write_text('Index,Name\n1,"Comma, name"\n0,Zero\n')
    path = write_submission(tmp_path / "s.csv", ["a", "b"], np.array([[1, 0], [0, 2]]),
                            np.array([[0.9, 0.1], [0.8, 0.3]], np.float32))
    plain = path.read_text().splitlines()
    add_names_column(path, load_vocabulary(vocab_path))
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["VideoId", "LabelConfidencePairs", "LabelNames"]
    assert rows[1] == ["a", plain[1].split(",", 1)[1], "Comma, name | Zero"]
    assert rows[2][2] == "Zero | 2"  # an unnamed class keeps its index
    assert not list(tmp_path.glob(".s.csv.*"))
