"""Exporting the distilled final model, of one fold or the average of every fold's: ONNX
under the size budget, checked against PyTorch (on the fold's held-out videos for one
fold)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yt8mkit.data.folds import fold_ids, selection_rows
from yt8mkit.data.store import Store
from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.distill.config import DistillConfig
from yt8mkit.distill.run import final_model_factory
from yt8mkit.errors import Yt8mError
from yt8mkit.export.config import GAP_TOLERANCE, ExportConfig
from yt8mkit.export.onnx_export import export_onnx
from yt8mkit.export.predictor import OnnxPredictor
from yt8mkit.metrics import gap_at_k
from yt8mkit.outputs import write_text_atomic
from yt8mkit.train.checkpoints import load_checkpoint


class FoldAverage(nn.Module):
    """The mean probability of several models, as log-odds: the export's sigmoid then
    gives back the mean itself."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        probs = torch.stack([torch.sigmoid(m(inputs)) for m in self.members]).mean(dim=0)
        return torch.logit(probs, eps=1e-7)


def export_final_model(
    store: Store, distill_dir: Path, distill: DistillConfig, out: Path, config: ExportConfig,
    vocabulary: Vocabulary | None = None,
) -> dict:
    """Write ``out`` (ONNX) from ``distill_dir/{labels}/final/fold{k}`` (every fold's with
    ``fold="all"``); raises when over the size budget or when GAP@20 moves by
    ``GAP_TOLERANCE`` or more from PyTorch's."""
    kind = distill_dir / config.labels
    student_dirs = [kind / f"student{i}" for i in range(len(distill.students))]
    build = final_model_factory(store, student_dirs, distill.student_models(),
                                distill.use_raw_input)
    folds = store.folds()
    chosen = fold_ids(folds) if config.fold == "all" else [config.fold]
    members = []
    for fold in chosen:
        checkpoint = kind / "final" / f"fold{fold}" / "best.pt"
        if not checkpoint.is_file():
            raise Yt8mError(f"{checkpoint}: no trained final model for fold {fold}")
        member = build(fold)
        member.load_state_dict(
            load_checkpoint(checkpoint)["model"])
        members.append(member)
    model = members[0] if config.fold != "all" else FoldAverage(members)
    model.eval()

    # The selection split when there is one (no model of either level trained on it);
    # else one fold: its held-out videos; all folds: every video was trained on by all
    # but one member, so the check (ONNX against PyTorch) runs on the first videos.
    rows = selection_rows(folds)
    held_out = bool(len(rows)) or config.fold != "all"
    if not len(rows):
        rows = (np.flatnonzero(folds == config.fold) if config.fold != "all"
                else np.arange(len(folds)))
    check = rows[: config.check_videos]
    inputs = {m: np.asarray(store.video_features(m)[check], np.float32)
              for m in store.modalities}
    labels = store.labels_dense(check)
    with torch.no_grad():
        torch_probs = torch.sigmoid(model({m: torch.from_numpy(v) for m, v in inputs.items()}))
    gap_torch = gap_at_k(torch_probs.numpy(), labels)
    gaps: dict[str, float] = {}

    def same_gap(candidate: Path) -> None:
        """GAP@20 of the finished file against PyTorch's, before it takes ``out``'s place."""
        predictor = OnnxPredictor(candidate)
        onnx_probs = np.concatenate([
            predictor.predict({m: v[s : s + config.batch_size] for m, v in inputs.items()})
            for s in range(0, len(check), config.batch_size)
        ])
        gaps["onnx"] = gap_onnx = gap_at_k(onnx_probs, labels)
        if abs(gap_onnx - gap_torch) >= GAP_TOLERANCE:
            raise Yt8mError(
                f"{out}: GAP@20 {gap_onnx:.5f} with ONNX against {gap_torch:.5f} with "
                f"PyTorch, a change of {GAP_TOLERANCE} or more; nothing was written"
            )
        # The summary of an earlier export goes before the new model takes its place, so
        # that a kill between the two renames cannot leave it describing the new one.
        out.with_suffix(".json").unlink(missing_ok=True)

    report = export_onnx(model, store.dims, out, config.max_size_bytes, config.int8,
                         check_inputs={m: v[:256] for m, v in inputs.items()},
                         vocabulary=vocabulary, verify=same_gap)
    gap_onnx = gaps["onnx"]
    summary = {**report.model_dump(), "fold": config.fold, "labels": config.labels,
               "check_videos": len(check),
               "check_videos_held_out": held_out,
               "check_gap_torch": gap_torch, "check_gap_onnx": gap_onnx}
    try:
        write_text_atomic(out.with_suffix(".json"), json.dumps(summary, indent=2))
    except OSError as err:
        raise Yt8mError(f"{out.with_suffix('.json')}: the export's summary could not be "
                        f"written ({err.strerror or err}); the model {out} is complete "
                        "and checked") from None
    return summary
