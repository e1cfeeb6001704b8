"""`yt8m serve` under load: requests/s and p50/p99 latency at 1 and at 64 videos a
request, fp32 and int8 final models, against ONNX Runtime called in-process on the same
inputs (the same top-20 work without HTTP); writes `results/serve.{json,md}`.

The models are exported from a finished run (default `runs/demo`, as `make demo` leaves
it; the run is only read) into `--work`, fp32 and int8 (`export_final_model`, the path of
`yt8m export [--int8]`). Each server is the real command (`yt8m serve MODEL --port 0`) in
its own process; the client runs in this one. Three ways to load it:

- ``sequential``: one httpx client, one request at a time (latency as a user sees it);
- ``concurrent``: ``--clients`` requests in flight at once (asyncio, one keep-alive
  connection each, the requests written ready-made so that the load generator takes
  little of the 2 cores): the server's micro-batcher gathers them into shared ONNX
  Runtime calls;
- ``in-process``: ``OnnxPredictor.predict`` + top-20 on the same arrays, one call a
  request, no server.

On this 2-core machine the client, the server's event loop and ONNX Runtime share the
cores, so the served figures include the client's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from results_table import write_results

from yt8mkit.data.predictions import top_k_of
from yt8mkit.data.store import Store
from yt8mkit.export.predictor import OnnxPredictor

ROOT = Path(__file__).resolve().parents[1]
NPY = "application/x-npy"


def export_models(run: Path, work: Path) -> dict[str, Path]:
    """fp32 and int8 exports of the run's final model into ``work`` (kept for reruns)."""
    from yt8mkit.data.vocabulary import load_vocabulary, run_vocabulary
    from yt8mkit.export.final import ExportConfig, export_final_model
    from yt8mkit.pipeline.layout import open_run

    layout = open_run(run)
    vocabulary_path = run_vocabulary(run)
    vocabulary = load_vocabulary(vocabulary_path) if vocabulary_path else None
    out = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        path = work / f"final_{name}.onnx"
        if not path.is_file():
            config = ExportConfig.model_validate({**layout.export.model_dump(), "int8": int8})
            export_final_model(layout.store, layout.distill_dir, layout.distill, path, config,
                               vocabulary)
        out[name] = path
    return out


def request_inputs(run: Path, predictor: OnnxPredictor, videos: int, count: int
                   ) -> list[dict[str, np.ndarray]]:
    """``count`` requests of ``videos`` videos each, cycling over the run's test store."""
    test = run / "test_store"
    store = Store(test) if Store.is_store(test) else Store(run / "store")
    feats = {n: np.asarray(store.video_features(n)[:], np.float32) for n in predictor.input_names}
    total = store.num_videos
    out = []
    for i in range(count):
        rows = (np.arange(videos) + i * videos) % total
        out.append({n: f[rows] for n, f in feats.items()})
    return out


def npy_body(inputs: dict[str, np.ndarray], layout: list[str]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.concatenate([inputs[n] for n in layout], axis=1))
    return buffer.getvalue()


def json_body(inputs: dict[str, np.ndarray]) -> bytes:
    n = len(next(iter(inputs.values())))
    return json.dumps({"videos": [{"id": str(i), "features": {k: v[i].tolist()
                                                             for k, v in inputs.items()}}
                                  for i in range(n)]}).encode()


def summary(latencies: list[float], seconds: float) -> dict:
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "seconds": seconds,
            "requests_per_s": len(latencies) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def in_process(predictor: OnnxPredictor, requests: list[dict[str, np.ndarray]],
               seconds: float) -> dict:
    for inputs in requests[:3]:
        top_k_of(predictor.predict(inputs), 20)
    latencies, began, i = [], time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        top_k_of(predictor.predict(requests[i % len(requests)]), 20)
        latencies.append(time.perf_counter() - start)
        i += 1
    return summary(latencies, time.perf_counter() - began)


def sequential(base: str, bodies: list[bytes], kind: str, seconds: float) -> dict:
    with httpx.Client(base_url=base, timeout=60) as client:
        for body in bodies[:3]:
            client.post("/predict", content=body, headers={"content-type": kind}
                        ).raise_for_status()
        latencies, began, i = [], time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            start = time.perf_counter()
            client.post("/predict", content=bodies[i % len(bodies)],
                        headers={"content-type": kind}).raise_for_status()
            latencies.append(time.perf_counter() - start)
            i += 1
    return summary(latencies, time.perf_counter() - began)


async def _keep_alive_client(host: str, port: int, requests: list[bytes], began: float,
                             seconds: float, latencies: list[float]) -> None:
    """One connection sending ready-made HTTP/1.1 requests one after another: a load
    generator that costs the shared cores far less than an HTTP library's client."""
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() - began < seconds:
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"status {status}")
            latencies.append(time.perf_counter() - start)
            i += 1
    finally:
        writer.close()


def concurrent(base: str, bodies: list[bytes], kind: str, seconds: float, clients: int
               ) -> dict:
    host, port = base.removeprefix("http://").split(":")
    requests = [(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body for body in bodies]

    async def run() -> dict:
        latencies: list[float] = []
        began = time.perf_counter()
        await asyncio.gather(*(
            _keep_alive_client(host, int(port), requests[k:] + requests[:k], began, seconds,
                               latencies) for k in range(clients)))
        return summary(latencies, time.perf_counter() - began)
    return asyncio.run(run())


class Server:
    """`yt8m serve MODEL --port 0` in a subprocess; the port read from its first line."""

    def __init__(self, model: Path, extra: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "yt8mkit", "serve", str(model), "--port", "0", *extra],
            env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 120
        port = None
        while port is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start: " + "".join(self.lines))
            found = re.search(r"http://127\.0\.0\.1:(\d+)", "".join(self.lines))
            port = int(found.group(1)) if found else None
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{port}"
        for _ in range(400):
            try:
                httpx.get(f"{self.base}/health", timeout=5).raise_for_status()
                return
            except httpx.ConnectError:
                time.sleep(0.05)
        raise RuntimeError("the server does not answer /health")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def health(self) -> dict:
        return httpx.get(f"{self.base}/health", timeout=5).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_serve")
    parser.add_argument("--seconds", type=float, default=3.0, help="Timed seconds a cell.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--videos", default="1,64", help="Videos a request, comma-separated.")
    parser.add_argument("--results", default="serve")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    models = export_models(args.run, args.work)
    cells = []
    for name, path in models.items():
        predictor = OnnxPredictor(path)
        layout = list(predictor.input_names)
        for videos in (int(v) for v in args.videos.split(",")):
            requests = request_inputs(args.run, predictor, videos, 16)
            npy = [npy_body(r, layout) for r in requests]
            jsn = [json_body(r) for r in requests]
            base_cell = {"model": name, "size_bytes": path.stat().st_size, "videos": videos}
            local = in_process(predictor, requests, args.seconds)
            cells.append({**base_cell, "mode": "in-process", **local})
            server = Server(path, [])
            try:
                runs = [("sequential", "npy", sequential(server.base, npy, NPY, args.seconds)),
                        ("sequential", "json", sequential(server.base, jsn, "application/json",
                                                          args.seconds))]
                before = server.health()
                runs.append(("concurrent", "npy", concurrent(server.base, npy, NPY,
                                                             args.seconds, args.clients)))
                after = server.health()
            finally:
                server.stop()
            for mode, form, result in runs:
                cells.append({**base_cell, "mode": mode, "form": form, **result,
                              "ratio_to_in_process":
                                  result["requests_per_s"] / local["requests_per_s"]})
            # The server's counters over the concurrent run: how many videos a call held.
            calls = after["onnx_calls"] - before["onnx_calls"]
            cells[-1]["videos_per_onnx_call"] = (after["videos"] - before["videos"]) / calls
            cells[-1]["largest_batch"] = after["largest_batch"]
            print(f"{name} {videos}: done", file=sys.stderr)
    report = {"run": str(args.run), "seconds": args.seconds, "clients": args.clients,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average": os.getloadavg()},
              "cells": cells}
    header = ["model", "videos/request", "mode", "body", "requests/s", "videos/s",
              "p50 ms", "p99 ms", "vs in-process", "videos a call"]
    rows = [[c["model"], str(c["videos"]),
             c["mode"] + (f" ({args.clients} clients)" if c["mode"] == "concurrent" else ""),
             c.get("form", "-"), f"{c['requests_per_s']:,.0f}",
             f"{c['requests_per_s'] * c['videos']:,.0f}", f"{c['p50_ms']:.2f}",
             f"{c['p99_ms']:.2f}",
             f"{c['ratio_to_in_process']:.2f}×" if "ratio_to_in_process" in c else "1",
             f"{c.get('videos_per_onnx_call', c['videos']):.1f}" if c["mode"] != "sequential"
             else str(c["videos"])]
            for c in cells]
    footer = ["", f"`{' '.join(['.venv/bin/python', 'bench/bench_serve.py', *sys.argv[1:]])}`;"
                  f" {args.seconds:g} s a cell; load average at the end "
                  f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}."]
    write_results(args.results, report, header, rows, footer)


if __name__ == "__main__":
    main()
