"""The Kaggle submission CSV of the YouTube-8M challenge: write, read, align.

Format::

    VideoId,LabelConfidencePairs
    100011194,1 0.991708 4 0.986838 ...

one line per video with its best ``top`` (20) classes, highest score first, as
``label score`` pairs (labels as integers, scores as ``%.6f``).

Files are written atomically: into a temporary file in the target directory, renamed
over the target only when complete, removed on any error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from yt8mkit.errors import BadInputError
from yt8mkit.metrics.topk import order_sparse
from yt8mkit.outputs import scratch_file

HEADER = "VideoId,LabelConfidencePairs"
TOP = 20


def _check_id(video_id: str) -> str:
    if not video_id or any(ch in video_id for ch in ", \t\r\n"):
        raise ValueError(f"video id {video_id!r} is empty or holds a comma or whitespace")
    return video_id


def _as_ids(ids: Sequence[str | bytes] | np.ndarray) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


def format_rows(
    ids: Sequence[str | bytes] | np.ndarray,
    indices: np.ndarray,
    scores: np.ndarray,
    top: int = TOP,
    num_classes: int | None = None,
) -> list[str]:
    """Submission lines (without newline) of sparse top-K predictions; negative
    indices are padding and are left out."""
    ids = _as_ids(ids)
    indices, scores = order_sparse(indices, scores, top)
    if len(ids) != indices.shape[0]:
        raise ValueError(f"{len(ids)} ids for {indices.shape[0]} prediction rows")
    valid = indices >= 0
    if not np.isfinite(scores[valid]).all():
        raise ValueError("scores must be finite")
    if num_classes is not None and valid.any() and int(indices.max()) >= num_classes:
        raise ValueError(f"a class index is >= {num_classes}")
    counts = valid.sum(axis=1)
    # Padding sorts last, so each row's valid pairs are its first counts[i] columns;
    # one %-format per row is much faster than formatting the pairs one by one.
    formats: dict[int, str] = {}
    lines = []
    for video_id, idx, sc, m in zip(ids, indices.tolist(), scores.tolist(), counts.tolist()):
        fmt = formats.get(m) or formats.setdefault(m, "%s," + " ".join(["%d %.6f"] * m))
        pairs = [v for pair in zip(idx[:m], sc[:m]) for v in pair]
        lines.append(fmt % (_check_id(video_id), *pairs))
    return lines


class SubmissionWriter:
    """Streaming, atomic submission writer::

        with SubmissionWriter(path) as out:
            for ids, indices, scores in batches:
                out.write(ids, indices, scores)

    The file appears at ``path`` only when the block exits without an error; a video
    id written twice is an error.
    """

    def __init__(
        self, path: str | os.PathLike[str], top: int = TOP, num_classes: int | None = None
    ) -> None:
        self.path = Path(path)
        self.top = top
        self.num_classes = num_classes
        self._seen: set[str] = set()
        self._file: IO[str] | None = None
        self._tmp = ""
        self.num_rows = 0

    def __enter__(self) -> SubmissionWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target, so that the final rename is atomic.
        fd, self._tmp = scratch_file(self.path.parent, self.path.name)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self._file.write(HEADER + "\n")
        return self

    def write(
        self, ids: Sequence[str | bytes] | np.ndarray, indices: np.ndarray, scores: np.ndarray
    ) -> None:
        if self._file is None:
            raise RuntimeError("SubmissionWriter.write outside its with block")
        lines = format_rows(ids, indices, scores, self.top, self.num_classes)
        for video_id in _as_ids(ids):
            if video_id in self._seen:
                raise ValueError(f"video id {video_id!r} written twice")
            self._seen.add(video_id)
        self._file.write("\n".join(lines) + ("\n" if lines else ""))
        self.num_rows += len(lines)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            if exc_type is None:
                file.flush()
                os.fsync(file.fileno())
            file.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def write_submission(
    path: str | os.PathLike[str],
    ids: Sequence[str | bytes] | np.ndarray,
    indices: np.ndarray,
    scores: np.ndarray,
    top: int = TOP,
    num_classes: int | None = None,
) -> Path:
    """Write a whole submission at once (sparse top-K; sorted and cut to ``top``)."""
    with SubmissionWriter(path, top, num_classes) as out:
        out.write(ids, indices, scores)
    return Path(path)


@dataclass(frozen=True, eq=False)
class Submission:
    """A parsed submission. ``indices`` (n, top) int32 and ``scores`` (n, top) float32
    hold each line's pairs in file order; short lines are padded with index -1 and
    score 0 (padding is ignored by every metric)."""

    ids: list[str]
    indices: np.ndarray
    scores: np.ndarray
    path: str | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _parse_line(line: str, top: int, num_classes: int | None) -> tuple[str, list[int], list[float]]:
    """One data line; raises ValueError saying what is wrong."""
    if "," not in line:
        raise ValueError("expected 'VideoId,label score ...' but there is no comma")
    video_id, rest = line.split(",", 1)
    video_id = video_id.strip()
    if not video_id:
        raise ValueError("empty video id")
    if "," in rest:
        raise ValueError("more than one comma")
    tokens = rest.split()
    if len(tokens) % 2:
        raise ValueError(f"odd number of label/score tokens ({len(tokens)})")
    if len(tokens) // 2 > top:
        raise ValueError(f"{len(tokens) // 2} label/score pairs, at most {top} allowed")
    labels, scores = [], []
    for label_text, score_text in zip(tokens[::2], tokens[1::2]):
        try:
            label = int(label_text)
        except ValueError:
            raise ValueError(f"label {label_text!r} is not an integer") from None
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = "" if num_classes is None else f" [0, {num_classes})"
            raise ValueError(f"label {label} out of range{bound}")
        try:
            score = float(score_text)
        except ValueError:
            raise ValueError(f"score {score_text!r} of label {label} is not a number") from None
        if not math.isfinite(score):
            raise ValueError(f"score {score_text!r} of label {label} is not a finite number")
        labels.append(label)
        scores.append(score)
    if len(set(labels)) != len(labels):
        raise ValueError("a label appears twice")
    return video_id, labels, scores


def read_submission(
    path: str | os.PathLike[str], num_classes: int | None = None, top: int = TOP
) -> Submission:
    """Parse and check a submission CSV; raises ``BadInputError`` naming the line (1 is
    the header) and what is wrong. Blank lines are skipped."""
    path = str(path)
    if Path(path).is_dir():
        raise BadInputError(path, "is a folder, not a submission CSV file")
    if not Path(path).is_file():
        raise BadInputError(path, "no such file")
    ids: list[str] = []
    first_line: dict[str, int] = {}
    indices = []
    scores = []
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\r\n")
        if header.replace(" ", "") != HEADER:
            raise BadInputError(path, f"line 1: header {header[:60]!r}, expected {HEADER!r}")
        for lineno, raw in enumerate(f, start=2):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                video_id, labels, values = _parse_line(line, top, num_classes)
            except ValueError as err:
                raise BadInputError(path, f"line {lineno}: {err}") from None
            if video_id in first_line:
                raise BadInputError(
                    path,
                    f"line {lineno}: video id {video_id!r} already on line {first_line[video_id]}",
                )
            first_line[video_id] = lineno
            ids.append(video_id)
            indices.append(labels + [-1] * (top - len(labels)))
            scores.append(values + [0.0] * (top - len(values)))
    return Submission(
        ids,
        np.asarray(indices, np.int32).reshape(len(ids), top),
        np.asarray(scores, np.float32).reshape(len(ids), top),
        path,
    )


@dataclass(frozen=True, eq=False)
class Alignment:
    """A submission's rows in the order of a list of video ids.

    ``rows[i]`` is the submission row of ``ids[i]`` or -1; ``missing`` lists the
    positions of ids without a row, whose ``indices``/``scores`` rows are padding: no
    predictions, so their labels count as positives never retrieved.
    """

    rows: np.ndarray
    missing: np.ndarray
    indices: np.ndarray
    scores: np.ndarray


def align_to_ids(submission: Submission, ids: Sequence[str | bytes] | np.ndarray) -> Alignment:
    """Match a submission to the videos ``ids`` (e.g. a labelled store's order).

    A submission id that is not in ``ids`` is an error (``BadInputError`` listing the
    first few): it most likely means the wrong split or a corrupted id.
    """
    ids = _as_ids(ids)
    where = {video_id: i for i, video_id in enumerate(submission.ids)}
    if len(set(ids)) != len(ids):
        raise ValueError("the ids to align to hold duplicates")
    known = set(ids)
    unknown = [video_id for video_id in submission.ids if video_id not in known]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise BadInputError(
            submission.path or "<submission>",
            f"{len(unknown)} video ids are not among the {len(ids)} expected: {shown}{more}",
        )
    rows = np.fromiter((where.get(video_id, -1) for video_id in ids), np.int64, len(ids))
    present = rows >= 0
    width = submission.indices.shape[1]
    indices = np.full((len(ids), width), -1, np.int32)
    scores = np.zeros((len(ids), width), np.float32)
    indices[present] = submission.indices[rows[present]]
    scores[present] = submission.scores[rows[present]]
    return Alignment(rows, np.flatnonzero(~present), indices, scores)
