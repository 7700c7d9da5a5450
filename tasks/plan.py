"""What a release needs, read and validated when it starts: the registered service, its source
at the commit, its manifest at that commit, and every analysis template its steps name — so a
typo fails in the first second, not after a build.

Templates are found in the service's repository first (``.suite/analysis/NAME.yaml``), then
among the platform's built-in ones (``policies/analysis/NAME.yaml``: ``http``, ``model-server``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from policies.canary import load as load_template
from suite.errors import ConfigError
from suite.services import spec as spec_mod
from suite.services.registry import Registration, Registry
from suite.services.spec import ServiceSpec
from suite.settings import Settings
from tasks.source import checkout

BUILT_IN = Path(__file__).resolve().parents[1] / "policies" / "analysis"
REPO_TEMPLATES = Path(".suite") / "analysis"


@dataclass(frozen=True)
class ReleasePlan:
    registration: Registration
    spec: ServiceSpec
    source: str  # checked-out tree at the commit
    git_sha: str
    templates: dict[str, str]  # template name -> file


def template_path(name: str, source: Path) -> Path:
    for folder in (source / REPO_TEMPLATES, BUILT_IN):
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    built_in = sorted(p.stem for p in BUILT_IN.glob("*.yaml"))
    raise ConfigError(f"analysis template {name!r} not found (built in: {', '.join(built_in)}; "
                      f"or add {REPO_TEMPLATES}/{name}.yaml to the service's repository)")


def resolve_templates(spec: ServiceSpec, source: Path) -> dict[str, str]:
    """Each template the manifest names, parsed once now: its errors name file and key."""
    found: dict[str, str] = {}
    for name in spec.strategy.templates():
        path = template_path(name, source)
        load_template(path)  # validated now; each step loads it again where it runs
        found[name] = str(path)
    return found


def plan(settings: Settings, service: str, git_sha: str = "") -> ReleasePlan:
    registration = Registry(settings).get(service)
    src, sha = checkout(settings, registration.repository, git_sha or registration.branch)
    spec = spec_mod.load(src)
    if spec.service != service:
        raise ConfigError(f"{src}/{spec_mod.MANIFEST} at {sha[:12]} names service "
                          f"{spec.service!r}, but the release is of {service!r} (a renamed "
                          f"service is a new one: `suite services add` it)")
    return ReleasePlan(registration, spec, str(src), sha, resolve_templates(spec, Path(src)))


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(settings: Settings, service: str, git_sha: str = "") -> ReleasePlan:
    return plan(settings, service, git_sha)
