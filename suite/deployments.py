"""Register the deployments of ``prefect.yaml`` with the platform's Prefect server.

`suite up` does it when ``prefect.yaml`` changed since the last time (a stamp under the Prefect
state dir), so the UI always offers the current deployments, schedules and triggers. It also
creates (or updates, by name) the two automations of crash detection: the zombie-run one of
Prefect's documentation and the rollback of a crashed or cancelled release
(``docs/reliability.md``).
"""

from __future__ import annotations

import hashlib
import subprocess
from typing import Any

import httpx

from suite import prefect_http
from suite.errors import ServiceUnavailable
from suite.platform.files import atomic_write
from suite.platform.service import find_binary
from suite.platform.services.prefect import PREFECT_HINT, prefect_env
from suite.platform.services.workers import HEARTBEAT_SECONDS
from suite.settings import PROJECT_DIR, Settings

PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


def _digest() -> str:
    return hashlib.sha256(PREFECT_YAML.read_bytes()).hexdigest()


def deploy(settings: Settings, force: bool = False) -> bool:
    """``prefect deploy --all``; False when nothing changed since the last deploy."""
    stamp = settings.dir("prefect", "deployed.sha256")
    digest = _digest()
    if not force and stamp.exists() and stamp.read_text().strip() == digest:
        return False
    env = prefect_env(settings)
    result = subprocess.run(
        [find_binary("prefect", PREFECT_HINT), "--no-prompt", "deploy", "--all",
         "--prefect-file", str(PREFECT_YAML)],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False, timeout=600,
    )
    if result.returncode != 0:
        raise ServiceUnavailable(
            f"prefect deploy --all failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-1500:]}"
        )
    atomic_write(stamp, digest)
    return True


# -- automations ---------------------------------------------------------------------------
#: marks a run Crashed when its heartbeats stop (Prefect's documented zombie-run automation)
ZOMBIE_AUTOMATION = "suite-crash-zombie-runs"
#: starts the `rollback` deployment for a release run that ended Crashed or Cancelled
ROLLBACK_AUTOMATION = "suite-release-crashed-rollback"
#: Prefect's own heartbeat interval, for runs not started by the platform's workers (a flow
#: called in-process by a test or a script): the zombie window must not crash them
PREFECT_DEFAULT_HEARTBEAT_SECONDS = 180
#: a run with no heartbeat (nor any other flow-run event) this long is Crashed: a few of the
#: workers' heartbeats, and longer than Prefect's default interval
ZOMBIE_AFTER_SECONDS = max(3 * HEARTBEAT_SECONDS, PREFECT_DEFAULT_HEARTBEAT_SECONDS + 20)


def zombie_automation() -> dict[str, Any]:
    """A running flow run whose ``prefect.flow-run.heartbeat`` stops is set CRASHED.

    ``expect`` is any flow-run event (not only the final states' names), so a run that ends in
    a state of its own name (``RolledBack``, ``AwaitingReleaseSlot``) is never taken for one
    whose process died."""
    return {
        "name": ZOMBIE_AUTOMATION,
        "description": "Crash flow runs whose heartbeats stopped (zombie runs): their process "
                       "or host died without reporting. Created by `suite up`.",
        "enabled": True,
        "trigger": {
            "type": "event", "posture": "Proactive", "threshold": 1,
            "within": ZOMBIE_AFTER_SECONDS,
            "after": ["prefect.flow-run.heartbeat"],
            "expect": ["prefect.flow-run.*"],
            "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
            "match_related": {},
            "for_each": ["prefect.resource.id"],
        },
        "actions": [{"type": "change-flow-run-state", "state": "CRASHED", "force": False,
                     "message": f"no heartbeat for {ZOMBIE_AFTER_SECONDS} s: the flow-run "
                                f"process or its host died (suite zombie-run automation)"}],
        "actions_on_trigger": [], "actions_on_resolve": [],
    }


def rollback_automation(rollback_deployment_id: str) -> dict[str, Any]:
    """A ``release`` run that becomes Crashed or Cancelled starts ``rollback`` for its service
    (the reconciler finds nothing to do if the run's own hook already rolled it back)."""
    return {
        "name": ROLLBACK_AUTOMATION,
        "description": "Roll back the service of a release run that crashed or was cancelled "
                       "(flows/rollback.py reconciles it). Created by `suite up`.",
        "enabled": True,
        "trigger": {
            "type": "event", "posture": "Reactive", "threshold": 1, "within": 0,
            "after": [],
            "expect": ["prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"],
            "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
            "match_related": {"prefect.resource.role": "flow",
                              "prefect.resource.name": "release"},
            "for_each": ["prefect.resource.id"],
        },
        "actions": [{
            "type": "run-deployment", "source": "selected",
            "deployment_id": rollback_deployment_id,
            "parameters": {
                "service": "{{ flow_run.parameters.service }}",
                "flow_run_id": "{{ event.resource.id }}",
                "reason": "release run {{ flow_run.name }} ended {{ event.event }}",
            },
        }],
        "actions_on_trigger": [], "actions_on_resolve": [],
    }


def _put_automation(api: str, body: dict[str, Any]) -> str:
    """Create ``body`` or update the automation of the same name: "created" | "updated"."""
    found = prefect_http.request(api, "POST", "/automations/filter",
                                 json={"automations": {"name": {"any_": [body["name"]]}}})
    if found.status_code != 200:
        raise ServiceUnavailable(f"Prefect did not list automations (HTTP {found.status_code}: "
                                 f"{found.text[:300]})")
    existing = found.json()
    if existing:
        resp = prefect_http.request(api, "PUT", f"/automations/{existing[0]['id']}", json=body)
        verb = "updated"
    else:
        resp = prefect_http.request(api, "POST", "/automations/", json=body)
        verb = "created"
    if resp.status_code not in (200, 201, 204):
        raise ServiceUnavailable(f"Prefect refused automation {body['name']!r} (HTTP "
                                 f"{resp.status_code}: {resp.text[:300]})")
    return verb


def ensure_automations(settings: Settings) -> list[str]:
    """Create or update the crash automations by name (idempotent); what was done, per line."""
    try:
        return _ensure_automations(settings.prefect_api_url)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Prefect at {settings.prefect_api_url} does not answer "
                                 f"({exc}); the crash automations are not set: `suite up`"
                                 ) from exc


def _ensure_automations(api: str) -> list[str]:
    done = [f"{ZOMBIE_AUTOMATION} {_put_automation(api, zombie_automation())}"]
    dep = prefect_http.request(api, "GET", "/deployments/name/rollback/rollback")
    if dep.status_code != 200:
        done.append(f"{ROLLBACK_AUTOMATION} not set: the rollback deployment is not registered "
                    f"(`suite deploy`)")
        return done
    done.append(f"{ROLLBACK_AUTOMATION} "
                f"{_put_automation(api, rollback_automation(str(dep.json()['id'])))}")
    return done
