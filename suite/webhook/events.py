"""The ``git.push`` Prefect event of an accepted push, and whether an automation will react to it.

The release deployment's trigger in ``prefect.yaml`` (``expect: git.push``, ``match:
prefect.resource.id: git.repo.*``) turns the event into a flow run whose parameters are rendered
from ``event.payload``. One push emits one event per registered service it releases, each naming
its service (``payload.service``, and a related ``suite.service.NAME`` resource), so the trigger's
``service: "{{ event.payload.service }}"`` starts one release per service.

An event nobody reacts to starts nothing, silently; so before emitting, the webhook asks Prefect
which automations would cover the event, judged by the server's own trigger schema (the same
``covers`` the triggers service evaluates), and refuses the delivery with a reason when none
would.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from suite.webhook.verify import PushEvent

EVENT = "git.push"
RESOURCE_PREFIX = "git.repo."
SERVICE_PREFIX = "suite.service."


def payload(event: PushEvent, service: str) -> dict[str, Any]:
    """What the trigger's ``{{ event.payload.* }}`` templates can read."""
    return {
        "service": service, "repository": event.repository, "branch": event.branch,
        "ref": event.ref,
        "before": event.before, "after": event.after, "pusher": event.pusher,
        "provider": event.provider, "delivery": event.delivery, "clone_url": event.clone_url,
    }


def git_push_event(
    event: PushEvent, service: str, event_id: uuid.UUID | None = None,
    occurred: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of one event for ``POST /api/events``."""
    when = occurred or datetime.datetime.now(datetime.UTC)
    return {
        "id": str(event_id or uuid.uuid4()),
        "occurred": when.isoformat(),
        "event": EVENT,
        "resource": {"prefect.resource.id": f"{RESOURCE_PREFIX}{event.repository}",
                     "prefect.resource.name": event.repository},
        "related": [{"prefect.resource.id": f"{SERVICE_PREFIX}{service}",
                     "prefect.resource.role": "service", "prefect.resource.name": service}],
        "payload": payload(event, service),
    }


def reacting(automations: Iterable[Mapping[str, Any]], body: Mapping[str, Any]) -> list[str]:
    """Names of the enabled automations with a reactive event trigger covering ``body``.

    An automation Prefect's schema cannot read (a newer server's trigger type) is skipped, not
    fatal: it cannot be judged, and the others still can.
    """
    from prefect.server.events.schemas.automations import (
        Automation,
        EventTrigger,
        Posture,
    )
    from prefect.server.events.schemas.events import ReceivedEvent
    from pydantic import ValidationError

    received = ReceivedEvent.model_validate(dict(body))
    names: list[str] = []
    for raw in automations:
        if not raw.get("enabled"):
            continue
        try:
            automation = Automation.model_validate(raw)
        except (ValidationError, ValueError):
            continue
        triggers = automation.trigger.all_triggers()
        if any(isinstance(t, EventTrigger) and t.posture == Posture.Reactive and t.covers(received)
               for t in triggers):
            names.append(automation.name)
    return names
