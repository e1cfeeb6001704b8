"""Frame-level models and representations against video-level resnet_like: 5-fold
out-of-fold GAP@20 on synthetic frame-level data in which 40% of the classes show in a
few scenes only, so that averaging the frames dilutes them (issue 5's benchmark).

    .venv/bin/python bench/bench_frame_oof.py [--videos 3000] [--models a,b] [--workers 2]
        [--bumpers 0.5] [--backend ray] [--report-only] [--results frame_oof]

Generates the data, ingests it, fits the k-means centroids, trains the zoo of
configs/synthetic/frame_zoo.yaml (resumable: a rerun skips finished folds), computes
the fixed representations of its ``derived`` section once each into a video-level store
(``yt8m represent``) and trains its video-level model there, and writes
bench/results/frame_oof.{json,md} (or ``--results NAME``): model, frame-level or not,
out-of-fold GAP@20, its difference to video-level resnet_like, training seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import yaml
from results_table import write_results

from yt8mkit.data.folds import folds_info, write_folds
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate
from yt8mkit.features.centroids import run_centroids
from yt8mkit.features.derive import derive_store
from yt8mkit.features.registry import RepresentationConfig
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import run_model
from yt8mkit.zoo.config import ZooConfig
from yt8mkit.zoo.runner import run_zoo

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "configs" / "synthetic" / "frame_zoo.yaml"
BASELINE = "resnet_like_video_level"


def _data(out: Path, videos: int, classes: int, k: int, bumpers: float) -> tuple[Store, Path]:
    synth = SynthConfig(videos=videos, classes=classes, seed=0, frames=True, rgb_dim=64,
                        audio_dim=16, videos_per_shard=250, bumper_share=bumpers)
    if not Store.is_store(out / "store"):
        if not (out / "synth" / "gold_labels.npz").exists():
            generate(synth, out / "synth")
        ingest([out / "synth"], out / "store", IngestConfig(workers=2))
    store = Store(out / "store")
    if folds_info(store) is None:
        write_folds(store, 5, 0)
    centroids = out / "store" / f"centroids_{k}.npy"
    if not centroids.is_file():
        run_centroids(store.path, k, centroids, seed=0)
    return store, centroids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3000)
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--centroids", type=int, default=256)
    parser.add_argument("--models", default="", help="comma-separated subset of the zoo")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_frame_oof"))
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="ray: one single-threaded job per core at once (small models "
                             "use one core better than two)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local backend: (model, fold) jobs in this many processes")
    parser.add_argument("--bumpers", type=float, default=0.0,
                        help="share of videos with a channel intro and outro (new --out)")
    parser.add_argument("--results", default="frame_oof",
                        help="bench/results/NAME.{json,md} to write")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: tabulate the models whose 5 folds are done")
    args = parser.parse_args()

    out = Path(args.out)
    store, centroids = _data(out, args.videos, args.classes, args.centroids, args.bumpers)
    spec = yaml.safe_load(ZOO.read_text())
    derived_specs = spec.pop("derived", {})
    centroid_specs = spec.pop("centroids", {})
    for model in spec["models"].values():  # the centroids file is made here, per run
        params = model["model"].get("params", {})
        if params.get("centroids") in centroid_specs:
            params["centroids"] = str(centroids)
    zoo = ZooConfig.model_validate(spec)
    configs = zoo.train_configs()
    derived = {name: (RepresentationConfig.model_validate(entry["features"]),
                      _derived_config(name, entry, spec.get("defaults", {})))
               for name, entry in derived_specs.items()}
    if args.models:
        wanted = set(args.models.split(",")) | {BASELINE}
        configs = {k: v for k, v in configs.items() if k in wanted}
        derived = {k: v for k, v in derived.items() if k in wanted}
    began = time.perf_counter()
    failed: list[str] = []
    derive_seconds: dict[str, float] = {}
    stores = {name: store for name in configs}
    if not args.report_only:
        result = run_zoo(configs, str(store.path), out / "zoo", backend=args.backend,
                         report=lambda m: print(m, flush=True), workers=args.workers)
        failed = sorted(f"{m} fold {f}" for m, f in result.failed)
    for name, (features, config) in derived.items():
        path = out / "derived" / name
        if not Store.is_store(path) and args.report_only:
            continue
        if not Store.is_store(path):
            t = time.perf_counter()
            derive_store(store, features, path)
            derive_seconds[name] = time.perf_counter() - t
            (path / "derive_seconds.json").write_text(json.dumps(derive_seconds[name]))
        else:
            derive_seconds[name] = json.loads((path / "derive_seconds.json").read_text())
        stores[name] = Store(path)
        configs[name] = config
        if not args.report_only:
            print(f"{name}: video-level model on {path}", flush=True)
            run_model(config, stores[name], out / "zoo" / name)
    rows = []
    for name, config in configs.items():
        metrics_file = out / "zoo" / name / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        if "oof_gap" not in metrics:
            folds_done = len(list((out / "zoo" / name).glob("fold*/done.json")))
            if folds_done < 5:
                rows.append({"model": name, "error": f"not run: {folds_done} of 5 folds done"})
                continue
            # Every fold is done but the run stopped before pooling them: pool now.
            metrics = run_model(config, stores[name], out / "zoo" / name)
        seconds = sum(json.loads((out / "zoo" / name / f"fold{f}" / "metrics.json").read_text())
                      ["result"]["seconds"] for f in range(5))
        # Computed once for all folds: counted in the model's training time.
        seconds += derive_seconds.get(name, 0.0)
        rows.append({"model": name, "frame_level": metrics["frame_level"] or name in derived,
                     "oof_gap": metrics["oof_gap"], "oof_bce": metrics.get("oof_bce"),
                     "train_seconds": seconds})
    base = next(r["oof_gap"] for r in rows if r["model"] == BASELINE)
    for row in rows:
        if "oof_gap" in row:
            row["vs_video_level_resnet_like"] = row["oof_gap"] - base
    rows.sort(key=lambda r: -r.get("oof_gap", -1.0))
    report = {
        "data": {"videos": store.num_videos, "classes": store.num_classes,
                 "frames": store.meta.num_frames, "dims": store.dims,
                 "generator": "SynthConfig(frames=True, rgb_dim=64, audio_dim=16), seed 0",
                 "centroids": args.centroids},
        "machine": {"cores": torch.get_num_threads(), "torch": torch.__version__,
                    "machine": platform.machine()},
        "backend": args.backend,
        "workers": args.workers,
        "bumper_share": args.bumpers,
        "derived": {name: features.model_dump() for name, (features, _) in derived.items()},
        "seconds": time.perf_counter() - began,
        "failed": failed,
        "rows": rows,
    }
    table = [[row["model"], "", row["error"], "", ""] if "oof_gap" not in row else
             [row["model"], "yes" if row["frame_level"] else "no", f"{row['oof_gap']:.4f}",
              f"{row['vs_video_level_resnet_like']:+.4f}", f"{row['train_seconds']:.0f}"]
             for row in rows]
    write_results(args.results, report, ["model", "frame-level", "OOF GAP@20",
                                        "vs video-level resnet_like", "train s"], table)

def _derived_config(name: str, entry: dict, defaults: dict) -> TrainConfig:
    """The zoo's defaults under the entry's own settings, as for a zoo model; frame
    settings do not apply to a video-level store."""
    fields = {k: v for k, v in {**defaults, **entry}.items() if k not in ("features", "frames")}
    return TrainConfig.model_validate({**fields, "name": name})


if __name__ == "__main__":
    main()
