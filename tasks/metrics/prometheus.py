"""Prometheus metric provider: range queries for the judge, instant queries for threshold checks.

Every failure (unreachable server, HTTP error, Prometheus ``"status": "error"``, unexpected
response shape) is returned as an error value naming the server and what went wrong; nothing is
raised out of ``query``, ``query_instant`` or ``check_online``. A bad address is a configuration
error and is raised when the provider is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from suite.errors import ConfigError
from tasks.metrics.base import Measurement, ProviderStatus, Samples, SeriesValues


class _QueryFailed(Exception):
    """Internal: turned into an error value before it leaves the provider."""


def _check_address(address: str) -> str:
    parts = urlsplit(address) if isinstance(address, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"prometheus address {address!r} is not a valid URL (expected http(s)://host:port)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"prometheus address {address!r} has an invalid port ({exc})") from exc
    return address.rstrip("/")


def _number(raw: Any) -> float:
    """Prometheus sends sample values as strings ("0.25", "NaN", "+Inf"); float() reads them."""
    return float(raw)


class PrometheusProvider:
    name = "prometheus"

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10.0,
        bearer_token: SecretStr | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.address = _check_address(address)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"prometheus timeout is {timeout!r} (expected seconds > 0)")
        all_headers = dict(headers or {})
        if bearer_token is not None:
            all_headers["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
        self._client = httpx.Client(
            base_url=self.address, timeout=timeout, headers=all_headers, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """The ``data`` of a successful API answer, or _QueryFailed with a readable reason."""
        where = f"prometheus at {self.address}"
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise _QueryFailed(f"{where} unreachable: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            raise _QueryFailed(
                f"{where} rejected the query ({body.get('errorType', 'error')}): "
                f"{body.get('error', 'no message')}"
            )
        if response.status_code != 200:
            raise _QueryFailed(f"{where} answered HTTP {response.status_code} on {path}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise _QueryFailed(f"{where} sent a response that is not Prometheus API JSON")
        data: dict[str, Any] = body["data"]
        return data

    def query(self, query: str, start: datetime, end: datetime, step_seconds: float) -> Samples:
        params = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step_seconds:g}",
        }
        try:
            data = self._get("/api/v1/query_range", params)
            if data.get("resultType") != "matrix":
                raise _QueryFailed(f"expected a matrix, got {data.get('resultType')!r}")
            series = data["result"]
            values = tuple(_number(v) for s in series for _, v in s["values"])
        except _QueryFailed as exc:
            return Samples(query=query, error=str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return Samples(query=query, error=f"unexpected range query result: {exc!r}")
        except Exception as exc:  # the plugin contract: nothing escapes a query
            return Samples(query=query, error=f"range query failed: {type(exc).__name__}: {exc}")
        return Samples(query=query, values=values, series=len(series))

    def query_instant(self, query: str, at: datetime | None = None) -> Measurement:
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        try:
            data = self._get("/api/v1/query", params)
            kind, result = data.get("resultType"), data["result"]
            if kind == "scalar":
                return Measurement(value=_number(result[1]), query=query)
            if kind != "vector" or not isinstance(result, list):
                raise _QueryFailed(f"expected a vector or scalar, got {kind!r}")
            if not result:
                raise _QueryFailed("the query returned no data")
            if len(result) > 1:
                raise _QueryFailed(
                    f"the query returned {len(result)} series (expected 1: aggregate it, "
                    "e.g. with sum() or max())"
                )
            return Measurement(value=_number(result[0]["value"][1]), query=query)
        except _QueryFailed as exc:
            return Measurement(error=str(exc), query=query)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return Measurement(error=f"unexpected instant query result: {exc!r}", query=query)
        except Exception as exc:  # the plugin contract: nothing escapes a query
            problem = f"instant query failed: {type(exc).__name__}: {exc}"
            return Measurement(error=problem, query=query)

    def query_series(self, query: str, at: datetime | None = None) -> SeriesValues:
        """Every series of an instant vector with its labels (no series: an empty answer)."""
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        try:
            data = self._get("/api/v1/query", params)
            if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
                raise _QueryFailed(f"expected a vector, got {data.get('resultType')!r}")
            series = tuple(
                (tuple(sorted((str(k), str(v)) for k, v in item["metric"].items())),
                 _number(item["value"][1]))
                for item in data["result"]
            )
        except _QueryFailed as exc:
            return SeriesValues(query=query, error=str(exc))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            return SeriesValues(query=query, error=f"unexpected instant query result: {exc!r}")
        except Exception as exc:  # the plugin contract: nothing escapes a query
            problem = f"instant query failed: {type(exc).__name__}: {exc}"
            return SeriesValues(query=query, error=problem)
        return SeriesValues(query=query, series=series)

    def check_online(self) -> ProviderStatus:
        """Online when the query API evaluates ``vector(1)`` (as Flagger checks)."""
        measurement = self.query_instant("vector(1)")
        if measurement.error is not None:
            return ProviderStatus(False, measurement.error)
        if measurement.value is None or math.isnan(measurement.value) or measurement.value != 1:
            return ProviderStatus(False, f"vector(1) evaluated to {measurement.value!r}")
        return ProviderStatus(True, f"prometheus at {self.address} answers queries")
