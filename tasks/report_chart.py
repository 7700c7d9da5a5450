"""Pictures for the release report: for each analysis step, canary against stable over the step
for each judged metric, and where the sequential test stood; for the release, the weight of each
step and the verdict it got. PNGs drawn with matplotlib's Agg canvas (no display, no pyplot
global state: safe in a worker's threads), small enough to embed in the markdown artifact as a
``data:`` URI (the Prefect UI's markdown renderer turns ``![](data:image/png;base64,…)`` into an
``<img>``), with a link per metric to its Prometheus graph.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_BYTES = 60_000
MAX_METRICS = 6
STABLE, CANARY, ALPHA = "#4c72b0", "#dd8452", "#c44e52"
VERDICT_COLOURS = {"PASS": "#55a868", "MARGINAL": "#ccb974", "FAIL": "#c44e52",
                   "ERROR": "#8c8c8c"}


def _chunks(side: dict[str, Any]) -> list[list[float]]:
    """Values of each series of a side (a query may match several: one per replica)."""
    values = [float(v) for v in side.get("values") or [] if v is not None]
    n = int(side.get("series") or 1)
    if n > 1 and values and len(values) % n == 0:
        size = len(values) // n
        return [values[i * size:(i + 1) * size] for i in range(n)]
    return [values] if values else []


def _plot_side(ax: Axes, side: dict[str, Any], step_s: float, colour: str, label: str) -> None:
    for i, values in enumerate(_chunks(side)):
        ax.plot([k * step_s for k in range(len(values))], values, color=colour, linewidth=1.2,
                alpha=1.0 if i == 0 else 0.6, label=label if i == 0 else None)


def _metric_panel(ax: Axes, name: str, data: dict[str, Any], metric: dict[str, Any]) -> None:
    step_s = float(data.get("step_seconds") or 1.0)
    _plot_side(ax, data.get("baseline") or {}, step_s, STABLE, "stable")
    _plot_side(ax, data.get("canary") or {}, step_s, CANARY, "canary")
    cls = metric.get("classification", "")
    ax.set_title(f"{name}: {cls}" if cls else name, fontsize=8, loc="left",
                 color=VERDICT_COLOURS.get({"HIGH": "FAIL", "LOW": "FAIL"}.get(cls, cls),
                                           "black"))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left", frameon=False)


def _sequential_panel(ax: Axes, checks: Sequence[dict[str, Any]]) -> None:
    alpha = None
    for check in checks:
        history = [(float(t), float(p)) for t, p in check.get("history") or []]
        if history:
            ax.step([t for t, _ in history], [max(p, 1e-6) for _, p in history], where="post",
                    linewidth=1.2, label=str(check.get("name", "")))
        result = check.get("result") or {}
        alpha = result.get("alpha", alpha)
        if check.get("crossed_at") is not None:
            ax.axvline(float(check["crossed_at"]), color=ALPHA, linestyle=":", linewidth=1)
    if alpha:
        ax.axhline(float(alpha), color=ALPHA, linestyle="--", linewidth=1,
                   label=f"alpha {alpha:g}")
    ax.set_yscale("log")
    ax.set_title("sequential tests: anytime-valid p (crossing alpha ends the step)", fontsize=8,
                 loc="left")
    ax.set_xlabel("seconds into the step", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="lower left", frameon=False)


def _png(fig: Figure) -> bytes:
    """The smallest of a few resolutions that fits MAX_BYTES."""
    FigureCanvasAgg(fig)  # Agg, whatever backend the process chose
    data = b""
    for dpi in (80, 64, 48, 36):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        data = buf.getvalue()
        if len(data) < MAX_BYTES:
            break
    return data


def step_chart(step: dict[str, Any]) -> bytes | None:
    """PNG of one analysis step (a ``StepAnalysis.to_dict()``), or None with nothing to draw."""
    series: dict[str, Any] = step.get("series") or {}
    metrics = {m.get("name"): m for m in step.get("metrics") or []}
    names = [n for n in series if _chunks(series[n].get("baseline") or {})
             or _chunks(series[n].get("canary") or {})][:MAX_METRICS]
    checks = [c for c in step.get("sequential") or [] if c.get("history")]
    rows = len(names) + (1 if checks else 0)
    if rows == 0:
        return None
    fig = Figure(figsize=(7.0, 0.4 + 1.5 * rows), layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=False):
        _metric_panel(ax, name, series[name], metrics.get(name, {}))
    if checks:
        _sequential_panel(axes[-1], checks)
    elif names:
        axes[-1].set_xlabel("seconds into the step window", fontsize=7)
    fig.suptitle(f"step {step.get('step')} at {step.get('weight')} % canary: "
                 f"{step.get('verdict')} (score {step.get('score')})", fontsize=9,
                 color=VERDICT_COLOURS.get(str(step.get("verdict")), "black"))
    return _png(fig)


def release_chart(steps: Sequence[dict[str, Any]]) -> bytes | None:
    """The canary weight at each analysis step, coloured by the verdict it got."""
    if not steps:
        return None
    fig = Figure(figsize=(7.0, 1.8), layout="constrained")
    ax = fig.subplots()
    labels = [f"step {s.get('step')}" for s in steps]
    weights = [float(s.get("weight") or 0) for s in steps]
    colours = [VERDICT_COLOURS.get(str(s.get("verdict")), "#8c8c8c") for s in steps]
    bars = ax.bar(labels, weights, color=colours)
    for bar, s in zip(bars, steps, strict=True):
        ax.annotate(f"{s.get('verdict')} {s.get('score')}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 115)
    ax.set_ylabel("canary %", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title("weight and verdict of each analysis step", fontsize=8, loc="left")
    return _png(fig)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def graph_url(prometheus: str, queries: Sequence[str], seconds: float) -> str:
    """Prometheus's graph page with each query as its own panel, over the step's window."""
    minutes = max(1, math.ceil(seconds / 60) + 1)
    params: dict[str, str] = {}
    for i, query in enumerate(q for q in queries if q):
        params |= {f"g{i}.expr": query, f"g{i}.tab": "0", f"g{i}.range_input": f"{minutes}m"}
    return f"{prometheus.rstrip('/')}/graph?{urlencode(params)}"


def metric_links(step: dict[str, Any], prometheus: str) -> list[tuple[str, str]]:
    """(metric, URL of its stable and canary queries in Prometheus) for each judged metric."""
    links = []
    for name, data in (step.get("series") or {}).items():
        queries = [(data.get(side) or {}).get("query", "") for side in ("baseline", "canary")]
        if any(queries):
            links.append((name, graph_url(prometheus, queries, float(step.get("seconds") or 0))))
    return links
