"""Metric providers without a server: registry, query rendering, and the Prometheus provider's
answers to every kind of response (via httpx.MockTransport). The real server is exercised in
tests/integration/test_prometheus_provider.py."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from suite.errors import ConfigError
from tasks.metrics import PROVIDERS, MetricProvider, PrometheusProvider, get_provider
from tasks.metrics.base import render_query, selector

END = datetime(2026, 1, 1, tzinfo=UTC)
START = END - timedelta(seconds=60)


def provider(handler: Any, **options: Any) -> PrometheusProvider:
    return PrometheusProvider(
        "http://prom.test:9090", transport=httpx.MockTransport(handler), **options
    )


def answer(data: dict[str, Any], status: int = 200) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"status": "success", "data": data})

    return handler


MATRIX = {
    "resultType": "matrix",
    "result": [
        {"metric": {"pod": "a"}, "values": [[1, "0.1"], [2, "0.2"]]},
        {"metric": {"pod": "b"}, "values": [[1, "NaN"], [2, "0.4"]]},
    ],
}


def test_registry_builds_prometheus_and_names_known_providers() -> None:
    built = get_provider("prometheus", address="http://127.0.0.1:9090")
    assert isinstance(built, MetricProvider) and built.name == "prometheus"
    with pytest.raises(ConfigError, match=r"unknown metric provider 'datadog' \(known: prometheus"):
        get_provider("datadog")
    with pytest.raises(ConfigError, match="invalid options"):
        get_provider("prometheus", address="http://x:1", colour="red")
    assert set(PROVIDERS) == {"prometheus"}


@pytest.mark.parametrize("address", ["htp://x", "127.0.0.1:9090", "http://", "http://x:99999"])
def test_bad_address_is_a_config_error(address: str) -> None:
    with pytest.raises(ConfigError, match="prometheus address"):
        PrometheusProvider(address)


def test_range_query_pools_every_point_of_every_series() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(path=request.url.path, **dict(request.url.params))
        return httpx.Response(200, json={"status": "success", "data": MATRIX})

    samples = provider(handler).query("rate(x[1m])", START, END, 1)
    assert samples.ok and samples.series == 2
    assert samples.values[:2] == (0.1, 0.2) and math.isnan(samples.values[2])
    assert seen["path"] == "/api/v1/query_range" and seen["query"] == "rate(x[1m])"
    assert float(seen["end"]) - float(seen["start"]) == 60 and seen["step"] == "1"


def test_empty_range_result_is_no_samples_not_an_error() -> None:
    samples = provider(answer({"resultType": "matrix", "result": []})).query("x", START, END, 1)
    assert samples.ok and samples.values == () and samples.series == 0


def test_instant_query_value_and_scalar() -> None:
    vector = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.995"]}]}
    assert provider(answer(vector)).query_instant("x").value == 0.995
    scalar = {"resultType": "scalar", "result": [1, "2"]}
    assert provider(answer(scalar)).query_instant("x").value == 2.0


def rejected(request: httpx.Request) -> httpx.Response:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    return httpx.Response(400, json=body)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, text="<html>bad gateway</html>")


def not_json(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="hello")


FAILURES = [
    ("rejected_query", rejected, "rejected the query (bad_data): parse error"),
    ("unreachable", refused, "unreachable: ConnectError"),
    ("http_error", server_error, "answered HTTP 502"),
    ("not_prometheus", not_json, "not Prometheus API JSON"),
    ("wrong_shape", answer({"resultType": "matrix", "result": [{"oops": 1}]}), "unexpected"),
]


@pytest.mark.parametrize(
    ("handler", "message"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failures_become_error_values_never_exceptions(handler: Any, message: str) -> None:
    prom = provider(handler)
    samples = prom.query("x", START, END, 1)
    assert not samples.ok and message in (samples.error or "")
    measurement = prom.query_instant("x")
    assert not measurement.ok and measurement.value is None
    if handler is not FAILURES[-1][1]:
        assert message in (measurement.error or "")
    status = prom.check_online()
    assert not status.online


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([], "returned no data"),
        ([{"value": [1, "1"]}, {"value": [1, "2"]}], "returned 2 series (expected 1"),
    ],
)
def test_instant_query_needs_exactly_one_series(result: list, message: str) -> None:
    measurement = provider(answer({"resultType": "vector", "result": result})).query_instant("x")
    assert message in (measurement.error or "")


def test_online_check_and_bearer_token() -> None:
    auth: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth.append(request.headers.get("authorization"))
        assert request.url.params["query"] == "vector(1)"
        data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]}
        return httpx.Response(200, content=json.dumps({"status": "success", "data": data}))

    status = provider(handler, bearer_token=SecretStr("s3cret")).check_online()
    assert status.online and "answers queries" in status.reason
    assert auth == ["Bearer s3cret"]


def test_render_query_fills_selector_and_variables() -> None:
    labels = {"service": "${service}", "track": "canary"}
    query = render_query('rate(x{${selector},code="500"}[1m])', labels, {"service": "web"})
    assert query == 'rate(x{service="web",track="canary",code="500"}[1m])'
    assert selector({"path": 'a"b\\c'}) == 'path="a\\"b\\\\c"'
    with pytest.raises(ConfigError, match=r"uses \$\{svc\}"):
        render_query("x{${selector}} ${svc}", {"a": "b"})
    with pytest.raises(ConfigError, match="label name 'bad-name'"):
        selector({"bad-name": "x"})


def test_even_an_unexpected_failure_stays_inside_the_provider() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("transport bug")

    prom = provider(broken)
    assert "RuntimeError: transport bug" in (prom.query("x", START, END, 1).error or "")
    assert "RuntimeError: transport bug" in (prom.query_instant("x").error or "")
    assert not prom.check_online().online
