"""Kaggle submission CSV: round trip, atomic writes, and a clear error for each fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yt8mkit.data.submission import (
    HEADER,
    SubmissionWriter,
    align_to_ids,
    read_submission,
    write_submission,
)
from yt8mkit.errors import BadInputError
from yt8mkit.metrics import Labels, evaluate, top_k


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_round_trip_sorts_and_truncates(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((5, 40)).astype(np.float32)
    idx, val = top_k(scores, 30)
    perm = rng.permutation(30)  # unsorted input: the writer sorts
    path = write_submission(
        tmp_path / "sub.csv", ["a", "b", b"c", "d", "e"], idx[:, perm], val[:, perm]
    )
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER and len(lines) == 6
    first = lines[1].split(",")[1].split()
    assert first[0] == str(idx[0, 0]) and first[1] == f"{val[0, 0]:.6f}" and len(first) == 40
    sub = read_submission(path, num_classes=40)
    assert sub.ids == ["a", "b", "c", "d", "e"] and len(sub) == 5
    assert sub.indices.shape == (5, 20) and sub.indices.dtype == np.int32
    np.testing.assert_array_equal(sub.indices, idx[:, :20])
    np.testing.assert_allclose(sub.scores, val[:, :20], atol=5e-7)
    assert leftovers(tmp_path) == ["sub.csv"]


def test_padding_and_empty_rows(tmp_path: Path) -> None:
    idx = np.array([[4, -1, 2], [-1, -1, -1]])
    val = np.array([[0.5, 0.0, 0.25], [0, 0, 0]], np.float32)
    path = write_submission(tmp_path / "s.csv", ["v1", "v2"], idx, val)
    assert path.read_text().splitlines()[1:] == ["v1,4 0.500000 2 0.250000", "v2,"]
    sub = read_submission(path)
    np.testing.assert_array_equal(sub.indices[:, :3], [[4, 2, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(sub.scores[:, :3], [[0.5, 0.25, 0], [0, 0, 0]])


def test_streaming_writer(tmp_path: Path) -> None:
    path = tmp_path / "out" / "sub.csv"
    with SubmissionWriter(path) as out:
        out.write(["x"], np.array([[1, 2]]), np.array([[0.1, 0.9]]))
        assert not path.exists()  # nothing under the final name before the end
        out.write(["y", "z"], np.array([[3], [0]]), np.array([[0.3], [1.0]]))
    assert out.num_rows == 3
    assert path.read_text() == f"{HEADER}\nx,2 0.900000 1 0.100000\ny,3 0.300000\nz,0 1.000000\n"
    assert leftovers(path.parent) == ["sub.csv"]


@pytest.mark.parametrize(
    ("ids", "indices", "scores", "message"),
    [
        (["a", "a"], [[1], [2]], [[0.1], [0.2]], "written twice"),
        (["a", "b"], [[1]], [[0.1]], "2 ids for 1 prediction rows"),
        (["a b"], [[1]], [[0.1]], "comma or whitespace"),
        (["a"], [[1]], [[np.inf]], "finite"),
        (["a"], [[1]], [[np.nan]], "NaN"),
        (["a"], [[9]], [[0.5]], "class index is >= 5"),
    ],
)
def test_writer_failure_leaves_nothing(
    tmp_path: Path, ids: list[str], indices: list, scores: list, message: str
) -> None:
    target = tmp_path / "sub.csv"
    target.write_text("old\n")  # an existing file must survive a failed rewrite
    with pytest.raises(ValueError, match=message):
        write_submission(target, ids, np.array(indices), np.array(scores), num_classes=5)
    assert leftovers(tmp_path) == ["sub.csv"] and target.read_text() == "old\n"


def test_writer_exception_in_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), SubmissionWriter(tmp_path / "s.csv") as out:
        out.write(["a"], np.array([[1]]), np.array([[0.5]]))
        raise RuntimeError("boom")
    assert leftovers(tmp_path) == []


BAD = [
    ("VideoId,Labels\na,1 0.5\n", 1, "header"),
    ("", 1, "header"),
    (f"{HEADER}\na,1 0.5\nb 1 0.5\n", 3, "no comma"),
    (f"{HEADER}\na,1 0.5 2\n", 2, r"odd number of label/score tokens \(3\)"),
    (f"{HEADER}\na,1.5 0.5\n", 2, "label '1.5' is not an integer"),
    (f"{HEADER}\na,x 0.5\n", 2, "label 'x' is not an integer"),
    (f"{HEADER}\na,1 nan\n", 2, "not a finite number"),
    (f"{HEADER}\na,1 inf\n", 2, "not a finite number"),
    (f"{HEADER}\na,1 high\n", 2, "score 'high' of label 1 is not a number"),
    (f"{HEADER}\na,1 0.5\n\nb,2 0.5\na,3 0.1\n", 5, "video id 'a' already on line 2"),
    (f"{HEADER}\na,7 0.5\n", 2, r"label 7 out of range \[0, 5\)"),
    (f"{HEADER}\na,-1 0.5\n", 2, "label -1 out of range"),
    (f"{HEADER}\na,1 0.5 1 0.4\n", 2, "a label appears twice"),
    (f"{HEADER}\n,1 0.5\n", 2, "empty video id"),
    (f"{HEADER}\na,1 0.5,2 0.3\n", 2, "more than one comma"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_read_errors_name_line_and_fault(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "sub.csv"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as err:
        read_submission(path, num_classes=5)
    assert str(err.value).startswith(f"{path}: line {line}: ")


def test_read_too_many_pairs_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "sub.csv"
    pairs = " ".join(f"{i} 0.1" for i in range(21))
    path.write_text(f"{HEADER}\r\na,{pairs}\r\n")
    with pytest.raises(BadInputError, match="line 2: 21 label/score pairs, at most 20"):
        read_submission(path)
    path.write_text(f"\ufeff{HEADER}\r\na,3 0.5\r\n")
    assert read_submission(path).ids == ["a"]


def test_align_and_evaluate(tmp_path: Path) -> None:
    path = tmp_path / "sub.csv"
    path.write_text(f"{HEADER}\nv2,1 0.9 0 0.1\nv0,2 0.8\n")
    sub = read_submission(path)
    aligned = align_to_ids(sub, ["v0", "v1", "v2"])
    np.testing.assert_array_equal(aligned.rows, [1, -1, 0])
    np.testing.assert_array_equal(aligned.missing, [1])
    np.testing.assert_array_equal(aligned.indices[:, :2], [[2, -1], [-1, -1], [1, 0]])
    labels = Labels.from_lists([[2], [0], [0]], num_classes=3)
    got = evaluate(aligned.indices, aligned.scores, labels)
    # Pooled: 0.9(-) 0.8(+) 0.1(+); v1's label is never retrieved but counts.
    assert got.gap == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert got.hit_at_1 == pytest.approx(1 / 3)


def test_align_rejects_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "sub.csv"
    path.write_text(HEADER + "\n" + "".join(f"x{i},1 0.5\n" for i in range(7)))
    with pytest.raises(
        BadInputError, match=r"7 video ids are not among the 1 expected: 'x0', .* and 2 more"
    ):
        align_to_ids(read_submission(path), ["x9"])
    with pytest.raises(ValueError, match="duplicates"):
        align_to_ids(read_submission(path), [f"x{i}" for i in range(7)] + ["x0"])
