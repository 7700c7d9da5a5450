"""A release's slot on real Prefect: the intent records the lease the run holds, and the
reconciler gives back exactly that lease — revoked, so Prefect never frees the slot a second
time when the lease would have expired (by then the next release holds it)."""

from __future__ import annotations

import pytest

from suite import prefect_http
from suite.services.onboard import concurrency_limit, ensure_concurrency_limit
from suite.settings import Settings
from tasks.control import Active, Releases
from tasks.reconcile import free_release_slot
from tests.conftest import prefect_api

pytestmark = pytest.mark.integration


def _active_slots(api: str, service: str) -> int:
    resp = prefect_api(api, "GET", f"/v2/concurrency_limits/{concurrency_limit(service)}")
    assert resp.status_code == 200, resp.text
    return int(resp.json()["active_slots"])


def _renew(api: str, lease: str) -> int:
    return prefect_api(api, "POST", f"/v2/concurrency_limits/leases/{lease}/renew",
                       json={"lease_duration": 300}).status_code


def take_slot(api: str, service: str) -> str:
    """``service``'s release slot, held as by a run that then died: taken with a lease nobody
    will renew; its lease id."""
    resp = prefect_api(api, "POST", "/v2/concurrency_limits/increment-with-lease", json={
        "names": [concurrency_limit(service)], "slots": 1, "mode": "concurrency",
        "lease_duration": 300})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["lease_id"])


def test_the_intent_records_the_lease_the_run_holds(platform: Settings) -> None:
    from prefect import flow
    from prefect.concurrency.sync import concurrency

    api = platform.prefect_api_url
    ensure_concurrency_limit(platform, "slotted")

    @flow(name="slot-holder")
    def hold() -> tuple[str, int]:
        with concurrency(concurrency_limit("slotted"), occupy=1, strict=True):
            releases = Releases(platform)
            releases.start(Active("slotted", "r-1", "run-1", "canary", "now"))
            intent = releases.targets().load("slotted").release
            assert intent is not None
            # a live lease of this run: Prefect renews it
            return intent.slot_lease, _renew(api, intent.slot_lease)

    with prefect_http.client_settings(api):
        lease, renewed = hold()
    assert lease and renewed == 204
    assert _active_slots(api, "slotted") == 0  # the run gave it back at its end
    Releases(platform).update("slotted", phase="ended", outcome="rolled_back")


def test_a_dead_runs_lease_is_given_back_and_revoked(platform: Settings) -> None:
    api = platform.prefect_api_url
    ensure_concurrency_limit(platform, "orphaned")
    lease = take_slot(api, "orphaned")
    assert _active_slots(api, "orphaned") == 1
    free_release_slot(platform, "orphaned", lease)
    assert _active_slots(api, "orphaned") == 0
    assert _renew(api, lease) == 410  # revoked: its expiry will not free a slot again
    free_release_slot(platform, "orphaned", lease)  # twice (hook, then automation): no change
    assert _active_slots(api, "orphaned") == 0
