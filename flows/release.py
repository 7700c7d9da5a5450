"""Flow ``release``: build → scan → test → provision → deploy → canary steps → promote or roll back.

Wiring only: every stage is a task in ``tasks/``. The deploy tasks run inside a Prefect
transaction whose rollback hooks send all traffic back to stable if anything after them fails.
A MARGINAL step pauses the run for a human (approve / roll back, with reason; timeout rolls
back); FAIL and ERROR roll back at once. Every stage is audited and the run ends with a report.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.transactions import transaction

from policies.release import load as load_policy
from suite import settings as settings_mod
from suite.errors import ConfigError
from suite.load import LoadGenerator, default_rows
from tasks.build import BuildSpec, build_task
from tasks.deploy import (
    deploy_canary_task,
    deploy_preview_task,
    deploy_stable_task,
    fetch_model,
    finalize_task,
    new_release_id,
    promote_task,
    resolve_model_version,
    workload,
)
from tasks.release import (
    audit_task,
    current_champion,
    promote_model_task,
    provision_local_task,
    stage,
)
from tasks.report import ReleaseRecord, report_task
from tasks.rollout import RolledBack, canary_steps, load_stage, stable_missing
from tasks.scan import scan_task
from tasks.smoke import smoke_task
from tasks.source import checkout_task
from tasks.targets.base import Strategy
from tasks.test_stage import test_task

PROJECT = Path(__file__).resolve().parents[1]
#: the model server's own tests: what the test stage runs by default
SERVICE_TESTS = ["tests/unit/models/test_serve_app.py", "tests/unit/models/test_serve_inputs.py",
                 "tests/unit/models/test_serve_batcher.py",
                 "tests/unit/models/test_serve_config.py"]


@flow(name="release", log_prints=True)
def release(
    git_sha: str = "",
    repository: str = "",
    service: str = "model-server",
    model_name: str = "digits",
    model_version: str = "",
    strategy: Strategy = Strategy.CANARY,
    target: str = "local",
    replicas: int = 2,
    policy_path: str = "policies/release.yaml",
    analysis_template: str = "policies/canary-model-server.yaml",
    test_paths: list[str] | None = None,
    synthetic_load_rps: float = 0.0,
    fault_latency_ms: float = 0.0,
    fault_error_ratio: float = 0.0,
    triggered_by: str = "manual",
) -> dict[str, object]:
    """Release ``service`` built from ``git_sha`` with model ``model_name`` (default: its
    ``challenger``, else ``champion``).

    ``repository``: a git URL or path to build from (default: this project's checkout).
    ``synthetic_load_rps``: steady predictions sent by the flow itself during the rollout, for
    environments without real traffic (demo, tests). ``fault_*``: FAULT INJECTION into the new
    version (demos and tests of the rollback path); 0 = off.
    """
    log = get_run_logger()
    settings = settings_mod.load()
    policy = load_policy(PROJECT / policy_path)
    strategy = Strategy(strategy)
    rec = ReleaseRecord(release="", service=service, strategy=strategy.value, target=target,
                        triggered_by=triggered_by)
    load: LoadGenerator | None = None
    try:
        with stage(rec, "checkout"):
            src, sha = checkout_task(settings, repository, git_sha)
        rec.git_sha, rec.release = sha, new_release_id(sha)
        audit_task(settings, "release.start", rec.release,
                   {"git_sha": sha, "strategy": strategy.value, "target": target,
                    "run": str(flow_run.get_id()), "triggered_by": triggered_by})

        with stage(rec, "build", lambda: rec.image):
            image = build_task(BuildSpec(repo_root=Path(src)), settings)
            rec.image = image.pinned
        with stage(rec, "scan"):
            gate = scan_task(image=image.pinned, repo=src, settings=settings)
            rec.gate = {"allowed": gate.allowed, "warnings": list(gate.warnings),
                        "waivers": list(gate.waivers_used)}
        with stage(rec, "test", lambda: f"{tests.passed} passed, {tests.failed} failed"):
            tests = test_task(test_paths or SERVICE_TESTS, src, f"{service}@{sha[:12]}",
                              settings)
        with stage(rec, "provision"):
            if target != "local":
                raise ConfigError(f"target {target!r}: provision it with the `provision` flow "
                                  f"(Pulumi) first; the release flow drives only `local` today")
            provision_local_task(settings)
        with stage(rec, "model"):
            version = resolve_model_version(settings, model_name, model_version or None)
            model = fetch_model(settings, model_name, version)
            rec.model = f"{model_name} v{version}"
            rec.champion_before = current_champion(settings, model_name)
        wl = workload(service=service, release=rec.release, git_sha=sha, image=image.pinned,
                      model=model, replicas=replicas, fault_latency_ms=fault_latency_ms,
                      fault_error_ratio=fault_error_ratio)

        first = stable_missing(settings, target, service)
        if synthetic_load_rps > 0:
            load = LoadGenerator(f"{settings.url('haproxy')}/predict", synthetic_load_rps,
                                 3600, default_rows()).start()

        with transaction():
            if first or strategy == Strategy.ROLLING:
                with stage(rec, "deploy-rolling" if not first else "deploy-first"):
                    deploy_stable_task(target, wl, settings)
                    smoke_task(settings.url("haproxy"), max(policy.rolling_smoke, 1))
            elif strategy == Strategy.BLUE_GREEN:
                with stage(rec, "deploy-preview"):
                    deploy_preview_task(target, wl, settings)
                    smoke_task(settings.url("haproxy_preview"), policy.blue_green_smoke)
                with stage(rec, "switch"):
                    promote_task(target, service, settings)
                    if policy.blue_green_post_switch:
                        smoke_task(settings.url("haproxy"), policy.blue_green_post_switch)
            else:
                with stage(rec, "deploy-canary"):
                    deploy_canary_task(target, wl, settings)
                canary_steps(rec, settings, target, service, analysis_template, policy)
                with stage(rec, "promote"):
                    promote_task(target, service, settings)

        with stage(rec, "finalize"):
            finalize_task(target, service, settings)
            before = promote_model_task(settings, model_name, version,
                                        f"release {rec.release} ({sha[:12]}) promoted")
            rec.champion_before, rec.champion_after = before, version
        rec.outcome, rec.reason = "promoted", f"{service} {sha[:12]} with {rec.model} is stable"
    except RolledBack as exc:
        rec.outcome, rec.reason = "rolled_back", str(exc)
    except Exception as exc:
        rec.outcome, rec.reason = "failed", f"{type(exc).__name__}: {exc}"
        log.error("release %s failed: %s", rec.release, rec.reason)
        raise
    finally:
        if load is not None:
            rec.stages.append(load_stage(rec, load))
        audit_task(settings, f"release.{rec.outcome}", rec.release or "(none)",
                   rec.summary(), outcome=rec.outcome)
        report_task(rec)
    return rec.summary()


