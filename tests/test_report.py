"""The report of a run: every figure written and non-empty, every figure embedded in the
one HTML file, labels named from the vocabulary, the vertical figure only with verticals."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.run_fixture import make_run
from yt8mkit.analysis.outcomes import LabelOutcomes
from yt8mkit.analysis.report import build_report, ranked_labels
from yt8mkit.cli.main import app
from yt8mkit.data.vocabulary import load_vocabulary
from yt8mkit.errors import Yt8mError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = {"fig4a_pr_heatmap", "fig4b_f1_vs_training_videos", "fig4c_f1_distribution",
               "fig5_verticals", "table1", "training_curves", "gold_vs_observed"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


def test_every_figure_is_a_png_and_embedded_in_the_html(run_dir: Path, tmp_path: Path):
    report = build_report(run_dir, tmp_path / "out")
    assert {f.key for f in report.figures} == ALL_FIGURES
    assert report.notes == []
    page = report.html.read_text()
    for figure in report.figures:
        data = figure.path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, figure.key
        assert base64.b64encode(data).decode() in page, f"{figure.key} not embedded"
    # Self-contained: nothing is fetched, every image is a data URI.
    sources = re.findall(r'<img[^>]*src="([^"]*)"', page)
    assert len(sources) == len(ALL_FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    assert "GAP@20 (selection split)" in page  # Table 1's leak-free column
    # The test split of the best model by default: the first zoo model here.
    assert report.subject.name == "good" and report.subject.split == "test"


def test_best_and_worst_labels_are_named_with_their_counts(run_dir: Path, tmp_path: Path):
    report = build_report(run_dir, tmp_path / "out")
    page = report.html.read_text()
    vocab = load_vocabulary(run_dir / "synth" / "vocabulary.csv")
    best = ranked_labels(report.outcomes, best=True)
    top = int(best[0])
    o = report.outcomes
    row = (f"<tr><td>{top}</td><td>{vocab.name(top)}</td><td>{vocab.vertical(top)}</td>")
    assert row.replace("&", "&amp;") in page
    assert f"<td>{o.tp[top]}</td><td>{o.fp[top]}</td><td>{o.fn[top]}</td>" in page
    assert "20 worst labels" in page and "20 best labels" in page


def test_ranked_labels_order_by_f1_then_volume():
    o = LabelOutcomes(tp=np.array([5, 0, 1, 9, 0]), fp=np.array([0, 3, 1, 1, 0]),
                      fn=np.array([0, 0, 1, 0, 0]), positives=np.array([5, 0, 2, 9, 0]),
                      ap=np.full(5, np.nan), num_videos=10, k=20)
    assert ranked_labels(o, best=True).tolist() == [0, 3, 2, 1]
    assert ranked_labels(o, best=False).tolist() == [1, 2, 3, 0]  # 4 has no outcome


def test_without_verticals_fig5_is_left_out_with_a_note(tmp_path: Path):
    run = make_run(tmp_path / "run", vocabulary=False)
    report = build_report(run, tmp_path / "out")
    assert {f.key for f in report.figures} == ALL_FIGURES - {"fig5_verticals"}
    assert any("Fig. 5" in note for note in report.notes)
    assert "Fig. 5" in report.html.read_text()


def test_oof_split_and_unknown_model(run_dir: Path, tmp_path: Path):
    report = build_report(run_dir, tmp_path / "out", model="weak", split="oof")
    assert report.subject.store.path.name == "store"
    assert report.outcomes.num_videos == 240
    with pytest.raises(Yt8mError, match="the run has: good \\(test\\)"):
        build_report(run_dir, tmp_path / "out", model="absent")


def test_report_command_prints_the_path_on_stdout(run_dir: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r"),
                                      "--vocabulary", str(run_dir / "synth" /
                                                          "vocabulary.csv")])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "r" / "report.html") in result.stdout
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert bad.exit_code == 1 and "not a run directory" in bad.output


def test_the_vocabulary_named_by_the_run_config_is_used(tmp_path: Path):
    run = make_run(tmp_path / "run", vocabulary=False)
    vocab = tmp_path / "names.csv"
    vocab.write_text("Index,Name,Vertical1\n" + "".join(
        f'{i},"Label, number {i}",Group {i % 2}\n' for i in range(12)))
    (run / "config.yaml").write_text(f"name: tiny\ndata:\n  vocabulary: {vocab}\n")
    report = build_report(run, tmp_path / "out")
    assert "fig5_verticals" in {f.key for f in report.figures}
    assert "Label, number" in report.html.read_text()


def test_a_pipeline_resumes_with_or_without_a_vocabulary(tmp_path: Path):
    from yt8mkit.pipeline.config import demo_config

    plain = demo_config()
    named = plain.model_copy(update={"data": plain.data.model_copy(
        update={"vocabulary": str(tmp_path / "v.csv")})})
    assert named.results_fields() == plain.results_fields()


def test_gold_comparison_scores_each_stage_against_both_label_sets(run_dir: Path):
    from yt8mkit.analysis.gold import gold_comparison
    from yt8mkit.data.predictions import Predictions
    from yt8mkit.data.store import Store
    from yt8mkit.data.synth import read_gold_labels
    from yt8mkit.metrics import Labels, gap_from_top_k
    from yt8mkit.rundir import prediction_gap

    split, rows = gold_comparison(run_dir)
    assert split == "test" and [r.name for r in rows] == ["good", "weak"]
    store = Store(run_dir / "test_store")
    good = Predictions(run_dir / "zoo" / "good" / "test")
    assert rows[0].observed_gap == pytest.approx(prediction_gap(good, store))
    gold = read_gold_labels(run_dir / "synth", "test")
    # The generator writes the test split in the store's order: no reordering needed here.
    assert [str(i) for i in gold.ids] == store.ids()
    want = gap_from_top_k(np.asarray(good.indices, np.int64), np.asarray(good.scores),
                          Labels(gold.gold_indptr, gold.gold_indices, store.num_classes))
    assert rows[0].gold_gap == pytest.approx(want)
    assert rows[0].gold_gap != pytest.approx(rows[0].observed_gap)
