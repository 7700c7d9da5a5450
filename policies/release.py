"""The rollout policy (``policies/release.yaml``): canary steps and smoke checks, validated with
errors that name the bad key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.files import read_yaml
from suite.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("release.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Analysis(_Strict):
    duration: float = Field(gt=0, le=3600)
    interval: float = Field(gt=0, le=600)


class _Step(_Strict):
    set_weight: int | None = Field(default=None, ge=0, le=100)
    pause: float | None = Field(default=None, ge=0, le=3600)
    analysis: _Analysis | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> _Step:
        given = [k for k in ("set_weight", "pause", "analysis") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one of set_weight, pause, analysis (got {given})")
        return self


class _Canary(_Strict):
    steps: list[_Step] = Field(min_length=1)


class _BlueGreen(_Strict):
    smoke_requests: int = Field(default=20, ge=1, le=10_000)
    post_switch_requests: int = Field(default=20, ge=0, le=10_000)


class _Rolling(_Strict):
    smoke_requests: int = Field(default=10, ge=0, le=10_000)


class _Approval(_Strict):
    timeout_seconds: int = Field(default=600, ge=1, le=7 * 24 * 3600)


class _Policy(_Strict):
    canary: _Canary
    blue_green: _BlueGreen = _BlueGreen()
    rolling: _Rolling = _Rolling()
    approval: _Approval = _Approval()


@dataclass(frozen=True)
class Step:
    kind: str  # "set_weight" | "pause" | "analysis"
    weight: int = 0
    seconds: float = 0.0
    interval: float = 0.0


@dataclass(frozen=True)
class ReleasePolicy:
    steps: tuple[Step, ...]
    blue_green_smoke: int
    blue_green_post_switch: int
    rolling_smoke: int
    approval_timeout_s: int


def parse(data: Any, where: str = "release policy") -> ReleasePolicy:
    try:
        raw = _Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{where} is invalid: {problems}") from exc
    steps: list[Step] = []
    for s in raw.canary.steps:
        if s.set_weight is not None:
            steps.append(Step("set_weight", weight=s.set_weight))
        elif s.pause is not None:
            steps.append(Step("pause", seconds=s.pause))
        elif s.analysis is not None:
            steps.append(Step("analysis", seconds=s.analysis.duration,
                              interval=s.analysis.interval))
    if not any(s.kind == "analysis" for s in steps):
        raise ConfigError(f"{where}: canary.steps has no analysis step (a canary must be judged)")
    return ReleasePolicy(tuple(steps), raw.blue_green.smoke_requests,
                         raw.blue_green.post_switch_requests, raw.rolling.smoke_requests,
                         raw.approval.timeout_seconds)


def load(path: Path | str = DEFAULT_PATH) -> ReleasePolicy:
    path = Path(path)
    return parse(read_yaml(path, "release policy"), str(path))
