"""What registering a service creates on the platform, and what removing it takes away.

``add``: the registry record, the HAProxy backends and Host route (one reload of HAProxy, which
drops no request of the other services), the Vault policy that reads only its secrets path,
and a Prefect global concurrency limit ``release-<service>`` of 1, so two releases of one
service never run at once while releases of different services run side by side.
Prometheus discovery needs nothing new: the router's series are relabelled by service, and
each release writes its replicas' targets.
"""

from __future__ import annotations

from suite import prefect_http, vault
from suite.errors import ConfigError, ServiceUnavailable
from suite.haproxy import Route, RouteStore
from suite.platform.services.haproxy import HaproxyService
from suite.services.registry import Registration, Registry
from suite.services.spec import ServiceSpec
from suite.settings import Settings


def concurrency_limit(service: str) -> str:
    return f"release-{service}"


def ensure_concurrency_limit(settings: Settings, service: str) -> None:
    """Create the limit (1 slot) if it does not exist; idempotent."""
    api = settings.prefect_api_url
    name = concurrency_limit(service)
    try:
        found = prefect_http.request(api, "GET", f"/v2/concurrency_limits/{name}")
        if found.status_code == 200:
            return
        made = prefect_http.request(api, "POST", "/v2/concurrency_limits/",
                                    json={"name": name, "limit": 1, "active": True})
    except Exception as exc:  # httpx errors: Prefect is down
        raise ServiceUnavailable(f"Prefect at {api} does not answer ({exc}); `suite up`") from exc
    if made.status_code not in (200, 201, 409):
        raise ServiceUnavailable(f"creating concurrency limit {name!r} failed: "
                                 f"{made.status_code} {made.text[:200]}")


def delete_concurrency_limit(settings: Settings, service: str) -> None:
    try:
        prefect_http.request(settings.prefect_api_url, "DELETE",
                             f"/v2/concurrency_limits/{concurrency_limit(service)}")
    except Exception as exc:
        raise ServiceUnavailable(f"Prefect does not answer ({exc}); `suite up`") from exc


def add(settings: Settings, repository: str, branch: str = "main") -> tuple[Registration,
                                                                             ServiceSpec]:
    registry = Registry(settings)
    reg, spec = registry.register(repository, branch)
    routes = RouteStore(settings.dir("haproxy", "routes"))
    known = routes.get(spec.service)
    if known is None or known.host != spec.host or known.health_path != spec.readiness:
        routes.put(Route(spec.service, spec.host, spec.readiness,
                         known.live if known else (), known.preview if known else ()))
        HaproxyService(settings).reload()
    vault.put_service_policy(vault.client(settings), spec.service)
    ensure_concurrency_limit(settings, spec.service)
    return reg, spec


def remove(settings: Settings, service: str, replicas: int) -> None:
    """Unregister ``service``; refuses while ``replicas`` of it still run."""
    registry = Registry(settings)
    registry.get(service)  # names the registered services when it is not one
    if replicas:
        raise ConfigError(f"service {service!r} still runs {replicas} replica(s); "
                          f"`suite services remove {service} --teardown` stops them first")
    RouteStore(settings.dir("haproxy", "routes")).remove(service)
    HaproxyService(settings).reload()
    vault.delete_service_policy(vault.client(settings), service)
    delete_concurrency_limit(settings, service)
    registry.remove(service)


def name_run_state(settings: Settings, flow_run_id: str, name: str) -> None:
    """Give the running flow run's state a name the Runs page shows (e.g. waiting for the
    service's release slot); a failure only loses the label."""
    try:
        prefect_http.request(settings.prefect_api_url, "POST",
                             f"/flow_runs/{flow_run_id}/set_state",
                             json={"state": {"type": "RUNNING", "name": name}, "force": True})
    except Exception:  # noqa: S110 - a label, never a reason to fail the release
        pass
