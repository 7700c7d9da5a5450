"""Model server throughput and latency against in-process ONNX Runtime, in the same run.

Run by hand: .venv/bin/python bench/model_server.py [--duration 5] [--results bench/RESULTS.md]

1. Trains the torch-mlp digits model (a few seconds) and exports it to a temporary .onnx file;
   then the same for a wider variant (hidden 2048) whose inference costs more than HTTP does.
2. In-process ORT: C threads each call ``session.run`` on one row at a time (what C concurrent
   callers of a library would do), C = 1, 8, 32; one session, 1 intra-op thread like the server.
3. The server (``python -m models.serve``, default settings) on the same file: C keep-alive
   connections, each sending one-row ``POST /predict`` requests back to back. The load generator
   is a lean asyncio client in this process (raw HTTP/1.1, pre-built requests, on uvloop when it
   is installed), so it costs as little CPU as possible; it still shares the machine's cores
   with the server. Variants: the defaults (uvloop), the stdlib asyncio loop, inference in a
   thread.
4. PyTorch eager vs ORT: one-row latency and 32-row batch throughput, one thread each.
5. Server RSS after loading and after the load runs.
Prints a markdown section; ``--results`` writes it as "## Model server" in RESULTS.md,
replacing only that section.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import onnxruntime as ort
import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.kinds import TrainConfig  # noqa: E402
from tasks.train import Trained, export_model, train_model  # noqa: E402

SECTION = "## Model server"
T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    label: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int = 0

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- in-process ORT -----------------------------------------------------------------------------

def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_in_process(path: Path, rows: np.ndarray, concurrency: int, duration: float) -> Run:
    sess = session(path)
    name = sess.get_inputs()[0].name
    stop = time.perf_counter() + duration
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]

    def worker(k: int) -> None:
        lat = per_thread[k]
        i = k
        while True:
            began = time.perf_counter()
            if began >= stop:
                return
            sess.run(None, {name: rows[i % len(rows)][None, :]})
            lat.append(time.perf_counter() - began)
            i += concurrency

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    lat = [x for part in per_thread for x in part]
    return Run("in-process ORT", concurrency, len(lat), elapsed, lat)


# ---- the server ---------------------------------------------------------------------------------

def request_bytes(port: int, row: np.ndarray) -> bytes:
    body = json.dumps({"inputs": [row.tolist()]}).encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _connection(port: int, reqs: list[bytes], stop: float, lat: list[float],
                      offset: int, stride: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors, i = 0, offset
    try:
        while True:
            began = time.perf_counter()
            if began >= stop:
                return errors
            writer.write(reqs[i % len(reqs)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            lat.append(time.perf_counter() - began)
            i += stride
    finally:
        writer.close()


def bench_server(port: int, rows: np.ndarray, concurrency: int, duration: float,
                 label: str) -> Run:
    reqs = [request_bytes(port, r) for r in rows]

    async def main() -> tuple[list[float], int, float]:
        lat: list[float] = []
        began = time.perf_counter()
        errors = await asyncio.gather(*[
            _connection(port, reqs, began + duration, lat, k, concurrency)
            for k in range(concurrency)])
        return lat, sum(errors), time.perf_counter() - began

    lat, errors, elapsed = run_loop(main())
    return Run(label, concurrency, len(lat), elapsed, lat, errors)


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def start_server(model: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "models.serve", "--model-uri", str(model), "--port", str(port),
         "--log-level", "warning", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("model server did not become ready")


def check_predictions(port: int, rows: np.ndarray, path: Path) -> None:
    """The server answers what in-process ORT answers (so the figures compare like with like)."""
    resp = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": rows[:20].tolist()})
    sess = session(path)
    labels, _ = sess.run(None, {sess.get_inputs()[0].name: rows[:20]})
    assert resp.json()["outputs"]["label"] == labels.tolist(), "server and ORT disagree"


def batch_totals(port: int) -> tuple[float, float]:
    """(rows, ORT calls) so far, from the server's batch-size histogram."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    found = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^model_server_batch_size_(sum|count)\{[^}]*\} (\S+)$", text, re.MULTILINE)}
    return found.get("sum", 0.0), found.get("count", 0.0)


# ---- PyTorch eager vs ORT -----------------------------------------------------------------------

def per_call(fn: object, n: int) -> float:
    assert callable(fn)
    for _ in range(min(200, n)):
        fn()
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(n):
            fn()
        timings.append((time.perf_counter() - began) / n)
    return statistics.median(timings)


def torch_vs_ort(trained: Trained, path: Path) -> list[tuple[str, float, float]]:
    torch.set_num_threads(1)
    module = trained.model.model
    module.eval()
    sess = session(path)
    name = sess.get_inputs()[0].name
    out: list[tuple[str, float, float]] = []
    for rows in (1, 32):
        x = trained.split.x_test[:rows]
        xt = torch.from_numpy(x)

        def eager(xt: torch.Tensor = xt) -> None:
            with torch.inference_mode():
                module(xt)

        def onnx(x: np.ndarray = x) -> None:
            sess.run(None, {name: x})

        out.append((f"{rows} row{'s' if rows > 1 else ''} per call",
                    per_call(eager, 2000), per_call(onnx, 2000)))
    return out


# ---- report -------------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores (`nproc`), {cpu}, {mem:.0f} GiB, Python "
            f"{sys.version.split()[0]}, onnxruntime {ort.__version__}, torch {torch.__version__}")


def loadavg() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class ModelResult:
    hidden: int
    inproc: dict[int, Run]
    servers: dict[str, dict[int, Run]]
    batch_means: dict[str, dict[int, float]]
    rss: dict[str, float]
    eager: list[tuple[str, float, float]]


def header(args: argparse.Namespace, load_before: str, load_after: str) -> list[str]:
    return [
        SECTION, "",
        f"`bench/model_server.py` — {dt.date.today().isoformat()}, {machine()}; load average "
        f"before {load_before}, after {load_after}.", "",
        f"Each point runs {args.duration:g} s; every request carries one row (64 pixels). The "
        "server runs with its defaults (max batch 32, max wait 2 ms, 1 ORT thread, inference on "
        "the event loop, uvloop, its own HTTP/1.1 protocol) unless the column says otherwise. "
        "In-process ORT = C Python threads calling `session.run` on one row each. The load "
        "generator (asyncio on uvloop, raw HTTP/1.1) shares the 2 cores with the server. "
        "Ratio = server req/s / in-process ORT req/s at the same concurrency.", "",
    ]


def table(result: ModelResult) -> list[str]:
    inproc, servers, batch_means = result.inproc, result.servers, result.batch_means
    h = result.hidden
    lines = [
        f"### torch-mlp 64 → {h} → {h} → 10"
        + (" (the shipped model)" if h == 128 else " (a wider, heavier variant)"), "",
        "| concurrency | in-process ORT req/s | p50 / p99 ms | " + " | ".join(
            f"{name} req/s | p50 / p99 ms | mean batch | ratio to ORT" for name in servers) + " |",
        "|---|---|---|" + "---|---|---|---|" * len(servers),
    ]
    for c, base in inproc.items():
        cells = [f"{c}", f"{base.throughput:,.0f}", f"{base.pct(0.5):.3f} / {base.pct(0.99):.3f}"]
        for name, runs in servers.items():
            run = runs[c]
            err = f" ({run.errors} errors)" if run.errors else ""
            cells += [f"{run.throughput:,.0f}{err}", f"{run.pct(0.5):.2f} / {run.pct(0.99):.2f}",
                      f"{batch_means[name][c]:.1f}", f"{run.throughput / base.throughput:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    top = max(inproc)
    if "server" in servers and top in servers["server"]:
        ratio = servers["server"][top].throughput / inproc[top].throughput
        per_request = 1e6 / servers["server"][top].throughput
        ort_row = result.eager[-1][2] / 32 * 1e6
        verdict = "met" if ratio >= 0.7 else "not met"
        why = ("per-request HTTP and JSON work, not inference, bounds the server; batching keeps "
               "the ORT share small (one call per mean batch)"
               if ort_row < per_request / 4 else
               "inference dominates and batching (fewer, larger ORT calls) pays off")
        lines += ["", (
            f"Goal at concurrency {top} (issue 14: server >= 0.7 x in-process ORT): **{verdict}** "
            f"({ratio:.2f}). The server handles one request per {per_request:.0f} µs of "
            f"wall time; ONNX Runtime needs {ort_row:.1f} µs per row at batch 32, so {why}."
        )]
    lines += ["", "| PyTorch eager vs ORT (1 thread) | eager µs/call | ORT µs/call | "
              "eager / ORT |", "|---|---|---|---|"]
    for label, t_eager, t_ort in result.eager:
        lines.append(f"| {label} | {t_eager * 1e6:.1f} | {t_ort * 1e6:.1f} | "
                     f"{t_eager / t_ort:.1f}x |")
    lines += ["", "| server RSS | MiB |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in result.rss.items()]
    return [*lines, ""]


def write_results(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def measure(hidden: int, levels: list[int], duration: float) -> ModelResult:
    # a wide variant only exists to weigh inference against HTTP: 1 epoch is enough
    config = TrainConfig(kind="torch-mlp", hidden=hidden, epochs=40 if hidden == 128 else 1)
    trained = train_model(config)
    workdir = Path(tempfile.mkdtemp(prefix="bench-model-server-"))
    path = export_model(trained, workdir, "digits").path
    rows = np.ascontiguousarray(trained.split.x_test)

    inproc = {c: bench_in_process(path, rows, c, duration) for c in levels}
    variants = {"server": [], "server, stdlib asyncio loop": ["--event-loop", "asyncio"],
                "server, inference in a thread": ["--offload-inference"]}
    servers: dict[str, dict[int, Run]] = {}
    means: dict[str, dict[int, float]] = {}
    rss: dict[str, float] = {}
    for name, extra in variants.items():
        proc, port = start_server(path, extra)
        try:
            check_predictions(port, rows, path)
            if name == "server":
                rss["after loading the model"] = psutil.Process(proc.pid).memory_info().rss / 2**20
            servers[name], means[name] = {}, {}
            for c in levels:
                rows0, calls0 = batch_totals(port)
                servers[name][c] = bench_server(port, rows, c, duration, name)
                rows1, calls1 = batch_totals(port)
                means[name][c] = (rows1 - rows0) / max(calls1 - calls0, 1.0)
            if name == "server":
                rss["after the load runs"] = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(30)
    return ModelResult(hidden, inproc, servers, means, rss, torch_vs_ort(trained, path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--hidden", default="128,2048",
                    help="hidden widths to measure (128 is the shipped model)")
    ap.add_argument("--results", type=Path, help="write the section into this RESULTS.md")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    load_before = loadavg()
    results = [measure(int(h), levels, args.duration) for h in args.hidden.split(",")]
    lines = header(args, load_before, loadavg())
    for result in results:
        lines += table(result)
    section = "\n".join(lines)
    print(section)
    if args.results:
        write_results(args.results, section)
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
