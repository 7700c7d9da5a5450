"""PrometheusProvider.query_series (raw counters per series, for the sequential monitors), via
httpx.MockTransport: labels kept, no series is an empty answer, every failure is a value."""

from __future__ import annotations

from typing import Any

import httpx

from tasks.metrics import PrometheusProvider, SeriesProvider


def provider(handler: Any) -> PrometheusProvider:
    return PrometheusProvider("http://prom.test:9090", transport=httpx.MockTransport(handler))


def answer(body: Any, status: int = 200) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        return httpx.Response(status, json=body)

    return handler


def ok(result: Any, kind: str = "vector") -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": kind, "result": result}}


def test_series_keep_their_labels_sorted() -> None:
    body = ok([{"metric": {"le": "0.1", "instance": "a"}, "value": [1, "12"]},
               {"metric": {"le": "+Inf", "instance": "a"}, "value": [1, "15"]}])
    got = provider(answer(body)).query_series("m_bucket{track=\"canary\"}")
    assert got.ok and got.series == (
        ((("instance", "a"), ("le", "0.1")), 12.0),
        ((("instance", "a"), ("le", "+Inf")), 15.0),
    )
    assert isinstance(provider(answer(body)), SeriesProvider)


def test_no_series_is_an_empty_answer_not_an_error() -> None:
    got = provider(answer(ok([]))).query_series("errors_total")
    assert got.ok and got.series == ()


def test_failures_are_values() -> None:
    rejected = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    cases = [
        (answer(rejected, 400), "rejected the query (bad_data): parse error"),
        (answer(ok([1, "2"], kind="scalar")), "expected a vector, got 'scalar'"),
        (answer(ok([{"value": [1, "2"]}])), "unexpected instant query result"),
        (answer({"nope": 1}), "not Prometheus API JSON"),
    ]
    for handler, message in cases:
        got = provider(handler).query_series("q")
        assert got.error is not None and message in got.error, (message, got.error)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    got = provider(down).query_series("q")
    assert got.error is not None and "unreachable: ConnectError: refused" in got.error
