"""The release report's pictures, drawn from a fake step dict (the shape of
StepAnalysis.to_dict())."""

from __future__ import annotations

import base64
import math
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tasks import report_chart
from tasks.report import ReleaseRecord, render

PNG = b"\x89PNG\r\n\x1a\n"


def fake_step(verdict: str = "FAIL", sequential: bool = True) -> dict[str, Any]:
    n = 60
    stable = [0.020 + 0.002 * math.sin(i / 5) for i in range(n)]
    canary = [0.020 + 0.0004 * i for i in range(n)]
    errors_b = [0.0] * n * 2  # two replicas of stable
    errors_c = [0.01 * (i > 30) for i in range(n)]
    step: dict[str, Any] = {
        "step": 3, "weight": 20, "started": "2026-12-01T23:00:00+00:00", "seconds": 61.0,
        "stopped_early": True, "verdict": verdict, "score": 0.0, "reason": "latency HIGH",
        "points": {"latency": [n, n], "error-rate": [2 * n, n]},
        "metrics": [{"name": "latency", "classification": "HIGH"},
                    {"name": "error-rate", "classification": "PASS"}],
        "thresholds": [],
        "series": {
            "latency": {"step_seconds": 1.0,
                        "baseline": {"query": 'avg(lat{track="stable"})', "values": stable,
                                     "series": 1},
                        "canary": {"query": 'avg(lat{track="canary"})', "values": canary,
                                   "series": 1}},
            "error-rate": {"step_seconds": 1.0,
                           "baseline": {"query": "err_stable", "values": errors_b, "series": 2},
                           "canary": {"query": "err_canary", "values": errors_c, "series": 1}},
        },
        "sequential": [],
    }
    if sequential:
        step["sequential"] = [{
            "name": "errors", "kind": "rate", "critical": True, "rejected": True,
            "crossed_at": 40.0, "error": None, "resets": 0,
            "history": [[float(t), max(1e-4, 1.0 - t / 45)] for t in range(0, 48, 2)],
            "result": {"alpha": 0.01, "p_value": 0.001, "reject": True}}]
    return step


def test_step_chart_is_a_small_png() -> None:
    png = report_chart.step_chart(fake_step())
    assert png is not None and png.startswith(PNG)
    assert len(png) < report_chart.MAX_BYTES


def test_step_chart_without_sequential_part() -> None:
    png = report_chart.step_chart(fake_step(verdict="PASS", sequential=False))
    assert png is not None and png.startswith(PNG) and len(png) < report_chart.MAX_BYTES


def test_step_without_series_has_no_chart() -> None:
    step = fake_step()
    step["series"], step["sequential"] = {}, []
    assert report_chart.step_chart(step) is None


def test_many_metrics_still_fit() -> None:
    step = fake_step()
    base = step["series"]["latency"]
    step["series"] = {f"m{i}": base for i in range(12)}
    png = report_chart.step_chart(step)
    assert png is not None and len(png) < report_chart.MAX_BYTES


def test_release_chart() -> None:
    png = report_chart.release_chart([fake_step("PASS"), {**fake_step(), "weight": 50}])
    assert png is not None and png.startswith(PNG) and len(png) < report_chart.MAX_BYTES
    assert report_chart.release_chart([]) is None


def test_metric_links_open_both_queries_in_prometheus() -> None:
    links = dict(report_chart.metric_links(fake_step(), "http://127.0.0.1:9090"))
    url = urlsplit(links["latency"])
    assert (url.scheme, url.netloc, url.path) == ("http", "127.0.0.1:9090", "/graph")
    query = parse_qs(url.query)
    assert query["g0.expr"] == ['avg(lat{track="stable"})']
    assert query["g1.expr"] == ['avg(lat{track="canary"})']
    assert query["g0.range_input"] == ["3m"]


def test_report_embeds_the_chart_as_a_data_uri() -> None:
    rec = ReleaseRecord(release="r1", service="hello", strategy="canary", target="local",
                        outcome="rolled_back", reason="step 3 FAIL", steps=[fake_step()])
    text = render(rec, prometheus="http://127.0.0.1:9090")
    images = re.findall(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert [alt for alt, _ in images] == ["weight and verdict of each step",
                                          "step 3: canary against stable"]
    assert all(base64.b64decode(data).startswith(PNG) for _, data in images)
    assert "[latency](http://127.0.0.1:9090/graph?g0.expr=" in text


def test_report_without_pictures_has_no_image() -> None:
    rec = ReleaseRecord(release="r1", service="hello", strategy="canary", target="local",
                        steps=[fake_step()])
    assert "data:image" not in render(rec, pictures=False)


def test_broken_step_dict_costs_the_chart_not_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(step: dict[str, Any]) -> bytes:
        raise ValueError("bad values")

    monkeypatch.setattr(report_chart, "step_chart", boom)
    rec = ReleaseRecord(release="r1", service="hello", strategy="canary", target="local",
                        steps=[fake_step()])
    assert "(no chart: ValueError: bad values)" in render(rec)
