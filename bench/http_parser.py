"""The model server on llhttp (httptools) against its former hand-written HTTP/1.1 parser, side
by side in one run: what the library costs in throughput (issue 14: take it unless it costs more
than 15 % at 32 clients).

Run by hand: .venv/bin/python bench/http_parser.py [--duration 4] [--rounds 2] [--results
bench/RESULTS.md]

1. The hand-written parser is the tree at ``--baseline`` (default: the commit before llhttp came
   in), extracted with ``git archive`` into a temporary directory and run from there; llhttp is
   the working tree. Same model (torch-mlp digits, exported once), same flags, same load.
2. Both servers run at once (the idle one costs nothing); every point is measured on one and
   then at once on the other, in alternating order from round to round, so that drift in the
   shared machine's load falls on both; each figure is the median over rounds.
3. Two workloads at C = 1, 8, 32 keep-alive clients sending one-row ``POST /predict``: "same
   head" (what a client library sends: only the body changes, so the head cache answers) and
   "distinct heads" (an ``X-Request-Id`` that changes every request: every head is parsed).
4. In-process: microseconds to parse one head and its framing, each parser, no cache.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import model_server as ms  # noqa: E402
from results import write_section  # noqa: E402

from models.kinds import TrainConfig  # noqa: E402
from models.serve import wire  # noqa: E402
from tasks.train import export_model, train_model  # noqa: E402

SECTION = "## Model server: llhttp against the hand-written parser"
PARSERS = ("hand-written", "llhttp")
WORKLOADS = ("same head", "distinct heads")


def baseline_rev() -> str:
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--",
                            "models/serve/wire.py"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    if not added:
        raise SystemExit("models/serve/wire.py is not committed: pass --baseline REV")
    return added[-1] + "~1"


def extract(rev: str) -> Path:
    """The ``models`` package at ``rev``, in a directory of its own."""
    target = Path(tempfile.mkdtemp(prefix="bench-http-baseline-"))
    archive = subprocess.run(["git", "archive", rev, "models"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def start(model: Path, tree: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = ms.free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "models.serve", "--model-uri", str(model), "--port", str(port),
         "--log-level", "warning"], cwd=tree, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server from {tree} did not become ready")


def requests(port: int, rows: np.ndarray, distinct: bool, n: int = 4096) -> list[bytes]:
    out = []
    for i in range(n):
        body = json.dumps({"inputs": [rows[i % len(rows)].tolist()]}).encode()
        rid = f"X-Request-Id: {i:08x}\r\n" if distinct else ""
        out.append((f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                    f"application/json\r\n{rid}Content-Length: {len(body)}\r\n\r\n").encode()
                   + body)
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


def parse_cost(baseline: Path, n: int = 20000) -> dict[str, float]:
    """µs per head (request line, 5 fields, framing), no cache, each parser."""
    old = load_module("baseline_http", baseline / "models/serve/http.py")
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1\r\n"
            b"Accept: */*\r\nContent-Type: application/json\r\nContent-Length: 321")

    def hand_written() -> None:
        old._framing(old.parse_head(head), 1 << 20)

    def llhttp() -> None:
        wire.framing(wire.parse_head(head), 1 << 20)

    cost = {}
    for name, fn in (("hand-written", hand_written), ("llhttp", llhttp)):
        for _ in range(1000):
            fn()
        began = time.perf_counter()
        for _ in range(n):
            fn()
        cost[name] = (time.perf_counter() - began) / n * 1e6
    return cost


class _Sink:
    """A transport that keeps nothing: the protocol layer alone is timed."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def protocol_cost(module: Any, distinct: bool, n: int = 20000) -> float:
    """µs per request through a connection's ``data_received`` (pipelined requests, a handler
    that answers at once, no socket): parsing, framing, the head cache, answer bytes."""
    body = b'{"inputs": [[' + b"0.0, " * 63 + b"0.0]]}"

    def raw(i: int) -> bytes:
        rid = b"X-Request-Id: %08x\r\n" % i if distinct else b""
        return (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: "
                b"application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (rid, len(body), body))

    data = b"".join(raw(i) for i in range(n))
    pieces = [data[i:i + (64 << 10)] for i in range(0, len(data), 64 << 10)]
    answer = module.Response(200, b'{"outputs": {"label": [3]}}')

    async def run() -> float:
        server = module.HttpServer(module.Limits())
        server.route("POST", "/predict", lambda request: answer)
        conn = module._Connection(server)
        conn.connection_made(_Sink())
        began = time.perf_counter()
        for piece in pieces:
            conn.data_received(piece)
        return (time.perf_counter() - began) / n * 1e6

    return min(asyncio.run(run()) for _ in range(5))


def load_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module: Any = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--baseline", help="git revision of the hand-written parser")
    ap.add_argument("--results", type=Path, help="append the section to this RESULTS.md")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    rev = args.baseline or baseline_rev()
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    trees = {"hand-written": extract(rev), "llhttp": ROOT}
    load_before = ms.loadavg()

    trained = train_model(TrainConfig(kind="torch-mlp", hidden=128, epochs=40))
    model = export_model(trained, Path(tempfile.mkdtemp(prefix="bench-http-")), "digits").path
    rows = np.ascontiguousarray(trained.split.x_test)
    runs: dict[tuple[str, str, int], list[ms.Run]] = {}
    cpu: dict[tuple[str, str, int], list[float]] = {}  # server CPU µs per request
    servers = {parser: start(model, trees[parser]) for parser in PARSERS}
    try:
        for _, port in servers.values():
            ms.check_predictions(port, rows, model)
        for k in range(args.rounds):
            for workload in WORKLOADS:
                for c in levels:
                    # both servers are up; each point is measured on one, then the other
                    for parser in PARSERS if k % 2 == 0 else PARSERS[::-1]:
                        port = servers[parser][1]
                        reqs = requests(port, rows, workload == "distinct heads")
                        load(port, reqs, c, 0.3)  # warm-up
                        process = psutil.Process(servers[parser][0].pid)
                        before = process.cpu_times()
                        run = load(port, reqs, c, args.duration)
                        after = process.cpu_times()
                        used = (after.user - before.user) + (after.system - before.system)
                        runs.setdefault((parser, workload, c), []).append(run)
                        cpu.setdefault((parser, workload, c), []).append(
                            used / max(run.requests, 1) * 1e6)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    cost = parse_cost(trees["hand-written"])
    from models.serve import http as current
    baseline = load_module("baseline_http", trees["hand-written"] / "models/serve/http.py")
    layer = {(parser, workload): protocol_cost(module, workload == "distinct heads")
             for parser, module in (("hand-written", baseline), ("llhttp", current))
             for workload in WORKLOADS}
    load_after = ms.loadavg()

    def median(parser: str, workload: str, c: int) -> ms.Run:
        found = sorted(runs[(parser, workload, c)], key=lambda r: r.throughput)
        return found[len(found) // 2]

    lines = [
        SECTION, "",
        f"`bench/http_parser.py` — {dt.date.today().isoformat()}, {ms.machine()}; load "
        f"average before {load_before}, after {load_after} (the machine is shared). "
        f"Hand-written = the tree at `{sha}`; llhttp = httptools "
        f"{importlib.import_module('httptools').__version__}. {args.rounds} alternating rounds of "
        f"{args.duration:g} s per point, median shown; one-row `POST /predict`, torch-mlp "
        "64→128→128→10, server defaults (uvloop, max batch 32, max wait 2 ms).", "",
        "Server CPU per request (user + system time of the server process / requests) is the "
        "figure contention disturbs least; on a loaded machine throughput also measures the "
        "neighbours.", "",
        "| workload | clients | hand-written req/s | p50 / p99 ms | CPU µs/req | llhttp req/s | "
        "p50 / p99 ms | CPU µs/req | req/s llhttp / hand-written | CPU hand-written / llhttp "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratio32: dict[str, float] = {}
    for workload in WORKLOADS:
        for c in levels:
            a, b = median("hand-written", workload, c), median("llhttp", workload, c)
            ca = statistics.median(cpu[("hand-written", workload, c)])
            cb = statistics.median(cpu[("llhttp", workload, c)])
            ratio = b.throughput / a.throughput
            if c == 32:
                ratio32[workload] = ca / cb
            lines.append(
                f"| {workload} | {c} | {a.throughput:,.0f} | {a.pct(0.5):.2f} / {a.pct(0.99):.2f}"
                f" | {ca:.1f} | {b.throughput:,.0f} | {b.pct(0.5):.2f} / {b.pct(0.99):.2f} | "
                f"{cb:.1f} | {ratio:.3f} | {ca / cb:.3f} | {a.errors} / {b.errors} |")
    lines += [
        "", "| parse one head + framing, no cache | µs |", "|---|---|",
        *(f"| {name} | {us:.2f} |" for name, us in cost.items()), "",
        "| protocol layer per request (pipelined, no socket, best of 5) | hand-written µs | "
        "llhttp µs | llhttp / hand-written |", "|---|---|---|---|",
        *(f"| {w} | {layer[('hand-written', w)]:.2f} | {layer[('llhttp', w)]:.2f} | "
          f"{layer[('llhttp', w)] / layer[('hand-written', w)]:.2f} |" for w in WORKLOADS), "",
    ]
    if 32 in levels:
        worst = min(ratio32.values())
        verdict = "taken" if worst >= 0.85 else "NOT taken (costs more than 15 %)"
        lines.append(f"Decision rule (issue 14): llhttp is {verdict}: at 32 clients its server "
                     "CPU per request allows "
                     + ", ".join(f"{r:.2f}x ({w})" for w, r in ratio32.items())
                     + " of the hand-written parser's throughput (threshold 0.85x).")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.results:
        write_section(args.results, SECTION, section)
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
