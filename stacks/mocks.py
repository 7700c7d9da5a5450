"""Run a stack program under Pulumi mocks and record every resource it registers.

Used by the unit tests (resource counts, properties, the CrossGuard pack over a whole stack) and
by ``stacks.render`` (Kubernetes manifests without a cluster or the CLI). Each record keeps the
inputs exactly as the engine would see them (camelCase) and the URNs the resource depends on, so
stack-level policies can follow a bucket to its companions.

Call :func:`install` before importing a program module, as Pulumi's mock docs require.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from policies.crossguard.rules import ResourceView

Outputs = Callable[[MockResourceArgs], Mapping[str, Any]]


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    urn: str
    inputs: Mapping[str, Any]
    depends_on: frozenset[str]
    custom: bool

    def view(self) -> ResourceView:
        return ResourceView(self.type, self.urn, self.inputs, self.depends_on)


def fake_outputs(args: MockResourceArgs) -> dict[str, Any]:
    """Plausible computed outputs, so programs that read them (ARNs, ids, emails) resolve."""
    name = args.name
    return {
        "arn": f"arn:aws:mock:us-east-1:123456789012:{name}",
        "name": args.inputs.get("name", name),
        "bucket": name,
        "email": f"{name}@mock-project.iam.gserviceaccount.com",
        "principalId": f"{name}-principal",
        "clientId": f"{name}-client",
        "identityProfile": {"kubeletidentity": {"objectId": f"{name}-kubelet",
                                                "clientId": f"{name}-kubelet-client"}},
        "oidcIssuerProfile": {"enabled": True, "issuerURL": f"https://oidc.mock/{name}/"},
        "loginServer": f"{name}.azurecr.io",
        "repositoryUrl": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}",
        "endpoint": f"https://{name}.mock",
    }


def _merge(fake: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs win; objects present in both are merged one level deep (e.g. oidcIssuerProfile)."""
    state = dict(inputs)
    for key, value in fake.items():
        if key not in state:
            state[key] = value
        elif isinstance(value, Mapping) and isinstance(state[key], Mapping):
            state[key] = {**value, **state[key]}
    return state


FAKE_INVOKES: dict[str, dict[str, Any]] = {
    "azure-native:authorization:getClientConfig": {
        "subscriptionId": "00000000-0000-0000-0000-000000000001",
        "tenantId": "00000000-0000-0000-0000-000000000002",
        "clientId": "mock-client", "objectId": "mock-object",
    },
    "gcp:organizations/getProject:getProject": {"projectId": "mock-project", "number": "123456"},
    "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": {
        "emailAddress": "service-123456@gs-project-accounts.iam.gserviceaccount.com",
    },
}


class Recorder(pulumi.runtime.Mocks):
    """Mocks that echo inputs (plus fake outputs) and remember what was registered."""

    def __init__(self, outputs: Outputs = fake_outputs) -> None:
        self._outputs = outputs
        self._lock = threading.Lock()
        self._inputs: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}
        self._links: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        with self._lock:
            self._inputs[(args.typ, args.name)] = (dict(args.inputs), bool(args.custom))
        return f"{args.name}-id", _merge(self._outputs(args), args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return dict(FAKE_INVOKES.get(args.token, {})), []

    def link(self, typ: str, name: str, urn: str, depends_on: frozenset[str]) -> None:
        with self._lock:
            self._links[(typ, name)] = (urn, depends_on)

    def reset(self) -> None:
        with self._lock:
            self._inputs.clear()
            self._links.clear()

    @property
    def resources(self) -> list[Registered]:
        with self._lock:
            found = []
            for (typ, name), (inputs, custom) in self._inputs.items():
                urn, depends = self._links.get((typ, name), ("", frozenset()))
                found.append(Registered(type=typ, name=name, urn=urn, inputs=inputs,
                                        depends_on=depends, custom=custom))
            return found

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(typ)]
            raise AssertionError(f"expected one {typ} named {name!r}, found {names}")
        return found[0]

    def views(self) -> list[ResourceView]:
        return [r.view() for r in self.resources]


class RecordingMonitor(MockMonitor):
    """The mock monitor, also noting each resource's URN and dependencies."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method name
        response = super().RegisterResource(request)
        depends = set(request.dependencies)
        for urns in request.propertyDependencies.values():
            depends |= set(urns.urns)
        self.recorder.link(request.type, request.name, response.urn, frozenset(depends))
        return response


def install(recorder: Recorder | None = None, stack: str = "test") -> Recorder:
    """Set the mocks (before importing a program); returns the recorder to query."""
    recorder = recorder or Recorder()
    pulumi.runtime.set_mocks(recorder, project="ultimate-suite", stack=stack, preview=False,
                             monitor=RecordingMonitor(recorder))
    return recorder


def run(recorder: Recorder, program: Callable[[], Any]) -> list[Registered]:
    """Run ``program`` to completion under the mocks; returns everything it registered."""
    recorder.reset()

    @pulumi.runtime.test
    def _run() -> Any:
        return program()

    _run()
    return recorder.resources
