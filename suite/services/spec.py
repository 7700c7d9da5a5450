"""The service manifest ``suite.yaml``, read into a frozen, validated :class:`ServiceSpec`.

A team puts ``suite.yaml`` at the root of its service's repository; the platform reads it at the
commit being released. Keys follow Argo Rollouts where Argo has a word for the thing
(``strategy.canary.steps``, ``setWeight``, ``pause.duration``, ``analysis.templates``,
``blueGreen.autoPromotionEnabled``). Validation collects *every* problem before it fails, each
naming the key, the value seen and the fix (``port: 'eighty' is not an integer 1..65535``), so a
service repository's CI (``suite services validate .``) shows them all at once.

This module is pure: it reads text, never the platform.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from suite.errors import ConfigError

MANIFEST = "suite.yaml"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOST_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
TEMPLATE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SECRET_RE = re.compile(r"^([a-z0-9][a-z0-9_./-]*)#([A-Za-z0-9_.-]+)$")
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_BYTES = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3,
          None: 1}
#: environment names the platform sets itself; a manifest may not take them over
RESERVED_ENV = frozenset({"PORT", "SUITE_SERVICE", "SUITE_RELEASE", "SUITE_VERSION", "SUITE_TRACK"})
MAX_REPLICAS = 32
MIN_MEMORY = 16 * 1024**2


class ManifestError(ConfigError):
    """``suite.yaml`` is invalid; ``problems`` lists every one, each naming its key."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}: {len(self.problems)} problem(s):\n{lines}")


class StrategyKind(StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blueGreen"
    ROLLING = "rolling"


@dataclass(frozen=True)
class Build:
    dockerfile: str = "Dockerfile"
    target: str = ""
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Resources:
    memory_bytes: int = 256 * 1024**2
    cpus: float = 0.5
    pids: int = 256

    @property
    def memory(self) -> str:
        return f"{self.memory_bytes // 1024**2}Mi"


@dataclass(frozen=True)
class SecretRef:
    env: str
    path: str  # KV path under secret/suite/, e.g. services/httpbin/db
    key: str

    def __str__(self) -> str:
        return f"{self.path}#{self.key}"


@dataclass(frozen=True)
class TestSpec:
    command: tuple[str, ...] = ()
    timeout_s: float = 600.0


@dataclass(frozen=True)
class AnalysisRef:
    templates: tuple[str, ...]
    duration_s: float = 20.0
    interval_s: float = 2.0


@dataclass(frozen=True)
class Step:
    """One canary step: exactly one of set_weight / pause / analysis."""

    kind: str  # "setWeight" | "pause" | "analysis"
    weight: int = 0
    pause_s: float | None = None  # None: wait for `suite release promote`
    analysis: AnalysisRef | None = None


@dataclass(frozen=True)
class Strategy:
    kind: StrategyKind
    steps: tuple[Step, ...] = ()
    #: blueGreen: switch without waiting for `suite release promote`
    auto_promotion: bool = True
    pre_promotion: AnalysisRef | None = None
    #: smoke requests (readiness GETs) after each step that changes what serves
    smoke_requests: int = 10

    def templates(self) -> tuple[str, ...]:
        names: list[str] = []
        refs = [s.analysis for s in self.steps if s.analysis] + [self.pre_promotion]
        for ref in refs:
            for name in ref.templates if ref else ():
                if name not in names:
                    names.append(name)
        return tuple(names)


@dataclass(frozen=True)
class ModelBinding:
    name: str
    alias: str = "challenger"
    mount: str = "/model"


@dataclass(frozen=True)
class ServiceSpec:
    """One service as its manifest declares it; frozen and validated."""

    service: str
    port: int
    readiness: str
    strategy: Strategy
    build: Build = Build()
    replicas: int = 2
    resources: Resources = Resources()
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    host: str = ""
    test: TestSpec = TestSpec()
    model: ModelBinding | None = None
    digest: str = ""  # sha256 of the manifest text
    notify: tuple[str, ...] = field(default=())

    @property
    def secrets_prefix(self) -> str:
        return f"services/{self.service}"


def parse_duration(value: Any) -> float | None:
    """``10s``, ``1.5m``, ``500ms``, ``2h`` or a number of seconds; None when not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = DURATION_RE.match(value.strip())
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    return None


def parse_memory(value: Any) -> int | None:
    """``256Mi``, ``1Gi``, ``512M`` or a number of bytes; None when not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = MEMORY_RE.match(value.strip())
        if m:
            return int(float(m.group(1)) * _BYTES[m.group(2)])
    return None


class _Reader:
    """Walks the parsed YAML; every problem is recorded with its key, nothing raises early."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, key: str, value: Any, expected: str) -> None:
        self.problems.append(f"{key}: {value!r} is not {expected}")

    def mapping(self, data: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.bad(key, data, "a mapping")
            return {}
        for extra in sorted(set(map(str, data)) - allowed):
            hint = _close(extra, allowed)
            self.problems.append(f"{key + '.' if key else ''}{extra}: unknown key"
                                 f"{f' (did you mean {hint!r}?)' if hint else ''} "
                                 f"(known: {', '.join(sorted(allowed))})")
        return {str(k): v for k, v in data.items()}

    def integer(self, data: Mapping[str, Any], key: str, where: str, default: int, lo: int,
                hi: int) -> int:
        value = data.get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.bad(where, value, f"an integer {lo}..{hi}")
            return default
        return value

    def string(self, value: Any, where: str, check: Callable[[str], bool], expected: str,
               default: str = "") -> str:
        if not isinstance(value, str) or not check(value):
            self.bad(where, value, expected)
            return default
        return value


def _close(word: str, options: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return found[0] if found else None


TOP = {"service", "build", "port", "readiness", "replicas", "resources", "env", "secrets",
       "route", "test", "strategy", "model", "notifications"}


def parse(data: Any, where: str = MANIFEST, digest: str = "") -> ServiceSpec:
    """Validate the parsed YAML of a manifest; :class:`ManifestError` lists every problem."""
    r = _Reader()
    if not isinstance(data, Mapping):
        raise ManifestError(where, [f"top level: {type(data).__name__} is not a mapping "
                                    f"(expected `service: NAME`, `port: 8080`, ...)"])
    top = r.mapping(data, "", TOP)
    name = r.string(top.get("service"), "service", lambda v: bool(NAME_RE.match(v)),
                    "a service name ([a-z][a-z0-9-]{0,30}: lower-case letters, digits, '-')",
                    "invalid")
    port = r.integer(top, "port", "port", 8080, 1, 65535)
    if "port" not in top:
        r.problems.append("port: missing (expected the container's HTTP port, e.g. port: 8080)")
    readiness = r.string(top.get("readiness", "/healthz"), "readiness",
                         lambda v: v.startswith("/") and " " not in v and "#" not in v,
                         "an HTTP path starting with '/' (e.g. /healthz)", "/healthz")
    replicas = r.integer(top, "replicas", "replicas", 2, 1, MAX_REPLICAS)
    spec = ServiceSpec(
        service=name, port=port, readiness=readiness, replicas=replicas,
        build=_build(r, top.get("build")), resources=_resources(r, top.get("resources")),
        env=_env(r, top.get("env")), secrets=_secrets(r, top.get("secrets"), name),
        host=_route(r, top.get("route"), name), test=_test(r, top.get("test")),
        strategy=_strategy(r, top.get("strategy")), model=_model(r, top.get("model")),
        notify=_notifications(r, top.get("notifications")), digest=digest,
    )
    clash = sorted({k for k, _ in spec.env} & {s.env for s in spec.secrets})
    for key in clash:
        r.problems.append(f"env.{key}: also set by secrets.{key} (expected each variable once)")
    if r.problems:
        raise ManifestError(where, r.problems)
    return spec


def _build(r: _Reader, data: Any) -> Build:
    raw = r.mapping(data, "build", {"dockerfile", "target", "args"})
    dockerfile = r.string(raw.get("dockerfile", "Dockerfile"), "build.dockerfile", _relative,
                          "a path relative to the repository root, inside it (e.g. Dockerfile)",
                          "Dockerfile")
    target = raw.get("target", "") or ""
    if not isinstance(target, str):
        r.bad("build.target", target, "a stage name (a string)")
        target = ""
    args = r.mapping(raw.get("args"), "build.args", set(map(str, raw.get("args") or {}))
                     if isinstance(raw.get("args"), Mapping) else set())
    pairs = []
    for key, value in args.items():
        if key == "BASE_IMAGE":
            r.problems.append("build.args.BASE_IMAGE: set by the platform (its Debian Python "
                              "base); remove it")
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            r.bad(f"build.args.{key}", value, "a string")
        else:
            pairs.append((key, str(value)))
    return Build(dockerfile=dockerfile, target=target, args=tuple(pairs))


def _relative(value: str) -> bool:
    path = PurePosixPath(value)
    return bool(value) and not path.is_absolute() and ".." not in path.parts


def _resources(r: _Reader, data: Any) -> Resources:
    raw = r.mapping(data, "resources", {"memory", "cpus", "pids"})
    memory = parse_memory(raw.get("memory", "256Mi"))
    if memory is None or memory < MIN_MEMORY:
        r.bad("resources.memory", raw.get("memory"), "a memory size of at least 16Mi "
              "(e.g. 256Mi, 1Gi)")
        memory = Resources.memory_bytes
    cpus = raw.get("cpus", 0.5)
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0 < cpus <= 64:
        r.bad("resources.cpus", cpus, "a number of CPUs in (0, 64] (e.g. 0.5)")
        cpus = 0.5
    pids = r.integer(raw, "pids", "resources.pids", 256, 16, 65536)
    return Resources(memory_bytes=memory, cpus=float(cpus), pids=pids)


def _env(r: _Reader, data: Any) -> tuple[tuple[str, str], ...]:
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        r.bad("env", data, "a mapping of NAME: value")
        return ()
    pairs = []
    for key, value in data.items():
        key = str(key)
        if not ENV_RE.match(key):
            r.bad(f"env.{key}", key, "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        elif key in RESERVED_ENV:
            r.problems.append(f"env.{key}: set by the platform (reserved: "
                              f"{', '.join(sorted(RESERVED_ENV))}); use another name")
        elif isinstance(value, Mapping | list) or value is None:
            r.bad(f"env.{key}", value, "a string (quote it)")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            pairs.append((key, text))
    return tuple(pairs)


def _secrets(r: _Reader, data: Any, service: str) -> tuple[SecretRef, ...]:
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        r.bad("secrets", data, "a mapping of ENV_NAME: services/<service>/<path>#<key>")
        return ()
    refs = []
    for key, value in data.items():
        key = str(key)
        where = f"secrets.{key}"
        if not ENV_RE.match(key):
            r.bad(where, key, "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            continue
        m = SECRET_RE.match(value) if isinstance(value, str) else None
        if m is None or ".." in m.group(1).split("/"):
            r.bad(where, value, f"a Vault KV reference 'services/{service}/PATH#KEY'")
            continue
        if service != "invalid" and not m.group(1).startswith(f"services/{service}/"):
            r.problems.append(f"{where}: {value!r} is outside this service's secrets (expected "
                              f"a path under services/{service}/: a release reads only its own "
                              f"service's secrets)")
            continue
        refs.append(SecretRef(key, m.group(1).rstrip("/"), m.group(2)))
    return tuple(refs)


def _route(r: _Reader, data: Any, service: str) -> str:
    raw = r.mapping(data, "route", {"host"})
    default = f"{service}.localhost"
    host = raw.get("host", default)
    return r.string(host, "route.host", lambda v: bool(HOST_RE.match(v)),
                    "a lower-case host name (e.g. httpbin.localhost)", default)


def _test(r: _Reader, data: Any) -> TestSpec:
    raw = r.mapping(data, "test", {"command", "timeout"})
    command = raw.get("command", [])
    if isinstance(command, str):
        r.bad("test.command", command, "a list of strings (exec form, e.g. "
              "[\"python\", \"-m\", \"pytest\", \"-q\"])")
        command = []
    elif not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        r.bad("test.command", command, "a list of strings")
        command = []
    timeout = parse_duration(raw.get("timeout", "10m"))
    if timeout is None or not 1 <= timeout <= 3600:
        r.bad("test.timeout", raw.get("timeout"), "a duration 1s..1h (e.g. 5m)")
        timeout = 600.0
    return TestSpec(tuple(command), timeout)


def _analysis(r: _Reader, data: Any, where: str) -> AnalysisRef | None:
    raw = r.mapping(data, where, {"templates", "duration", "interval"})
    templates = raw.get("templates")
    names: list[str] = []
    if not isinstance(templates, list) or not templates:
        r.bad(f"{where}.templates", templates,
              "a non-empty list like [{templateName: http}]")
    else:
        for i, item in enumerate(templates):
            entry = r.mapping(item, f"{where}.templates[{i}]", {"templateName"})
            names.append(r.string(entry.get("templateName"),
                                  f"{where}.templates[{i}].templateName",
                                  lambda v: bool(TEMPLATE_RE.match(v)),
                                  "a template name (built in: http, model-server; or one of "
                                  "the repository's .suite/analysis/NAME.yaml)"))
    duration = parse_duration(raw.get("duration", "20s"))
    interval = parse_duration(raw.get("interval", "2s"))
    if duration is None or not 2 <= duration <= 3600:
        r.bad(f"{where}.duration", raw.get("duration"), "a duration 2s..1h (e.g. 20s)")
        duration = 20.0
    if interval is None or not 0.5 <= interval <= min(600, duration):
        r.bad(f"{where}.interval", raw.get("interval"),
              f"a duration 0.5s..{min(600, duration):g}s, at most the duration (e.g. 2s)")
        interval = 2.0
    return AnalysisRef(tuple(n for n in names if n), duration, interval)


def _steps(r: _Reader, data: Any) -> tuple[Step, ...]:
    if not isinstance(data, list) or not data:
        r.bad("strategy.canary.steps", data, "a non-empty list of steps (setWeight, pause, "
              "analysis)")
        return ()
    steps: list[Step] = []
    last_weight = 0
    for i, item in enumerate(data):
        where = f"strategy.canary.steps[{i}]"
        raw = r.mapping(item, where, {"setWeight", "pause", "analysis"})
        if len(raw) != 1:
            r.problems.append(f"{where}: {dict(raw) or item!r} has {len(raw)} kinds (expected "
                              f"exactly one of setWeight, pause, analysis)")
            continue
        (kind, value), = raw.items()
        if kind == "setWeight":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                r.bad(f"{where}.setWeight", value, "an integer percentage 0..100")
                continue
            last_weight = value
            steps.append(Step("setWeight", weight=value))
        elif kind == "pause":
            pause = r.mapping(value, f"{where}.pause", {"duration"})
            seconds = None
            if "duration" in pause:
                seconds = parse_duration(pause["duration"])
                if seconds is None or seconds > 7 * 24 * 3600:
                    r.bad(f"{where}.pause.duration", pause["duration"],
                          "a duration (e.g. 10s, 5m); leave it out to wait for "
                          "`suite release promote`")
                    continue
            steps.append(Step("pause", weight=last_weight, pause_s=seconds))
        else:
            ref = _analysis(r, value, f"{where}.analysis")
            if ref is not None:
                if last_weight == 0:
                    r.problems.append(f"{where}.analysis: runs while the canary has 0 % of the "
                                      f"traffic (expected a setWeight step before it)")
                steps.append(Step("analysis", weight=last_weight, analysis=ref))
    return tuple(steps)


def _strategy(r: _Reader, data: Any) -> Strategy:
    kinds = {k.value for k in StrategyKind}
    raw = r.mapping(data, "strategy", kinds)
    given = [k for k in raw if k in kinds]
    if len(given) != 1:
        r.problems.append(f"strategy: {given or data!r} (expected exactly one of canary, "
                          f"blueGreen, rolling)")
        return Strategy(StrategyKind.ROLLING)
    kind = StrategyKind(given[0])
    body = raw[kind.value]
    if kind == StrategyKind.CANARY:
        canary = r.mapping(body, "strategy.canary", {"steps", "smokeRequests"})
        smoke = r.integer(canary, "smokeRequests", "strategy.canary.smokeRequests", 10, 0, 10000)
        return Strategy(kind, steps=_steps(r, canary.get("steps")), smoke_requests=smoke)
    if kind == StrategyKind.BLUE_GREEN:
        bg = r.mapping(body, "strategy.blueGreen",
                       {"autoPromotionEnabled", "prePromotionAnalysis", "smokeRequests"})
        auto = bg.get("autoPromotionEnabled", True)
        if not isinstance(auto, bool):
            r.bad("strategy.blueGreen.autoPromotionEnabled", auto, "true or false")
            auto = True
        pre = None
        if bg.get("prePromotionAnalysis") is not None:
            pre = _analysis(r, bg["prePromotionAnalysis"],
                            "strategy.blueGreen.prePromotionAnalysis")
        smoke = r.integer(bg, "smokeRequests", "strategy.blueGreen.smokeRequests", 10, 0, 10000)
        return Strategy(kind, auto_promotion=auto, pre_promotion=pre, smoke_requests=smoke)
    rolling = r.mapping(body, "strategy.rolling", {"smokeRequests"})
    smoke = r.integer(rolling, "smokeRequests", "strategy.rolling.smokeRequests", 10, 0, 10000)
    return Strategy(kind, smoke_requests=smoke)


def _model(r: _Reader, data: Any) -> ModelBinding | None:
    if data is None:
        return None
    raw = r.mapping(data, "model", {"name", "alias", "mount"})
    name = r.string(raw.get("name"), "model.name",
                    lambda v: bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", v)),
                    "a registered MLflow model name (e.g. digits)", "invalid")
    alias = r.string(raw.get("alias", "challenger"), "model.alias",
                     lambda v: v in ("challenger", "champion"), "'challenger' or 'champion'",
                     "challenger")
    mount = r.string(raw.get("mount", "/model"), "model.mount",
                     lambda v: v.startswith("/") and v != "/", "an absolute path in the "
                     "container (e.g. /model)", "/model")
    return ModelBinding(name, alias, mount)


def _notifications(r: _Reader, data: Any) -> tuple[str, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(u, str) and u.startswith(
            ("http://", "https://")) for u in data):
        r.bad("notifications", data, "a list of http(s) webhook URLs")
        return ()
    return tuple(data)


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def loads(text: str, where: str = MANIFEST) -> ServiceSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(where, [f"not valid YAML: {exc}"]) from exc
    return parse(data, where, digest_of(text))


def load(repo: Path | str) -> ServiceSpec:
    """The manifest at the root of ``repo`` (a directory), or a manifest file itself."""
    path = Path(repo)
    if path.is_dir():
        path = path / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ManifestError(str(path), [f"{MANIFEST} not found (expected a service manifest at "
                                        f"the repository root; see docs/services.md)"]) from exc
    except OSError as exc:
        raise ManifestError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from exc
    return loads(text, str(path))
