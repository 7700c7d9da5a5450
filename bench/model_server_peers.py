"""The model server against its peers, same model, same machine, same run: ``mlflow models
serve`` (FastAPI on uvicorn: what MLflow users run) and a plain uvicorn + httptools ASGI app
doing the same ONNX Runtime call through the same micro-batcher (bench/asgi_peer.py), with
in-process ONNX Runtime as the ceiling.

Run by hand: .venv/bin/python bench/model_server_peers.py [--duration 3] [--workers 2]
[--server-workers 2] [--results bench/RESULTS.md]

1. Trains the torch-mlp digits model, exports it to .onnx and saves it as an MLflow model
   (``mlflow.onnx.save_model``: the artifact a registered version holds).
2. Starts the servers at once on loopback: ours (``python -m models.serve``, defaults, once
   with one worker and once with ``--workers N`` when ``--server-workers`` N > 1),
   ``uvicorn bench.asgi_peer:app --http httptools --loop uvloop`` and ``mlflow models serve
   --env-manager local -w N``. Every point is measured on in-process ORT, then on each server
   in turn.
3. C = 1, 8, 32 keep-alive clients (the raw HTTP/1.1 load generator of bench/model_server.py),
   one row per request: ``POST /predict {"inputs": [[...]]}`` for ours and the ASGI peer,
   ``POST /invocations {"inputs": {"input": [[...]]}}`` for MLflow.
4. RSS of each server's whole process tree after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import model_server as ms  # noqa: E402
from results import write_section  # noqa: E402

from models.kinds import TrainConfig  # noqa: E402
from tasks.train import export_model, train_model  # noqa: E402

SECTION = "## Model server against its peers"
OURS, ASGI, MLFLOW = "this server", "uvicorn + httptools ASGI", "mlflow models serve"
OURS_N = "this server, {n} workers"


def wait_ready(proc: subprocess.Popen[bytes], url: str, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} (its log is in the "
                             "bench's temporary directory)")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{name} did not become ready at {url}")


def start_all(onnx_path: Path, mlflow_dir: Path, workers: int, ours_workers: int, logs: Path
              ) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "PEER_MODEL": str(onnx_path), "PYTHONPATH": str(ROOT)}
    ours_n = OURS_N.format(n=ours_workers)
    names = [OURS, *([ours_n] if ours_workers > 1 else []), ASGI, MLFLOW]
    ports = {name: ms.free_port() for name in names}
    ours = [sys.executable, "-m", "models.serve", "--model-uri", str(onnx_path),
            "--log-level", "warning"]
    commands = {
        OURS: [*ours, "--port", str(ports[OURS]), "--workers", "1"],
        **({ours_n: [*ours, "--port", str(ports[ours_n]), "--workers", str(ours_workers)]}
           if ours_workers > 1 else {}),
        ASGI: [sys.executable, "-m", "uvicorn", "bench.asgi_peer:app", "--http", "httptools",
               "--loop", "uvloop", "--host", "127.0.0.1", "--port", str(ports[ASGI]),
               "--log-level", "warning", "--no-access-log"],
        MLFLOW: [str(Path(bindir) / "mlflow"), "models", "serve", "-m", str(mlflow_dir),
                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports[MLFLOW]),
                 "-w", str(workers)],
    }
    ready = {name: "/readyz" for name in names} | {MLFLOW: "/ping"}
    servers = {}
    for name, command in commands.items():
        # a log file, not a pipe: a pipe nobody reads fills up and stops the server
        log = (logs / f"{name.replace(' ', '-').replace(',', '')}.log").open("wb")
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=log)
        servers[name] = (proc, ports[name])
    for name, (proc, port) in servers.items():
        wait_ready(proc, f"http://127.0.0.1:{port}{ready[name]}", name)
    return servers


def requests(name: str, port: int, rows: np.ndarray, n: int = 2048) -> list[bytes]:
    out = []
    for i in range(n):
        row = [rows[i % len(rows)].tolist()]
        path, payload = ("/invocations", {"inputs": {"input": row}}) if name == MLFLOW else (
            "/predict", {"inputs": row})
        body = json.dumps(payload).encode()
        out.append((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    return out


def load(port: int, reqs: list[bytes], concurrency: int, duration: float) -> ms.Run:
    async def main() -> tuple[list[float], int, float]:
        lat: list[float] = []
        began = time.perf_counter()
        errors = await asyncio.gather(*[
            ms._connection(port, reqs, began + duration, lat, k, concurrency)
            for k in range(concurrency)])
        return lat, sum(errors), time.perf_counter() - began

    lat, errors, elapsed = ms.run_loop(main())
    return ms.Run("", concurrency, len(lat), elapsed, lat, errors)


def tree_cpu(proc: subprocess.Popen[bytes]) -> float:
    """User + system seconds of a server's whole process tree (MLflow's workers included)."""
    parent = psutil.Process(proc.pid)
    total = 0.0
    for p in [parent, *parent.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def tree_rss(proc: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(proc.pid)
    total = 0
    for p in [parent, *parent.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--workers", type=int, default=2, help="mlflow models serve -w")
    ap.add_argument("--server-workers", type=int, default=2,
                    help="also measure this server with --workers N (1: only one worker)")
    ap.add_argument("--results", type=Path, help="append the section to this RESULTS.md")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    load_before = ms.loadavg()

    import mlflow.onnx

    trained = train_model(TrainConfig(kind="torch-mlp", hidden=128, epochs=40))
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    onnx_path = export_model(trained, work, "digits").path
    mlflow_dir = work / "mlflow-model"
    mlflow.onnx.save_model(onnx.load(str(onnx_path)), str(mlflow_dir),
                           pip_requirements=["onnxruntime", "numpy"])
    rows = np.ascontiguousarray(trained.split.x_test)

    inproc: dict[int, ms.Run] = {}
    servers = start_all(onnx_path, mlflow_dir, args.workers, args.server_workers, work)
    runs: dict[str, dict[int, ms.Run]] = {name: {} for name in servers}
    cpu: dict[str, dict[int, float]] = {name: {} for name in servers}  # µs per request
    rss: dict[str, float] = {}
    try:
        ms.check_predictions(servers[OURS][1], rows, onnx_path)
        for c in levels:
            # the ceiling is measured at each point, just before the servers (idle servers
            # cost nothing), so that drift in the machine's load falls on both sides of a ratio
            inproc[c] = ms.bench_in_process(onnx_path, rows, c, args.duration)
            for name, (_, port) in servers.items():
                reqs = requests(name, port, rows)
                load(port, reqs, c, 0.3)  # warm-up
                before = tree_cpu(servers[name][0])
                runs[name][c] = load(port, reqs, c, args.duration)
                used = tree_cpu(servers[name][0]) - before
                cpu[name][c] = used / max(runs[name][c].requests, 1) * 1e6
        rss = {name: tree_rss(proc) for name, (proc, _) in servers.items()}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    names = list(servers)
    ours = [n for n in names if n.startswith(OURS)]
    lines = [
        SECTION, "",
        f"`bench/model_server_peers.py` — {dt.date.today().isoformat()}, {ms.machine()}; load "
        f"average before {load_before}, after {ms.loadavg()} (the machine is shared: compare "
        f"ratios, which are measured point by point in one run). Model: torch-mlp "
        f"64→128→128→10, one row per request, {args.duration:g} s per point; "
        f"`mlflow models serve -w {args.workers}` (mlflow {mlflow.__version__}); the ASGI peer "
        "uses the server's own micro-batcher (max batch 32, 2 ms) and orjson. CPU µs/req = "
        "user + system time of the server's process tree per request, the figure the "
        "machine's other load disturbs least; a multi-worker server's tree includes its "
        "supervising parent.", "",
        "| clients | in-process ORT req/s | " + " | ".join(
            f"{n} req/s | p50 / p99 ms | CPU µs/req | errors" for n in names) + " | "
        + " | ".join(f"{o} / ORT | {o} / ASGI | {o} / mlflow" for o in ours) + " |",
        "|---|---|" + "---|---|---|---|" * len(names) + "---|---|---|" * len(ours),
    ]
    for c in levels:
        cells = [f"{c}", f"{inproc[c].throughput:,.0f}"]
        for n in names:
            r = runs[n][c]
            cells += [f"{r.throughput:,.0f}", f"{r.pct(0.5):.2f} / {r.pct(0.99):.2f}",
                      f"{cpu[n][c]:.0f}", f"{r.errors}"]
        for o in ours:
            ours_rps = runs[o][c].throughput
            cells += [f"{ours_rps / inproc[c].throughput:.2f}",
                      f"{ours_rps / runs[ASGI][c].throughput:.2f}",
                      f"{ours_rps / runs[MLFLOW][c].throughput:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    top = max(levels)
    lines.append("")
    for o in ours:
        ratio = runs[o][top].throughput / inproc[top].throughput
        ahead = runs[o][top].throughput / runs[MLFLOW][top].throughput
        verdict = "met" if ratio >= 0.7 and ahead >= 10 else "NOT met"
        lines.append(f"Goal at {top} clients, {o} (issue 14: >= 0.7x in-process ORT, >= 10x "
                     f"`mlflow models serve`): **{verdict}** ({ratio:.2f}x ORT, {ahead:.1f}x "
                     f"mlflow; {cpu[o][top]:.0f} CPU µs per request).")
    lines += ["", "| RSS after the load (process tree) | MiB |", "|---|---|",
              *(f"| {n} | {v:.0f} |" for n, v in rss.items()), ""]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.results:
        write_section(args.results, SECTION, section)
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
