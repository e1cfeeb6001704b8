"""Training curves of one (model, fold) job, beside its checkpoints: ``curves.csv`` and
TensorBoard event files (``tensorboard --logdir RUN`` shows every job of a run).

The CSV is rewritten from the trainer's history, which the last checkpoint carries
across a resume, so it always holds every epoch trained, once. The event files are
written by hand (TFRecord framing of ``Event`` protobufs, the format TensorBoard reads):
no TensorFlow or TensorBoard package is needed to write them. Each process appends only
the epochs it trained, to a file of its own, as TensorFlow's writers do; TensorBoard
merges a directory's files.
"""

from __future__ import annotations

import csv
import itertools
import os
import socket
import struct
import time
from pathlib import Path

from yt8mkit.data.tfrecord import masked_crc32c
from yt8mkit.train.runlog import log_event

CSV_FILE = "curves.csv"
COLUMNS = ("epoch", "train_loss", "valid_bce", "valid_gap", "lr", "seconds")
# history key of each column (the trainer's record: valid loss is its BCE)
KEYS = {"epoch": "epoch", "train_loss": "train_loss", "valid_bce": "bce", "valid_gap": "gap",
        "lr": "lr", "seconds": "seconds"}
SCALARS = {"train/loss": "train_loss", "valid/bce": "bce", "valid/gap20": "gap",
           "train/lr": "lr", "time/epoch_seconds": "seconds"}


_writers = itertools.count()


class CurveWriter:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.events: Path | None = None  # created with the first epoch of this process
        # The job's name as the run's other lines give it: MODEL for zoo/MODEL/foldK,
        # soft_student0 for distill/soft/student0/foldK.
        model, group = out_dir.parent.name, out_dir.parent.parent.name
        self.job = f"{group}_{model}" if group in ("soft", "hard") else model

    def add(self, history: list[dict[str, float]]) -> None:
        """After each epoch: the whole CSV again, the newest epoch to TensorBoard and to
        the run log."""
        self._write_csv(history)
        record = history[-1]
        self._write_event(record)
        log_event(f"epoch {self.job}/{self.out_dir.name} "
                  f"{int(record['epoch'])}: train loss {record['train_loss']:.5f}, "
                  f"valid BCE {record['bce']:.5f}, GAP@20 {record['gap']:.4f}, "
                  f"lr {record['lr']:.3g}, {record.get('seconds', float('nan')):.1f} s")

    def _write_csv(self, history: list[dict[str, float]]) -> None:
        tmp = self.out_dir / f".{CSV_FILE}.tmp"
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for record in history:
                writer.writerow([record.get(KEYS[c], "") for c in COLUMNS])
        os.replace(tmp, self.out_dir / CSV_FILE)

    def _write_event(self, record: dict[str, float]) -> None:
        if self.events is None:
            # TensorFlow's naming; the counter keeps two writers of one process and
            # second (a fold resumed in the same process) apart.
            name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                    f"{os.getpid()}.{next(_writers)}")
            self.events = self.out_dir / name
            _append_record(self.events, _event(time.time(), 0, file_version="brain.Event:2"))
        values = [(tag, float(record[key])) for tag, key in SCALARS.items() if key in record]
        _append_record(self.events, _event(time.time(), int(record["epoch"]), values=values))


# ------------------------------------------------------------ Event protobuf by hand

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2) + _varint(len(data)) + data


def _event(wall_time: float, step: int, file_version: str | None = None,
           values: list[tuple[str, float]] | None = None) -> bytes:
    """``Event{wall_time=1 (double), step=2 (int64), file_version=3, summary=5}``;
    ``Summary{value=1}``; ``Value{tag=1, simple_value=2 (float)}``."""
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if values:
        summary = b"".join(
            _bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5) + struct.pack("<f", v))
            for tag, v in values)
        out += _bytes_field(5, summary)
    return out


def _append_record(path: Path, data: bytes) -> None:
    """One TFRecord: length, its masked CRC, data, the data's masked CRC."""
    length = struct.pack("<Q", len(data))
    record = (length + struct.pack("<I", masked_crc32c(length)) + data
              + struct.pack("<I", masked_crc32c(data)))
    with path.open("ab") as f:
        f.write(record)
