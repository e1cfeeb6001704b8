"""Inference throughput of a final-model-shaped network on the CPU: PyTorch eager against
ONNX Runtime float32 and int8, in the same run, with top-20 agreement and file sizes.

The network: FinalModel over three student MLPs (depth 2, widths 1024/1536/2048) on the
1152 video-level inputs (rgb 1024 + audio 128), raw input concatenated, 3862 classes.
Weights are untrained (seeded), inputs are random normal: throughput does not depend on
the values; the agreement numbers are for such weights.

    .venv/bin/python bench/bench_export.py [--batches 20] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from yt8mkit.distill import FinalModel, build_student
from yt8mkit.export import OnnxPredictor, export_onnx
from yt8mkit.export.onnx_export import top_k_agreement

DIMS = {"rgb": 1024, "audio": 128}
CLASSES = 3862
WIDTHS = (1024, 1536, 2048)
RESULTS = Path(__file__).parent / "results" / "export.json"


def build() -> FinalModel:
    torch.manual_seed(0)
    students = [build_student(CLASSES, DIMS, {"depth": 2, "width": w}) for w in WIDTHS]
    return FinalModel(students, CLASSES, use_raw_input=True, raw_dims=DIMS).eval()


def batches(count: int, size: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {n: rng.normal(size=(size, d)).astype(np.float32) for n, d in DIMS.items()}
        for _ in range(count)
    ]


def one_pass(run, data: list[dict[str, np.ndarray]]) -> float:
    """videos/s over all batches."""
    began = time.perf_counter()
    for batch in data:
        run(batch)
    return sum(len(b["rgb"]) for b in data) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    model = build()
    data = batches(args.batches, args.batch_size)

    def eager(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            inputs = {n: torch.from_numpy(v) for n, v in batch.items()}
            return torch.sigmoid(model(inputs)).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, DIMS, Path(tmp) / "fp32.onnx", check_inputs=data[0])
        int8 = export_onnx(
            model, DIMS, Path(tmp) / "int8.onnx", quantize_int8=True, check_inputs=data[0]
        )
        engines = {
            "torch_eager_fp32": eager,
            "onnxruntime_fp32": OnnxPredictor(fp32.path, threads).predict,
            "onnxruntime_int8": OnnxPredictor(int8.path, threads).predict,
        }
        # Warm up every engine (first calls page weights in and pick kernels), then time
        # interleaved rounds and keep each engine's best, so that neither the order of
        # the engines nor a noisy neighbour decides the ratios.
        outputs = {name: run(data[0]) for name, run in engines.items()}
        for run in engines.values():
            run(data[1 % len(data)])
        rates = {name: 0.0 for name in engines}
        for _ in range(args.rounds):
            for name, run in engines.items():
                rates[name] = max(rates[name], one_pass(run, data))

    base = rates["torch_eager_fp32"]
    reference = outputs["torch_eager_fp32"]
    rows = {
        name: {
            "videos_per_s": round(rate, 1),
            "vs_torch": round(rate / base, 2),
            "top20_agreement_vs_torch": round(top_k_agreement(outputs[name], reference), 4),
            "max_abs_diff_vs_torch": float(np.abs(outputs[name] - reference).max()),
            "size_bytes": {
                "torch_eager_fp32": None,
                "onnxruntime_fp32": fp32.size_bytes,
                "onnxruntime_int8": int8.size_bytes,
            }[name],
        }
        for name, rate in rates.items()
    }
    params = sum(p.numel() for p in model.parameters())
    # The students' own output layers are not part of the final model's graph.
    in_graph = params - sum(p.numel() for s in model.students for p in s.output.parameters())
    result = {
        "model": {
            "students": [{"depth": 2, "width": w} for w in WIDTHS],
            "raw_input": True,
            "inputs": DIMS,
            "classes": CLASSES,
            "parameters_in_graph": in_graph,
        },
        "batch_size": args.batch_size,
        "batches": args.batches,
        "rounds": args.rounds,
        "threads": threads,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": threads,
            "torch": torch.__version__,
            # Other work on the machine skews the numbers; this says how much there was.
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        },
        "engines": rows,
    }
    print(
        f"final model: {in_graph / 1e6:.1f} M parameters, batch {args.batch_size}, "
        f"{threads} threads"
    )
    print(
        f"{'engine':<18} {'videos/s':>10} {'x torch':>8} {'top-20 agr.':>12} "
        f"{'max |diff|':>11} {'size MB':>9}"
    )
    for name, row in rows.items():
        size = f"{row['size_bytes'] / 1e6:.1f}" if row["size_bytes"] else "-"
        print(
            f"{name:<18} {row['videos_per_s']:>10.0f} {row['vs_torch']:>8.2f} "
            f"{row['top20_agreement_vs_torch']:>12.4f} {row['max_abs_diff_vs_torch']:>11.2e} "
            f"{size:>9}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
