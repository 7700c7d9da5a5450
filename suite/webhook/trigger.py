"""What an accepted push does in Prefect for one registered service: run a deployment (default)
or emit a ``git.push`` event that a deployment trigger in ``prefect.yaml`` reacts to. The run's
parameters name the service, not its repository: the release flow reads repository and branch
from the registry itself.

Both report failure as :class:`~suite.errors.ServiceUnavailable`, so the server answers 502 and
forgets the delivery id: the forge's redelivery is then accepted, not refused as a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from suite import prefect_http
from suite.errors import ServiceUnavailable
from suite.webhook.events import EVENT, git_push_event, reacting
from suite.webhook.verify import PushEvent

#: shorter than prefect_http's default: the forge waits for the answer
RETRY_DELAYS = (0.3, 1.0, 2.0)


@dataclass(frozen=True)
class Started:
    """What a trigger did: created a flow run, or emitted an event an automation turns into one."""

    flow_run_id: str = ""
    event_id: str = ""
    reactors: tuple[str, ...] = ()

    def answer(self) -> dict[str, Any]:
        if self.flow_run_id:
            return {"status": "started", "flow_run_id": self.flow_run_id}
        return {"status": "emitted", "event": EVENT, "event_id": self.event_id,
                "automations": list(self.reactors)}


def parameters(event: PushEvent, service: str) -> dict[str, Any]:
    """The release flow's parameters: it reads repository and branch from the registry."""
    return {
        "service": service,
        "git_sha": event.after,
        "triggered_by": f"{event.provider} push by {event.pusher} to "
                        f"{event.repository}@{event.branch} (delivery {event.delivery})",
    }


@dataclass(frozen=True)
class DeploymentTrigger:
    """``run_deployment(name, parameters, timeout=0)``: returns the flow run id at once.

    The Prefect API URL is explicit (a per-call setting), never taken from ambient state.
    """

    deployment: str
    api_url: str

    def __call__(self, event: PushEvent, service: str) -> Started:
        from prefect.deployments import run_deployment

        try:
            with prefect_http.client_settings(self.api_url):
                run = run_deployment(self.deployment, parameters=parameters(event, service),
                                     timeout=0, tags=["git-push", event.provider,
                                                      f"service:{service}"])
        except Exception as exc:  # Prefect raises many types: report, do not crash the server
            raise ServiceUnavailable(
                f"starting deployment {self.deployment!r} for service {service!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return Started(flow_run_id=str(run.id))  # type: ignore[union-attr]


@dataclass(frozen=True)
class EventTrigger:
    """``POST /api/events`` with one ``git.push`` event; a deployment trigger starts the run.

    Not ``prefect.events.emit_event``: that queues the event for a background websocket client
    (one per process, bound to the first API URL it saw) and reports success even when Prefect is
    down, so a push would be acknowledged and lost. Here the server's answer decides.
    """

    api_url: str
    timeout: float = 10.0

    def __call__(self, event: PushEvent, service: str) -> Started:
        body = git_push_event(event, service)
        api = self.api_url.rstrip("/")
        with httpx.Client(timeout=self.timeout) as http:
            automations = _call(http, "POST", api, "/automations/filter", {})
            try:
                reactors = reacting(automations, body)
            except ValueError as exc:  # pydantic's ValidationError: our event, their schema
                raise ServiceUnavailable(
                    f"Prefect's event schema refuses the {EVENT} event of {service!r} "
                    f"({event.repository}@{event.branch}): {exc}"
                ) from exc
            if not reactors:
                raise ServiceUnavailable(
                    f"no enabled automation of Prefect at {api} reacts to {EVENT} on "
                    f"{body['resource']['prefect.resource.id']!r} (service {service!r}), so the "
                    f"push would start nothing; register the release deployment's trigger "
                    f"(prefect.yaml) with `suite deploy`, or use "
                    f"`suite webhook serve --mode deployment`"
                )
            _call(http, "POST", api, "/events", [body])
        return Started(event_id=body["id"], reactors=tuple(reactors))


def _call(http: httpx.Client, method: str, api: str, path: str, payload: Any) -> Any:
    """One Prefect API call; 429/503 (on SQLite: "database is locked") are retried like
    Prefect's own client does, briefly: a forge waits ~10 s for the answer."""
    try:
        resp = prefect_http.request(api, method, path, json=payload, delays=RETRY_DELAYS,
                                    client=http)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"Prefect API {api}{path} does not answer ({type(exc).__name__}: {exc}); "
            f"is the platform up (`suite status`)?"
        ) from exc
    if resp.status_code >= 400:
        raise ServiceUnavailable(
            f"Prefect API refused {method} {api}{path}: HTTP {resp.status_code} "
            f"{resp.text[:300]}"
        )
    return resp.json() if resp.content else None
