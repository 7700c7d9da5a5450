"""What an accepted push does in Prefect: run a deployment (default) or emit a ``git.push`` event
that a deployment trigger in ``prefect.yaml`` reacts to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from suite.errors import ServiceUnavailable
from suite.webhook.verify import PushEvent

EVENT = "git.push"


def parameters(event: PushEvent) -> dict[str, Any]:
    return {
        "git_sha": event.after,
        "repository": event.clone_url,
        "triggered_by": f"{event.provider} push by {event.pusher} to "
                        f"{event.repository}@{event.branch} (delivery {event.delivery})",
    }


def event_payload(event: PushEvent) -> dict[str, Any]:
    return {
        "repository": event.repository, "branch": event.branch, "ref": event.ref,
        "before": event.before, "after": event.after, "pusher": event.pusher,
        "provider": event.provider, "delivery": event.delivery, "clone_url": event.clone_url,
    }


@dataclass(frozen=True)
class DeploymentTrigger:
    """``run_deployment(name, parameters, timeout=0)``: returns the flow run id at once.

    The Prefect API URL is explicit (a per-call setting), never taken from ambient state.
    """

    deployment: str
    api_url: str

    def __call__(self, event: PushEvent) -> str:
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        try:
            with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                run = run_deployment(self.deployment, parameters=parameters(event), timeout=0,
                                     tags=["git-push", event.provider])
        except Exception as exc:  # Prefect raises many types: report, do not crash the server
            raise ServiceUnavailable(
                f"starting deployment {self.deployment!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return str(run.id)  # type: ignore[union-attr]


@dataclass(frozen=True)
class EventTrigger:
    """Emit ``git.push``; the answer carries the event id (a run starts via automation)."""

    api_url: str

    def __call__(self, event: PushEvent) -> str:
        from prefect.events import emit_event
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            emitted = emit_event(
                event=EVENT,
                resource={"prefect.resource.id": f"git.repo.{event.repository}",
                          "prefect.resource.name": event.repository},
                payload=event_payload(event),
            )
        if emitted is None:
            raise ServiceUnavailable("Prefect did not accept the git.push event (events disabled?)")
        return f"event:{emitted.id}"
