"""`yt8m serve`: the HTTP API over an exported model, through FastAPI's test client and
once through the real uvicorn server in a subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yt8mkit.cli.main import app
from yt8mkit.data.predictions import top_k_of
from yt8mkit.data.vocabulary import load_vocabulary
from yt8mkit.export import OnnxPredictor, export_onnx
from yt8mkit.models import create_model
from yt8mkit.serve import ServedModel, ServeSettings, create_app

DIMS = {"rgb": 8, "audio": 4}
CLASSES = 6
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    vocabulary = root / "vocabulary.csv"
    vocabulary.write_text("Index,Name\n" + "".join(f"{i},label {i}\n" for i in range(CLASSES)))
    torch.manual_seed(0)
    model = create_model("logistic", CLASSES, DIMS, {})
    export_onnx(model, DIMS, root / "m.onnx", vocabulary=load_vocabulary(vocabulary))
    return root / "m.onnx"


def _videos(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((n, width)).astype(np.float32)
            for name, width in DIMS.items()}


def _json(inputs: dict[str, np.ndarray], ids: bool = True) -> bytes:
    n = len(inputs["rgb"])
    videos = [{**({"id": f"v{i}"} if ids else {}),
               "features": {k: v[i].tolist() for k, v in inputs.items()}} for i in range(n)]
    return json.dumps({"videos": videos}).encode()


def _npy(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    return buffer.getvalue()


def _rows(inputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([inputs["rgb"], inputs["audio"]], axis=1)  # the layout's order


def _post(client, body: bytes, kind: str, query: str = "", **headers: str):
    return client.post(f"/predict{query}", content=body,
                       headers={"content-type": kind, **headers})


@pytest.fixture(scope="module")
def client(model_path: Path):
    app = create_app(ServedModel(model_path), ServeSettings(max_videos=50, top_k=3))
    with TestClient(app) as test_client:
        yield test_client


def test_metadata_and_health_come_from_the_onnx_file(client, model_path: Path, tmp_path):
    meta = client.get("/metadata").json()
    assert meta["num_classes"] == CLASSES and meta["inputs"] == DIMS
    assert meta["layout"] == ["rgb", "audio"] and meta["width"] == 12
    assert meta["vocabulary"] == {str(i): f"label {i}" for i in range(CLASSES)}
    assert client.get("/health").json()["status"] == "ok"
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    # --vocabulary replaces the model's own names; one naming a class it lacks is refused.
    other = tmp_path / "other.csv"
    other.write_text("Index,Name\n0,zero\n")
    assert ServedModel(model_path, load_vocabulary(other)).vocabulary.names == {0: "zero"}
    other.write_text("Index,Name\n6,beyond\n")
    with pytest.raises(Exception, match="names class 6, the model has 6 classes"):
        ServedModel(model_path, load_vocabulary(other))


def test_every_form_answers_what_onnx_runtime_computes(client, model_path: Path):
    inputs = _videos(7)
    expected_idx, expected_scores = top_k_of(OnnxPredictor(model_path).predict(inputs), 3)
    answers = {
        "json": _post(client, _json(inputs), "application/json"),
        "npy": _post(client, _npy(_rows(inputs)), "application/x-npy"),
        "npy float64": _post(client, _npy(_rows(inputs).astype(">f8")), "application/x-npy"),
        "raw": _post(client, _rows(inputs).astype("<f4").tobytes(), "application/octet-stream",
                     **{"x-shape": "7,12"}),
    }
    for form, response in answers.items():
        assert response.status_code == 200, (form, response.text)
        videos = response.json()["videos"]
        assert len(videos) == 7
        for row, video in enumerate(videos):
            assert video["id"] == (f"v{row}" if form == "json" else str(row))
            assert [label["index"] for label in video["labels"]] == expected_idx[row].tolist()
            assert [label["name"] for label in video["labels"]] == \
                [f"label {i}" for i in expected_idx[row]]
            np.testing.assert_allclose([label["score"] for label in video["labels"]],
                                       expected_scores[row], rtol=1e-6)
    one = _post(client, _npy(_rows(inputs)[0]), "application/x-npy", "?top_k=6")
    assert one.status_code == 200 and len(one.json()["videos"][0]["labels"]) == 6


def _bad_requests() -> list[tuple[str, bytes, dict[str, str], str, int, str]]:
    good = _videos(2)
    short = {"rgb": good["rgb"][:, :5], "audio": good["audio"]}
    nan = {k: v.copy() for k, v in good.items()}
    nan["audio"][1, 2] = np.nan
    inf_rows = _rows(good)
    inf_rows[1, 0] = np.inf
    ragged = json.dumps({"videos": [{"features": {"rgb": [0.0] * 8, "audio": [0.0] * 4,
                                                  "depth": [1.0]}}]}).encode()
    json_kind = {"content-type": "application/json"}
    npy_kind = {"content-type": "application/x-npy"}
    raw_kind = {"content-type": "application/octet-stream"}
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return [
        ("wrong width (JSON)", _json(short), json_kind, "", 422,
         "video 0 ('v0'): rgb has 5 values, the model reads 8"),
        ("missing feature", json.dumps({"videos": [{"features": {"rgb": [0.0] * 8}}]}).encode(),
         json_kind, "", 422, "missing ['audio']"),
        ("unknown feature", ragged, json_kind, "", 422, "unknown ['depth']"),
        ("NaN (JSON)", _json(nan), json_kind, "", 422,
         "video 1 ('v1'): audio holds NaN, Inf"),
        ("Inf (.npy)", _npy(inf_rows), npy_kind, "", 422, "video 1: rgb holds NaN, Inf"),
        ("beyond float32 (JSON)", json.dumps({"videos": [{"features": {
            "rgb": [1e39] + [0.0] * 7, "audio": [0.0] * 4}}]}).encode(), json_kind, "", 422,
         "video 0: rgb holds NaN, Inf or a value beyond float32"),
        ("wrong width (.npy)", _npy(_rows(good)[:, :11]), npy_kind, "", 422,
         "an array of shape (2, 11): the model reads (videos, 12) rows"),
        ("ints (.npy)", _npy(np.zeros((2, 12), np.int32)), npy_kind, "", 422, "floats are needed"),
        ("pickled objects (.npy)", pickled.getvalue(), npy_kind, "", 400, "not a NumPy .npy"),
        ("garbage (.npy)", b"\x93NUMPY garbage", npy_kind, "", 400, "not a NumPy .npy"),
        ("3-d (.npy)", _npy(np.zeros((2, 3, 12), np.float32)), npy_kind, "", 422,
         "shape (2, 3, 12)"),
        ("empty (.npy)", _npy(np.zeros((0, 12), np.float32)), npy_kind, "", 422, "no videos"),
        ("too many videos", _json(_videos(51)), json_kind, "", 413,
         "51 videos in one request, at most 50"),
        ("too many bytes", b"[" * (2 << 20), json_kind, "", 413, "at most"),
        ("malformed JSON", b'{"videos": [', json_kind, "", 400, "bad JSON request"),
        ("not an object", b"[1, 2]", json_kind, "", 422, "bad JSON request"),
        ("no videos", b'{"videos": []}', json_kind, "", 422, "at least 1 item"),
        ("strings for floats", json.dumps({"videos": [{"features": {
            "rgb": ["1"] * 8, "audio": [0.0] * 4}}]}).encode(), json_kind, "", 422,
         "videos.0.features.rgb.0: Input should be a valid number"),
        ("no content type", _json(good), {}, "", 415, "send one of application/json"),
        ("form content type", b"a=1", {"content-type": "application/x-www-form-urlencoded"},
         "", 415, "content type 'application/x-www-form-urlencoded'"),
        ("raw without X-Shape", _rows(good).tobytes(), raw_kind, "", 400,
         "needs the header X-Shape"),
        ("raw, X-Shape off", _rows(good).tobytes(), {**raw_kind, "x-shape": "3,12"}, "", 400,
         "X-Shape 3,12 needs 144 bytes of float32, the body has 96"),
        ("raw, X-Shape garbage", _rows(good).tobytes(), {**raw_kind, "x-shape": "two"}, "", 400,
         "expected VIDEOS,WIDTH"),
        ("raw, other layout", _rows(good)[:, :8].tobytes(), {**raw_kind, "x-shape": "2,8"}, "",
         422, "shape (2, 8)"),
        ("top_k 0", _json(good), json_kind, "?top_k=0", 422, ""),
        ("top_k beyond classes", _json(good), json_kind, "?top_k=7", 422, ""),
    ]


@pytest.mark.parametrize("case", _bad_requests(), ids=lambda case: case[0])
def test_bad_requests_get_a_4xx_with_a_clear_message(client, case):
    _, body, headers, query, status, message = case
    response = client.post(f"/predict{query}", content=body, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    # FastAPI's own query checks answer a list of errors; ours, one message.
    assert message in detail if isinstance(detail, str) else message == ""
    # ... and the server goes on answering.
    good = _post(client, _npy(_rows(_videos(1))), "application/x-npy")
    assert good.status_code == 200


class _SlowModel(ServedModel):
    """Each ONNX Runtime call takes 50 ms longer, so that concurrent requests queue."""

    calls: list[int]

    def probabilities(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.calls.append(len(inputs["rgb"]))
        time.sleep(0.05)
        return super().probabilities(inputs)


def test_concurrent_requests_share_onnx_runtime_calls(model_path: Path):
    model = _SlowModel(model_path)
    model.calls = []
    settings = ServeSettings(max_batch=16, max_wait_ms=20, top_k=CLASSES)
    requests = [_videos(1 + i % 4, seed=i) for i in range(24)]
    expected = [top_k_of(OnnxPredictor(model_path).predict(r), CLASSES)[0] for r in requests]
    with TestClient(create_app(model, settings)) as client, ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(
            lambda r: _post(client, _npy(_rows(r)), "application/x-npy"), requests))
        health = client.get("/health").json()
    for answer, want in zip(answers, expected):
        assert answer.status_code == 200
        got = [[label["index"] for label in v["labels"]] for v in answer.json()["videos"]]
        assert got == want.tolist()  # each request gets its own rows back
    videos = sum(len(r["rgb"]) for r in requests)
    assert sum(model.calls) == videos == health["videos"] and health["requests"] == 24
    assert len(model.calls) < 24 and max(model.calls) <= 16, model.calls


def test_a_lone_client_waits_for_nobody(model_path: Path):
    # max_wait 2 s: were a lone request held for it, this would take 5 × 2 s.
    settings = ServeSettings(max_wait_ms=2000)
    with TestClient(create_app(ServedModel(model_path), settings)) as client:
        began = time.perf_counter()
        for seed in range(5):
            assert _post(client, _npy(_rows(_videos(2, seed))), "application/x-npy"
                         ).status_code == 200
        assert time.perf_counter() - began < 2.0


def _free_port_taken() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _yt8m(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "yt8mkit", *args], env=env,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_the_real_server_on_a_free_port(model_path: Path):
    server = _yt8m("serve", str(model_path), "--port", "0", "--top-k", "2")
    try:
        lines: list[str] = []
        port = None

        def read() -> None:
            for line in server.stderr:
                lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline and server.poll() is None:
            found = re.search(r"http://127\.0\.0\.1:(\d+)", "".join(lines))
            port = int(found.group(1)) if found else None
            time.sleep(0.05)
        assert port is not None, "".join(lines)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):  # the line comes just before uvicorn starts serving
            try:
                health = httpx.get(f"{base}/health", timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert health.json()["status"] == "ok"
        inputs = _videos(3)
        answer = httpx.post(f"{base}/predict", content=_npy(_rows(inputs)),
                            headers={"content-type": "application/x-npy"}, timeout=10)
        want = top_k_of(OnnxPredictor(model_path).predict(inputs), 2)[0]
        assert [[label["index"] for label in v["labels"]] for v in answer.json()["videos"]] \
            == want.tolist()
        # Keep-alive answers come without the 40 ms of a delayed ACK (TCP_NODELAY).
        with httpx.Client(base_url=base, timeout=10) as keep_alive:
            times = []
            for _ in range(9):
                began = time.perf_counter()
                keep_alive.post("/predict", content=_npy(_rows(inputs)),
                                headers={"content-type": "application/x-npy"})
                times.append(time.perf_counter() - began)
        # Without it every answer after the first takes 40 ms or more; the fastest of them
        # is a measure that a busy machine does not spoil.
        assert min(times[1:]) < 0.03, times
        bad = httpx.post(f"{base}/predict", content=b"{", timeout=10,
                         headers={"content-type": "application/json"})
        assert bad.status_code == 400 and server.poll() is None
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    # uvicorn shuts down cleanly, then re-raises the signal: a shell's Ctrl-C exit; on a
    # busy machine the signal can also land where uvicorn ends with 0 (seen once in CI).
    assert server.returncode in (0, 130, -signal.SIGINT), "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_serve_refuses_a_port_in_use_and_a_missing_model(model_path: Path, tmp_path: Path):
    # Both refused before uvicorn starts, so in this process.
    taken = _free_port_taken()
    try:
        port = str(taken.getsockname()[1])
        busy = CliRunner().invoke(app, ["serve", str(model_path), "--port", port])
        assert busy.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.output
    finally:
        taken.close()
    missing = CliRunner().invoke(app, ["serve", str(tmp_path / "none.onnx"), "--port", "0"])
    assert missing.exit_code == 1 and "none.onnx: no such model file" in missing.output
