"""The vocabulary is mapped through its Index column, from a quoted, shuffled CSV."""

from __future__ import annotations

import csv
import random

import pytest

from tests.conftest import VIDEO_2018, require_shared
from yt8mkit.data.vocabulary import load_vocabulary
from yt8mkit.errors import Yt8mError

HEADER = ["Index", "TrainVideoCount", "KnowledgeGraphId", "Name", "WikiUrl", "Vertical1",
          "Vertical2", "Vertical3", "WikiDescription"]


def test_rows_out_of_order_with_quoted_commas_and_newlines(tmp_path):
    rows = [[str(i), str(1000 - i), f"/m/{i}", f"Name, {i}", "", f"V{i % 3}", "", "",
             f'line one of {i},\nline "two", with commas'] for i in range(50)]
    random.Random(4).shuffle(rows)
    path = tmp_path / "vocabulary.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(HEADER)
        writer.writerows(rows)
    # The file really has what trips a line-by-line reader: more lines than rows.
    assert path.read_text().count("\n") > 2 * len(rows)
    vocab = load_vocabulary(path)
    assert len(vocab) == 50
    for i in range(50):
        assert vocab.name(i) == f"Name, {i}"
        assert vocab.vertical(i) == f"V{i % 3}"
    assert vocab.label(7) == "7 Name, 7"
    assert vocab.name(99) == "99"  # unnamed classes keep their index


def test_missing_column_and_duplicate_index_are_refused(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("Id,Name\n0,a\n")
    with pytest.raises(Yt8mError, match="'Index'"):
        load_vocabulary(path)
    path.write_text("Index,Name\n0,a\n0,b\n")
    with pytest.raises(Yt8mError, match="Index 0 appears twice"):
        load_vocabulary(path)
    path.write_text("Index,Name\nx,a\n")
    with pytest.raises(Yt8mError, match="not an integer"):
        load_vocabulary(path)
    with pytest.raises(Yt8mError, match="cannot read"):
        load_vocabulary(tmp_path / "absent.csv")


@pytest.mark.shared
def test_the_official_vocabulary():
    vocab = load_vocabulary(require_shared(VIDEO_2018 / "vocabulary.csv"))
    assert len(vocab) == 3862
    assert vocab.name(0) == "Game" and vocab.vertical(0) == "Games"
    assert vocab.name(1) == "Video game"
    assert len(set(vocab.verticals.values())) == 25
