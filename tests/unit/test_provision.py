"""Provision stage: the Automation API driver, its secrets and backend, drift, and the flows.

Most tests replace the Pulumi stack with a fake (no CLI here); the tests at the end drive the
real CLI when ``pulumi`` is on PATH and skip with the install hint otherwise.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
from prefect.logging import disable_run_logger
from pydantic import SecretStr

import flows.drift_check as drift_flow
import flows.provision as provision_flow
from suite.errors import ConfigError, MissingBinary, VaultError
from suite.settings import Settings
from tasks import provision as prov
from tasks import pulumi_workspace as ws

ROOT = Path(__file__).resolve().parents[2]
PULUMI = shutil.which("pulumi")
MODEL_SERVER_MANIFEST = ROOT / "tests" / "unit" / "stacks" / "manifests" / "model-server.yaml"
needs_cli = pytest.mark.skipif(PULUMI is None, reason=f"needs the Pulumi CLI: {ws.INSTALL_HINT}")
PASSPHRASE = ws.Secrets(ws.PASSPHRASE_PROVIDER, "test passphrase",
                        {"PULUMI_CONFIG_PASSPHRASE": SecretStr("unit-test-passphrase")})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "suite-home")


@pytest.fixture
def no_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws.shutil, "which", lambda name: None)

    def untouched(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing may run before the CLI check")

    monkeypatch.setattr(ws.vault_mod, "client", untouched)
    monkeypatch.setattr(prov, "open_stack", untouched)
    monkeypatch.setattr(prov, "create_markdown_artifact", untouched)


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws.shutil, "which", lambda name: "/opt/pulumi/bin/pulumi")


class Value:
    def __init__(self, value: Any, secret: bool = False) -> None:
        self.value, self.secret = value, secret


class Result:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class FakeStack:
    """Records calls the way the Automation API's Stack would receive them."""

    def __init__(self, preview: dict[str, int] | None = None,
                 refresh: dict[str, int] | None = None,
                 config: dict[str, Value] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._preview = preview if preview is not None else {"same": 12}
        self._refresh = refresh if refresh is not None else {"same": 12}
        self.config = config if config is not None else {}
        self.outputs_ = {"weights": Value({"stable": 90, "canary": 10}),
                         "kubeconfig": Value("secret-data", secret=True)}

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        kwargs["on_output"](f"{name}: engine line")
        self.calls.append((name, {k: v for k, v in kwargs.items() if not k.startswith("on_")}))

    def preview(self, **kwargs: Any) -> Result:
        self._record("preview", kwargs)
        return Result(change_summary=self._preview)

    def preview_refresh(self, **kwargs: Any) -> Result:
        self._record("preview_refresh", kwargs)
        return Result(change_summary=self._refresh)

    def up(self, **kwargs: Any) -> Result:
        self._record("up", kwargs)
        return Result(outputs=self.outputs_, summary=Result(resource_changes={"update": 1}))

    def refresh(self, **kwargs: Any) -> Result:
        self._record("refresh", kwargs)
        return Result(summary=Result(resource_changes={"same": 12}))

    def destroy(self, **kwargs: Any) -> Result:
        self._record("destroy", kwargs)
        return Result(summary=Result(resource_changes={"delete": 12}))

    def outputs(self) -> dict[str, Value]:
        return self.outputs_

    def get_all_config(self) -> dict[str, Value]:
        return self.config

    def set_all_config(self, config: dict[str, Any]) -> None:
        self.config.update(config)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, fake_cli: None) -> Iterator[FakeStack]:
    fake = FakeStack()
    monkeypatch.setattr(prov, "open_stack", lambda request, settings, secrets=None: fake)
    yield fake


K8S = prov.StackRequest(target="kubernetes", stack="dev-k8s")


# --- without the CLI --------------------------------------------------------------------------


def test_missing_cli_names_the_install_commands() -> None:
    with pytest.raises(MissingBinary) as err:
        ws.require_pulumi_cli(which=lambda name: None)
    message = str(err.value)
    assert "curl -fsSL https://get.pulumi.com | sh" in message
    assert "release tarball" in message and "PATH" in message


@pytest.mark.usefixtures("no_cli")
@pytest.mark.parametrize("action", list(prov.Action))
def test_pulumi_targets_fail_at_once_without_the_cli(settings: Settings,
                                                     action: prov.Action) -> None:
    started = time.monotonic()
    with pytest.raises(MissingBinary, match=r"get\.pulumi\.com"):
        prov.run_action(K8S, settings, action, confirm_destroy="dev-k8s")
    # before any stack work or network wait (those take far longer); not a tight bound: the
    # first call imports Pulumi's SDK, which takes seconds on a loaded 2-core machine
    assert time.monotonic() - started < 15.0


@pytest.mark.usefixtures("no_cli")
def test_the_provision_task_fails_at_once_with_the_hint(settings: Settings) -> None:
    with disable_run_logger(), pytest.raises(MissingBinary, match=r"get\.pulumi\.com"):
        prov.provision_task.fn(settings, K8S, prov.Action.UP)


@pytest.mark.usefixtures("no_cli")
def test_drift_check_fails_at_once_without_the_cli(settings: Settings) -> None:
    with pytest.raises(MissingBinary, match=r"get\.pulumi\.com"):
        prov.drift_check(K8S, settings)


@pytest.mark.usefixtures("no_cli")
def test_the_local_target_needs_no_cli(settings: Settings) -> None:
    result = prov.run_action(prov.StackRequest(target="local", stack="local"), settings,
                             prov.Action.UP)
    assert result.target == "local" and "suite up" in result.note


# --- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "needle"),
    [({"target": "openshift", "stack": "dev"}, "unknown target 'openshift' (known: local, aws"),
     ({"target": "aws", "stack": "dev aws"}, "stack name 'dev aws' is invalid"),
     ({"target": "kubernetes", "stack": "dev-k8s", "config": {"canaryWeight": "5"}},
      "key 'canaryWeight' has no namespace")],
)
def test_bad_requests_say_what_is_expected(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        prov.StackRequest(**fields)
    assert needle in str(err.value)


# --- actions on a fake stack ----------------------------------------------------------------


def test_up_previews_with_the_policy_pack_before_applying(settings: Settings,
                                                          stack: FakeStack) -> None:
    lines: list[str] = []
    result = prov.run_action(K8S, settings, prov.Action.UP, log=lines.append)
    pack = [str(ROOT / "policies" / "crossguard")]
    assert stack.calls == [("preview", {"policy_packs": pack}), ("up", {"policy_packs": pack})]
    assert lines == ["preview: engine line", "up: engine line"]
    assert result.outputs == {"weights": {"stable": 90, "canary": 10}, "kubeconfig": "[secret]"}
    assert result.changes == {"update": 1}
    assert "secret-data" not in result.markdown()


def test_a_policy_pack_config_is_passed_along(settings: Settings, stack: FakeStack,
                                              tmp_path: Path) -> None:
    request = prov.StackRequest(target="kubernetes", stack="dev-k8s",
                                policy_pack_config=tmp_path / "levels.json")
    prov.run_action(request, settings, prov.Action.PREVIEW)
    assert stack.calls[0][1]["policy_pack_configs"] == [str(tmp_path / "levels.json")]


def test_preview_does_not_apply(settings: Settings, stack: FakeStack) -> None:
    result = prov.run_action(K8S, settings, prov.Action.PREVIEW)
    assert [name for name, _ in stack.calls] == ["preview"]
    assert result.changes == {"same": 12}


def test_refresh_adopts_cloud_state(settings: Settings, stack: FakeStack) -> None:
    prov.run_action(K8S, settings, prov.Action.REFRESH)
    assert [name for name, _ in stack.calls] == ["refresh"]


@pytest.mark.parametrize("confirm", [None, "", "dev-aws", "yes"])
def test_destroy_needs_the_stack_name_as_confirmation(settings: Settings, stack: FakeStack,
                                                      confirm: str | None) -> None:
    with pytest.raises(ConfigError, match="needs confirm_destroy='dev-k8s'"):
        prov.run_action(K8S, settings, prov.Action.DESTROY, confirm_destroy=confirm)
    assert stack.calls == []


def test_confirmed_destroy_runs(settings: Settings, stack: FakeStack) -> None:
    result = prov.run_action(K8S, settings, prov.Action.DESTROY, confirm_destroy="dev-k8s")
    assert [name for name, _ in stack.calls] == ["destroy"]
    assert result.changes == {"delete": 12}


# --- drift ----------------------------------------------------------------------------------


def test_no_pending_change_is_no_drift(settings: Settings, stack: FakeStack) -> None:
    report = prov.drift_check(K8S, settings)
    assert [name for name, _ in stack.calls] == ["preview_refresh", "preview"]
    assert not report.drifted
    assert report.reason == "stack dev-k8s: no drift (cloud, state and program agree)"


def test_cloud_changes_are_drift(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                 fake_cli: None) -> None:
    fake = FakeStack(refresh={"same": 10, "update": 2}, preview={"same": 11, "create": 1})
    monkeypatch.setattr(prov, "open_stack", lambda request, settings, secrets=None: fake)
    report = prov.drift_check(K8S, settings)
    assert report.drifted
    assert report.reason == ("stack dev-k8s: drift - cloud differs from state (update: 2); "
                             "program differs from state (create: 1)")
    assert "DRIFT" in report.markdown()


def test_drift_is_reported_as_an_artifact_and_an_audit_event(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    artifacts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(prov, "create_markdown_artifact", lambda **kw: artifacts.append(kw))
    import suite.audit

    monkeypatch.setattr(suite.audit, "append", lambda settings, **kw: events.append(kw))
    report = prov.DriftReport("dev-k8s", {"update": 2, "same": 3}, {"same": 5})
    with disable_run_logger():
        reason = prov.report_drift_task.fn(settings, report)
    assert reason == report.reason
    assert artifacts[0]["key"] == "drift-dev-k8s"
    # no actor passed: the record names this process's authenticated identity (audit's default)
    assert events == [{"action": "pulumi.drift-check",
                       "subject": "pulumi-stack/dev-k8s",
                       "inputs": {"refresh": {"update": 2, "same": 3}, "preview": {"same": 5}},
                       "outcome": "drift"}]


def test_provision_task_publishes_outputs_and_audits(settings: Settings, stack: FakeStack,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(prov, "create_markdown_artifact", lambda **kw: artifacts.append(kw))
    import suite.audit

    monkeypatch.setattr(suite.audit, "append", lambda settings, **kw: events.append(kw))
    request = prov.StackRequest(target="kubernetes", stack="dev-k8s",
                                config={"suite:canaryWeight": "10"})
    with disable_run_logger():
        result = prov.provision_task.fn(settings, request, prov.Action.UP)
    assert artifacts[0]["key"] == "pulumi-dev-k8s"
    assert "| weights |" in artifacts[0]["markdown"]
    assert events[0]["action"] == "pulumi.up"
    assert events[0]["inputs"] == {"target": "kubernetes",
                                   "config": {"suite:canaryWeight": "10"}}
    assert result.outputs["kubeconfig"] == "[secret]"


# --- workspace: backend, secrets, stack selection -----------------------------------------


def test_backend_defaults_to_a_file_backend_under_suite_home(settings: Settings) -> None:
    url = ws.backend_url(settings, env={})
    assert url == f"file://{settings.home / 'pulumi'}"
    assert (settings.home / "pulumi").is_dir()


def test_backend_env_and_explicit_urls_override(settings: Settings, tmp_path: Path) -> None:
    assert ws.backend_url(settings, env={"PULUMI_BACKEND_URL": "s3://state"}) == "s3://state"
    explicit = f"file://{tmp_path / 'elsewhere'}"
    assert ws.backend_url(settings, explicit, env={"PULUMI_BACKEND_URL": "s3://x"}) == explicit
    assert (tmp_path / "elsewhere").is_dir()


class FakeVault:
    def __init__(self, transit_error: Exception | None = None,
                 kv: dict[str, dict[str, str]] | None = None) -> None:
        self.token = "s.worker-token"

        class Transit:
            def encrypt_data(self, name: str, plaintext: str) -> dict[str, Any]:
                if transit_error is not None:
                    raise transit_error
                return {"data": {"ciphertext": "vault:v1:x"}}

        class KV:
            def read_secret_version(self, path: str, mount_point: str,
                                    raise_on_deleted_version: bool) -> dict[str, Any]:
                if path not in (kv or {}):
                    raise hvac.exceptions.InvalidPath()
                return {"data": {"data": (kv or {})[path]}}

        class Secrets:
            transit = Transit()
            kv = type("KVv", (), {"v2": KV()})()

        self.secrets = Secrets()


def test_secrets_use_vault_transit_when_it_works(settings: Settings) -> None:
    secrets = ws.secrets_for(settings, "dev-k8s", FakeVault())
    assert secrets.provider == "hashivault://suite-data"
    assert secrets.revealed_env() == {"VAULT_SERVER_URL": "http://127.0.0.1:8200",
                                      "VAULT_SERVER_TOKEN": "s.worker-token"}
    assert "s.worker-token" not in repr(secrets)


def test_secrets_fall_back_to_the_passphrase_in_vault_kv(settings: Settings) -> None:
    vault = FakeVault(hvac.exceptions.Forbidden(),
                      kv={"suite/pulumi/dev-k8s": {"passphrase": "correct horse"}})
    secrets = ws.secrets_for(settings, "dev-k8s", vault)
    assert secrets.provider == "passphrase"
    assert secrets.revealed_env() == {"PULUMI_CONFIG_PASSPHRASE": "correct horse"}
    assert "secret/suite/pulumi/dev-k8s" in secrets.source and "Forbidden" in secrets.source


def test_no_transit_and_no_passphrase_says_how_to_fix_it(settings: Settings) -> None:
    with pytest.raises(VaultError) as err:
        ws.secrets_for(settings, "dev-k8s", FakeVault(hvac.exceptions.Forbidden()))
    assert "suite secrets put pulumi/dev-k8s passphrase" in str(err.value)


def test_workspace_env_carries_backend_and_secrets() -> None:
    env = ws.workspace_env("file:///state", PASSPHRASE)
    assert env["PULUMI_BACKEND_URL"] == "file:///state"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "unit-test-passphrase"


def test_open_stack_selects_in_the_repo_and_checks_the_cloud(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, fake_cli: None,
) -> None:
    import pulumi.automation as auto

    seen: dict[str, Any] = {}
    fake = FakeStack(config={})

    def select(stack_name: str, work_dir: str, opts: Any) -> FakeStack:
        seen.update(stack_name=stack_name, work_dir=work_dir, opts=opts)
        return fake

    monkeypatch.setattr(auto, "create_or_select_stack", select)
    request = prov.StackRequest(target="kubernetes", stack="dev-k8s",
                                config={"suite:canaryWeight": "20"})
    assert prov.open_stack(request, settings, PASSPHRASE) is fake
    assert seen["stack_name"] == "dev-k8s" and seen["work_dir"] == str(ROOT)
    assert seen["opts"].secrets_provider == "passphrase"
    assert seen["opts"].env_vars["PULUMI_BACKEND_URL"].startswith("file://")
    assert {k: v.value for k, v in fake.config.items()} == {
        "suite:canaryWeight": "20", "suite:cloud": "kubernetes"}
    fake.config["suite:cloud"] = Value("aws")
    with pytest.raises(ConfigError, match="has suite:cloud='aws' but the target is"):
        prov.open_stack(request, settings, PASSPHRASE)


def test_artifact_keys_are_prefect_safe() -> None:
    assert prov.artifact_key("pulumi", "Dev_K8s.eu") == "pulumi-dev-k8s-eu"


# --- flows (wiring only) --------------------------------------------------------------------


def test_provision_flow_wires_the_request(settings: Settings,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(provision_flow.settings_mod, "load", lambda: settings)
    def task(*args: Any) -> str:
        seen.append(args)
        return "done"

    monkeypatch.setattr(provision_flow, "provision_task", task)
    assert provision_flow.provision.fn(target="aws", stack="dev-aws",
                                       config={"suite:prefix": "x"},
                                       policy_pack=False) == "done"
    ((got_settings, request, action, confirm),) = seen
    assert (request.target, request.stack, request.policy_pack) == ("aws", "dev-aws", None)
    assert (action, confirm, got_settings) == (prov.Action.UP, None, settings)


def test_drift_flow_checks_then_reports(settings: Settings,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    report = prov.DriftReport("dev-k8s", {}, {})
    steps: list[str] = []
    monkeypatch.setattr(drift_flow.settings_mod, "load", lambda: settings)
    def check(s: Settings, request: prov.StackRequest) -> prov.DriftReport:
        steps.append(f"check {request.stack}")
        return report

    def record(s: Settings, r: prov.DriftReport) -> str:
        steps.append("report")
        return r.reason

    monkeypatch.setattr(drift_flow, "drift_check_task", check)
    monkeypatch.setattr(drift_flow, "report_drift_task", record)
    assert drift_flow.drift_check.fn() is report
    assert steps == ["check dev-k8s", "report"]


def test_flow_names_are_kebab_case() -> None:
    assert provision_flow.provision.name == "provision"
    assert drift_flow.drift_check.name == "drift-check"


# --- the real CLI (skipped here: no `pulumi` on PATH) ---------------------------------------


@pytest.fixture
def k8s_project(tmp_path: Path) -> Path:
    """A project dir beside the repo's (stack files land here, not in the repo)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: ultimate-suite\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {ROOT / '.venv'}\nmain: stacks/\n")
    (project / "stacks").symlink_to(ROOT / "stacks")
    return project


def render_request(project: Path, tmp_path: Path, weight: str) -> prov.StackRequest:
    return prov.StackRequest(
        target="kubernetes", stack="unit-k8s", project_dir=project,
        backend_url=f"file://{tmp_path / 'state'}",
        config={"suite:owner": "ml-platform", "suite:costCenter": "cc-1",
                "suite:dataClassification": "internal",
                "suite:manifest": str(MODEL_SERVER_MANIFEST),
                "suite:stableImage": "registry.example.com/ms:1.0",
                "suite:canaryImage": "registry.example.com/ms:1.1",
                "suite:canaryWeight": weight,
                "suite:renderYamlDir": str(tmp_path / "rendered")})


@needs_cli
def test_automation_api_previews_with_the_pack_and_renders(settings: Settings, tmp_path: Path,
                                                           k8s_project: Path) -> None:
    lines: list[str] = []
    request = render_request(k8s_project, tmp_path, "10")
    preview = prov.run_action(request, settings, prov.Action.PREVIEW, log=lines.append,
                              secrets=PASSPHRASE)
    assert preview.changes.get("create", 0) > 0
    assert any("crossguard" in line for line in lines), "the policy pack ran"
    up = prov.run_action(request, settings, prov.Action.UP, secrets=PASSPHRASE)
    assert up.outputs["weights"] == {"stable": 90, "canary": 10}
    assert any((tmp_path / "rendered").rglob("*.yaml"))


@needs_cli
def test_automation_api_shifts_weights_and_detects_no_drift(settings: Settings, tmp_path: Path,
                                                            k8s_project: Path) -> None:
    prov.run_action(render_request(k8s_project, tmp_path, "10"), settings, prov.Action.UP,
                    secrets=PASSPHRASE)
    shifted = prov.run_action(render_request(k8s_project, tmp_path, "50"), settings,
                              prov.Action.UP, secrets=PASSPHRASE)
    assert shifted.outputs["weights"] == {"stable": 50, "canary": 50}
    report = prov.drift_check(render_request(k8s_project, tmp_path, "50"), settings,
                              secrets=PASSPHRASE)
    assert not pending_program(report)


def pending_program(report: prov.DriftReport) -> dict[str, int]:
    return prov.pending(report.program_changes)


@needs_cli
def test_automation_api_refuses_a_destroy_without_confirmation(settings: Settings,
                                                               tmp_path: Path,
                                                               k8s_project: Path) -> None:
    with pytest.raises(ConfigError):
        prov.run_action(render_request(k8s_project, tmp_path, "0"), settings,
                        prov.Action.DESTROY, secrets=PASSPHRASE)


def test_prefect_yaml_deploys_provision_and_a_nightly_drift_check() -> None:
    import yaml
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in document["deployments"]}
    flows_by_name: dict[str, Any] = {"provision": provision_flow.provision,
                                     "drift-check": drift_flow.drift_check}
    for name, flow in flows_by_name.items():
        deployment = deployments[name]
        assert deployment["work_pool"] == {"name": "suite"}, name
        module, function = deployment["entrypoint"].split(":")
        assert (ROOT / module).exists() and function == flow.fn.__name__, name
        schema = parameter_schema(flow.fn).model_dump_for_openapi()
        assert validate(deployment["parameters"], schema, raise_on_error=True,
                        ignore_required=True) == []
    (schedule,) = deployments["drift-check"]["schedules"]
    minute, hour, *rest = schedule["cron"].split()
    assert rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit(), "nightly"
