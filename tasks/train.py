"""Train stage: train → export → validate → register.

Each step is a plain typed function (tested without Prefect); the ``@task`` beside it is a thin
wrapper that adds what only a run needs: the platform coordinates from settings, a build
directory, audit events. Framework objects pass between tasks in memory, so caching is off.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE

from models import kinds, registry, validate
from models.data import Split, load_split
from models.kinds import TrainConfig, TrainedModel
from models.onnx_contract import (
    META_DATA_DIGEST,
    META_KIND,
    META_MODEL_NAME,
    OnnxInfo,
    check_file,
    set_metadata,
)
from models.registry import RegisteredVersion
from models.validate import GateDecision, Measurements
from policies import model as model_policy
from suite import audit
from suite import settings as settings_mod
from suite.errors import AuditError, ConfigError, GateBlocked, ProviderError, SuiteError
from tasks import evidence_model

KindName = Literal["torch-mlp", "sklearn-logreg"]
PROJECT_DIR = Path(__file__).resolve().parents[1]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Trained:
    model: TrainedModel
    split: Split


@dataclass(frozen=True)
class Validated:
    measurements: Measurements
    decision: GateDecision


def check_model_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(f"model name {name!r} is not allowed (expected letters, digits, "
                          "'_', '.', '-', starting with a letter or digit, e.g. 'digits')")
    return name


def git_sha(repo: Path = PROJECT_DIR) -> str:
    """HEAD of the project checkout, ``+dirty`` when tracked files differ; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD"],
                               capture_output=True, timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def train_model(config: TrainConfig) -> Trained:
    split = load_split(config.seed)
    return Trained(model=kinds.get(config.kind).train(split, config), split=split)


def export_model(trained: Trained, out_dir: Path, model_name: str) -> OnnxInfo:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    kinds.get(trained.model.kind).export(trained.model, path)
    set_metadata(path, {
        META_KIND: trained.model.kind,
        META_DATA_DIGEST: trained.split.digest,
        META_MODEL_NAME: model_name,
    }, doc=f"{trained.model.kind} digits classifier (Ultimate Suite)")
    return check_file(path)


def validate_model(
    trained: Trained, onnx: OnnxInfo, policy: model_policy.ModelPolicy,
    champion: tuple[str, Path] | None,
) -> Validated:
    """Measure and decide; raises GateBlocked (measured values and thresholds) on refusal."""
    kind = kinds.get(trained.model.kind)
    measurements = validate.measure(kind, trained.model, onnx.path, trained.split, champion)
    decision = validate.evaluate(policy, measurements)
    validate.enforce(decision)
    return Validated(measurements=measurements, decision=decision)


def register_model(
    tracking_uri: str, name: str, trained: Trained, onnx: OnnxInfo, validated: Validated,
    sha: str,
) -> RegisteredVersion:
    model = trained.model
    m = validated.measurements
    metrics = {**{k: float(v) for k, v in model.metrics.items()}, **m.as_metrics()}
    tags: dict[str, object] = {
        "git_sha": sha,
        "data_digest": trained.split.digest,
        "data_split": ",".join(f"{k}={v}" for k, v in trained.split.sizes().items()),
        "kind": model.kind,
        "framework": model.framework,
        "onnx_sha256": onnx.sha256,
        "onnx_opset": onnx.opset,
        "parity.max_abs_diff": m.parity_max_abs_diff,
        "parity.rows": m.n_test,
        "gate": "; ".join(validated.decision.reasons),
    }
    return registry.register(
        tracking_uri, name, onnx.path,
        input_example=trained.split.x_test[:2],
        params=model.config.params(), metrics=metrics, tags=tags,
    )


# ---- Prefect tasks: thin wrappers -------------------------------------------------------------

def _audit(action: str, subject: str, inputs: object, outcome: str = "ok") -> None:
    audit.append(settings_mod.load(), action=action, subject=subject, inputs=inputs,
                 outcome=outcome)


@task(name="train-model", cache_policy=NO_CACHE)
def train_task(config: TrainConfig) -> Trained:
    return train_model(config)


@task(name="export-onnx", cache_policy=NO_CACHE)
def export_task(trained: Trained, model_name: str) -> OnnxInfo:
    out_dir = settings_mod.load().dir("models", "build", f"{model_name}-{uuid.uuid4().hex[:12]}")
    return export_model(trained, out_dir, model_name)


@task(name="validate-model", cache_policy=NO_CACHE)
def validate_task(
    trained: Trained, onnx: OnnxInfo, model_name: str, policy_path: str | None = None,
) -> Validated:
    policy = model_policy.load(policy_path)
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        champion = registry.champion_onnx(settings_mod.load().mlflow_uri, model_name, Path(tmp))
        try:
            return validate_model(trained, onnx, policy, champion)
        except GateBlocked as exc:  # the refused file stays in the build dir for inspection
            _audit("model.gate", f"models:/{model_name}", {"onnx": onnx.sha256,
                   "path": str(onnx.path), "reasons": exc.reasons}, outcome="blocked")
            raise


def attest_model(settings: settings_mod.Settings, registered: RegisteredVersion,
                 trained: Trained, onnx: OnnxInfo, sha: str) -> dict[str, object]:
    """Sign the registered version's ONNX digest with the trainer's key (``suite-attest``):
    what a release checks before it mounts the file (:mod:`tasks.evidence_model`)."""
    return evidence_model.attest(settings, evidence_model.ModelFacts(
        name=registered.name, version=registered.version, run_id=registered.run_id,
        digest=onnx.sha256, git_sha=sha, data_digest=trained.split.digest,
        kind=trained.model.kind))


@task(name="register-model", cache_policy=NO_CACHE)
def register_task(
    trained: Trained, onnx: OnnxInfo, validated: Validated, model_name: str,
    sha: str | None = None,
) -> RegisteredVersion:
    settings = settings_mod.load()
    sha = sha or git_sha()
    registered = register_model(settings.mlflow_uri, model_name, trained, onnx, validated, sha)
    unattested: SuiteError | None = None
    try:
        attest_model(settings, registered, trained, onnx, sha)
    except SuiteError as exc:  # the version exists either way (and is the challenger)
        unattested = exc
    shutil.rmtree(onnx.path.parent, ignore_errors=True)  # the registry holds it now
    try:
        _audit("model.register", f"models:/{model_name}/{registered.version}",
               {"onnx": onnx.sha256, "data": trained.split.digest, "alias": registered.alias,
                "attested": unattested is None})
    except SuiteError as exc:  # the version exists either way: say so rather than hide it
        raise AuditError(f"registered {registered.model_uri} but its audit event failed: {exc}"
                         ) from exc
    if unattested is not None:
        raise ProviderError(f"registered {registered.model_uri} but could not attest it: "
                            f"{unattested}; no release mounts it: train a new version"
                            ) from unattested
    return registered
