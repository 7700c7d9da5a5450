"""MLflow's users and grants as `suite up` makes them (suite.platform.services.mlflow), against
a fake of MLflow's auth REST API (httpx.MockTransport): idempotent on every start."""

from __future__ import annotations

import json

import httpx
import pytest

from suite.errors import ServiceUnavailable
from suite.platform.services import mlflow as svc


class FakeMlflow:
    """Users, grants, experiments and models; a grant given twice is RESOURCE_ALREADY_EXISTS."""

    def __init__(self, users: dict[str, str] | None = None, models: int = 0) -> None:
        self.users = dict(users or {})
        self.grants: set[tuple[str, str, str, str]] = set()
        self.experiments = [{"experiment_id": "0"}, {"experiment_id": "7"}]
        self.models = [{"name": f"m{i}"} for i in range(models)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, dict(request.url.params)
        body = json.loads(request.content) if request.content else {}
        if path == svc.USERS_GET:
            found = params["username"] in self.users
            return httpx.Response(200 if found else 404, json={})
        if path == svc.USERS_CREATE:
            self.users[body["username"]] = body["password"]
            return httpx.Response(200, json={})
        if path == svc.USERS_SET_SECRET:
            self.users[body["username"]] = body["password"]
            return httpx.Response(200, json={})
        if path == svc.GRANT:
            key = (body["username"], body["resource_type"], body["resource_id"],
                   body["permission"])
            if key in self.grants:
                return httpx.Response(400, json={"error_code": "RESOURCE_ALREADY_EXISTS"})
            self.grants.add(key)
            return httpx.Response(200, json={})
        if path.endswith("/experiments/search"):
            return httpx.Response(200, json={"experiments": self.experiments})
        if path.endswith("/registered-models/search"):
            # two pages: the token must be followed
            if params.get("page_token") == "2":
                return httpx.Response(200, json={"registered_models": self.models[1:]})
            return httpx.Response(200, json={"registered_models": self.models[:1],
                                             "next_page_token": "2" if self.models[1:] else ""})
        return httpx.Response(500, text=f"unexpected {path}")


def _client(fake: FakeMlflow) -> httpx.Client:
    return httpx.Client(base_url="http://mlflow.test", transport=httpx.MockTransport(fake))


def test_ensure_user_creates_a_missing_user() -> None:
    fake = FakeMlflow()
    svc.ensure_user(_client(fake), "suite", "s" * 32)
    assert fake.users == {"suite": "s" * 32}


def test_ensure_user_sets_the_password_of_an_existing_user_again() -> None:
    fake = FakeMlflow({"suite": "old-password-0000"})
    svc.ensure_user(_client(fake), "suite", "n" * 32)
    assert fake.users == {"suite": "n" * 32}


def test_adopt_grants_manage_on_every_experiment_and_model_and_may_run_twice() -> None:
    fake = FakeMlflow(models=3)
    svc.adopt(_client(fake), "suite")
    svc.adopt(_client(fake), "suite")
    assert fake.grants == {("suite", "experiment", "0", "MANAGE"),
                           ("suite", "experiment", "7", "MANAGE"),
                           *{("suite", "registered_model", f"m{i}", "MANAGE") for i in range(3)}}


def test_a_refused_call_names_the_status_and_the_fix() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="You are not authenticated")

    admin = httpx.Client(base_url="http://mlflow.test", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServiceUnavailable, match=r"HTTP 401.*mlflow-admin\.password"):
        svc.ensure_user(admin, "suite", "s" * 32)
