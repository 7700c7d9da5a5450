"""`suite up | down | status`: start what is down (health-checked), stop gracefully, report.

Services start in dependency order with independent ones in parallel (Prefect and MLflow each
take 10-15 s). The configuration used by the last `up` is kept in ``platform.json`` so later
commands talk to the same ports.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from suite.errors import ConfigError, ServiceUnavailable, SuiteError
from suite.platform import credentials, process
from suite.platform.files import atomic_write
from suite.platform.service import Service, Status
from suite.platform.services import build
from suite.settings import Settings

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class UpResult:
    started: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


def config_path(settings: Settings) -> Path:
    return settings.dir("platform.json")


def save_config(settings: Settings) -> None:
    atomic_write(
        config_path(settings),
        json.dumps(
            {"ports": dict(settings.ports), "workers": settings.workers,
             "database": settings.database, "rate_limit": settings.rate_limit},
            indent=2,
        ),
    )


def select(services: list[Service], only: Iterable[str] | None) -> list[Service]:
    if only is None:
        return services
    wanted = set(only)
    known = {s.name for s in services}
    unknown = wanted - known - {"workers"}
    if unknown:
        raise ConfigError(
            f"unknown service(s) {sorted(unknown)} (known: {', '.join(sorted(known))}, workers)"
        )
    chosen = {
        s.name for s in services
        if s.name in wanted or ("workers" in wanted and s.name.startswith("worker-"))
    }
    # pull in dependencies so `--only workers` also brings Prefect and Vault
    changed = True
    while changed:
        changed = False
        for s in services:
            if s.name in chosen:
                for dep in s.requires:
                    if dep not in chosen and dep in known:
                        chosen.add(dep)
                        changed = True
    return [s for s in services if s.name in chosen]


def _start_one(service: Service, report: Report) -> bool:
    """Start ``service`` unless it already runs healthy; return True if it was started."""
    rec = service.record()
    started = False
    if rec is None or not rec.alive():
        service.check_binaries()
        hint = f"--port {service.port_key}=PORT or SUITE_{(service.port_key or '').upper()}_PORT"
        for port in ([service.port] if service.port is not None else []) + service.extra_ports():
            process.ensure_port_free(service.name, service.settings.host, port, hint)
        service.prepare()
        report(f"starting {service.name} {service.url}".rstrip())
        rec = process.spawn(
            name=service.name, argv=service.argv(), env=service.env(), cwd=service.state_dir,
            log_path=service.log_path, run_dir=service.run_dir, stop_signal=service.stop_signal,
            preexec=service.preexec(),  # type: ignore[arg-type]
        )
        started = True
    serving = getattr(service, "serving", service.healthy)
    process.wait_until(
        serving, timeout=service.start_timeout, what=service.name, record=rec,
        log_path=service.log_path,
    )
    service.after_start()
    process.wait_until(
        service.healthy, timeout=service.start_timeout, what=service.name, record=rec,
        log_path=service.log_path,
    )
    return started


def up(
    settings: Settings, only: Iterable[str] | None = None, report: Report = _quiet
) -> UpResult:
    settings.home.mkdir(parents=True, exist_ok=True)
    services = select(build(settings), only)
    save_config(settings)
    credentials.prepare(settings)  # before any service: clients only read them
    done = {s.name: threading.Event() for s in services}
    failed: dict[str, BaseException] = {}
    result = UpResult()
    lock = threading.Lock()

    def run(service: Service) -> None:
        try:
            for dep in service.requires:
                if dep in done:
                    done[dep].wait()
                    if dep in failed:
                        raise ServiceUnavailable(f"{service.name} not started: {dep} failed")
            started = _start_one(service, report)
            with lock:
                (result.started if started else result.already).append(service.name)
        except BaseException as exc:
            failed[service.name] = exc
        finally:
            done[service.name].set()

    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        list(pool.map(run, services))
    if failed:
        first = next(iter(failed.values()))
        lines = [f"{name}: {exc}" for name, exc in failed.items()]
        if isinstance(first, SuiteError) and len(failed) == 1:
            raise type(first)(lines[0]) from first
        raise ServiceUnavailable("platform start failed:\n" + "\n".join(lines)) from first
    return result


def down(
    settings: Settings, only: Iterable[str] | None = None, report: Report = _quiet
) -> list[str]:
    """Stop services in reverse start order (workers first, Vault and Postgres last)."""
    services = select(build(settings), only)
    stopped: list[str] = []
    for service in reversed(services):
        rec = service.record()
        if rec is not None and rec.alive():
            report(f"stopping {service.name} (pid {rec.pid})")
            service.before_stop()
            process.stop(rec)
            stopped.append(service.name)
        # also when it was down already: what a crash or an older `down` left behind
        for line in service.after_stop():
            report(f"{service.name}: {line}")
        process.record_path(service.run_dir, service.name).unlink(missing_ok=True)
    # workers from an earlier, larger --workers count
    for path in sorted(settings.dir("run").glob("worker-*.json")):
        rec = process.read_record(settings.dir("run"), path.stem)
        if rec and rec.alive() and only is None:
            report(f"stopping {rec.name} (pid {rec.pid})")
            process.stop(rec)
            stopped.append(rec.name)
        if only is None:
            path.unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> list[Status]:
    services = build(settings)
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        return list(pool.map(lambda s: s.status(), services))
