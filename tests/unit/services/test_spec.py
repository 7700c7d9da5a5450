"""The service manifest: every problem named with its key, the value seen and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from suite.services import spec as spec_mod
from suite.services.spec import ManifestError, StrategyKind

REPO = Path(__file__).resolve().parents[3]

GOOD = """
service: httpbin
build: {dockerfile: Dockerfile, target: ""}
port: 8080
readiness: /healthz
replicas: 2
resources: {memory: 256Mi, cpus: 0.5}
env: {LOG_LEVEL: info}
secrets: {DB_PASSWORD: services/httpbin/db#password}
route: {host: httpbin.localhost}
test: {command: ["python", "-m", "pytest", "-q"]}
strategy:
  canary:
    steps:
      - setWeight: 20
      - pause: {duration: 10s}
      - analysis: {templates: [{templateName: http}]}
      - setWeight: 50
      - pause: {}
      - analysis: {templates: [{templateName: http}]}
model: {name: digits, alias: challenger}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        spec_mod.loads(text)
    return info.value.problems


def with_change(**changes: object) -> str:
    data = yaml.safe_load(GOOD)
    data.update(changes)
    return yaml.safe_dump(data)


def test_the_issue_example_parses_into_a_frozen_spec() -> None:
    spec = spec_mod.loads(GOOD)
    assert spec.service == "httpbin" and spec.port == 8080 and spec.replicas == 2
    assert spec.resources.memory_bytes == 256 * 1024**2 and spec.resources.cpus == 0.5
    assert spec.secrets[0].env == "DB_PASSWORD" and str(spec.secrets[0]) == \
        "services/httpbin/db#password"
    assert spec.strategy.kind == StrategyKind.CANARY
    kinds = [(s.kind, s.weight, s.pause_s) for s in spec.strategy.steps]
    assert kinds[:2] == [("setWeight", 20, None), ("pause", 20, 10.0)]
    assert kinds[4] == ("pause", 50, None)  # no duration: waits for `suite release promote`
    assert spec.strategy.templates() == ("http",)
    assert spec.model is not None and spec.model.name == "digits"
    assert spec.digest.startswith("sha256:")
    with pytest.raises(AttributeError):
        spec.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("change", "expected"), [
    ({"port": "eighty"}, "port: 'eighty' is not an integer 1..65535"),
    ({"port": 70000}, "port: 70000 is not an integer 1..65535"),
    ({"service": "Http_Bin"}, "service: 'Http_Bin' is not a service name"),
    ({"replicas": 0}, "replicas: 0 is not an integer 1..32"),
    ({"readiness": "healthz"}, "readiness: 'healthz' is not an HTTP path starting with '/'"),
    ({"resources": {"memory": "lots"}}, "resources.memory: 'lots' is not a memory size"),
    ({"resources": {"cpus": 0}}, "resources.cpus: 0 is not a number of CPUs"),
    ({"env": {"A": {"b": 1}}}, "env.A: {'b': 1} is not a string (quote it)"),
    ({"env": {"PORT": "1"}}, "env.PORT: set by the platform"),
    ({"secrets": {"X": "services/other/db#pw"}}, "secrets.X: 'services/other/db#pw' is outside "
                                                 "this service's secrets"),
    ({"secrets": {"X": "services/httpbin/db"}}, "secrets.X: 'services/httpbin/db' is not a "
                                                "Vault KV reference"),
    ({"route": {"host": "Not A Host"}}, "route.host: 'Not A Host' is not a lower-case host"),
    ({"test": {"command": "pytest -q"}}, "test.command: 'pytest -q' is not a list of strings"),
    ({"build": {"dockerfile": "../Dockerfile"}}, "build.dockerfile: '../Dockerfile' is not a "
                                                 "path relative to the repository root"),
    ({"build": {"dockerfile": "Dockerfile", "args": {"BASE_IMAGE": "x"}}},
     "build.args.BASE_IMAGE: set by the platform"),
    ({"model": {"name": "digits", "alias": "prod"}}, "model.alias: 'prod' is not 'challenger'"),
    ({"replica": 3}, "replica: unknown key (did you mean 'replicas'?)"),
    ({"strategy": {"canary": {"steps": []}, "rolling": {}}}, "strategy: ['canary', 'rolling'] "
                                                             "(expected exactly one of"),
    ({"strategy": {"canary": {"steps": [{"setWeight": 120}]}}},
     "strategy.canary.steps[0].setWeight: 120 is not an integer percentage 0..100"),
    ({"strategy": {"canary": {"steps": [{"pause": {"duration": "soon"}}]}}},
     "strategy.canary.steps[0].pause.duration: 'soon' is not a duration"),
    ({"strategy": {"canary": {"steps": [{"setWeight": 10, "pause": {}}]}}},
     "has 2 kinds (expected exactly one of setWeight, pause, analysis)"),
    ({"strategy": {"canary": {"steps": [{"analysis": {"templates": [{"templateName": "http"}]}}]}}},
     "runs while the canary has 0 % of the traffic"),
    ({"strategy": {"canary": {"steps": [{"setWeight": 5}, {"analysis": {"templates": [
        {"templateName": "http"}], "interval": "30s", "duration": "10s"}}]}}},
     "analysis.interval: '30s' is not a duration 0.5s..10s"),
])
def test_bad_manifest_names_key_value_and_fix(change: dict[str, object], expected: str) -> None:
    found = problems(with_change(**change))
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(with_change(port="eighty", replicas=0, service="X"))
    assert len(found) == 3


def test_not_yaml_and_not_a_mapping_are_named() -> None:
    assert "not valid YAML" in problems("service: [unclosed")[0]
    assert "is not a mapping" in problems("- a list")[0]


def test_missing_port_is_named() -> None:
    data = yaml.safe_load(GOOD)
    del data["port"]
    assert any(p.startswith("port: missing") for p in problems(yaml.safe_dump(data)))


def test_defaults_route_host_and_strategy_kinds() -> None:
    data = yaml.safe_load(GOOD)
    del data["route"]
    data["strategy"] = {"blueGreen": {"autoPromotionEnabled": False}}
    spec = spec_mod.loads(yaml.safe_dump(data))
    assert spec.host == "httpbin.localhost"
    assert spec.strategy.kind == StrategyKind.BLUE_GREEN and not spec.strategy.auto_promotion
    data["strategy"] = {"rolling": {}}
    assert spec_mod.loads(yaml.safe_dump(data)).strategy.kind == StrategyKind.ROLLING


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10.0), ("500ms", 0.5), ("1.5m", 90.0),
                                               ("2h", 7200.0), (3, 3.0), ("x", None),
                                               (-1, None), (True, None)])
def test_durations(text: object, seconds: float | None) -> None:
    assert spec_mod.parse_duration(text) == seconds


@pytest.mark.parametrize("folder", [REPO, REPO / "examples" / "hello"])
def test_the_shipped_manifests_are_valid(folder: Path) -> None:
    spec = spec_mod.load(folder)
    assert (folder / spec.build.dockerfile).is_file()


def test_a_missing_manifest_says_where_it_is_expected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"suite\.yaml not found"):
        spec_mod.load(tmp_path)
