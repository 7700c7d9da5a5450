"""`suite images base | build | scan` and `suite verify IMAGE`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from suite import settings as settings_mod
from suite.errors import SuiteError
from suite.settings import Settings


def _audit(settings: Settings, action: str, subject: str, inputs: dict[str, object],
           outcome: str = "ok") -> None:
    from suite import audit

    audit.append(settings, action=action, subject=subject, inputs=inputs, outcome=outcome)


def cmd_base(args: argparse.Namespace) -> int:
    from suite import engine
    from suite.cli.progress import Activity
    from tasks.images import base

    settings = settings_mod.load()
    with Activity("base image") as act:
        rec = base.ensure_base(settings, engine.client(settings), rebuild=args.rebuild,
                               report=act.update)
    print(f"base image {rec.local_ref} = {rec.pinned}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from suite import vault
    from suite.cli.progress import Activity
    from tasks import build, evidence

    settings = settings_mod.load()
    with Activity("model-server image") as act:
        act.update("building and pushing")
        result = build.build_image(settings, tag=args.tag, nocache=args.no_cache)
        act.update("SBOM and signed provenance")
        ev = evidence.write_evidence(settings, result, vault.client(settings))
    _audit(settings, "stage.build", result.image.pinned,
           {"tag": result.image.tag, "git_sha": result.git_sha, "base": result.base.pinned})
    print(f"pushed {result.image.ref}\n  digest   {result.image.digest}\n"
          f"  SBOM     {ev.sbom} ({ev.sbom_components} components)\n"
          f"  provenance {ev.provenance} (signed with Vault transit)\n"
          f"  took     {result.seconds} s")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from policies import scan as scan_policy
    from tasks import scan, waivers

    settings = settings_mod.load()
    report = scan.scan(settings, image=args.image, repo=Path(args.repo) if args.repo else None,
                       scanner=args.scanner)
    decision = scan.gate(report, Path(args.policy) if args.policy else scan_policy.DEFAULT_POLICY,
                         verify=waivers.settings_verifier(settings), service=args.service)
    summary = scan.summary(report, decision)
    print(json.dumps(summary, default=str) if args.json else scan.markdown(report, decision))
    _audit(settings, "stage.scan", args.image or args.repo or "", summary,
           "ok" if decision.allowed else "blocked")
    scan_policy.enforce(decision)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from suite import vault
    from tasks import evidence

    settings = settings_mod.load()
    report = evidence.verify_image(settings, args.image, vault.client(settings))
    if args.json:
        print(json.dumps({"image": args.image, "digest": report.digest, "ok": report.ok,
                          "checks": [asdict(c) for c in report.checks]}))
        return 0 if report.ok else 1
    for check in report.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<10} {check.detail}")
    if not report.ok:
        raise SuiteError(f"verification of {args.image} failed: " + "; ".join(report.failures))
    print(f"verified {args.image} = {report.digest}")
    return 0


def cmd_waivers(args: argparse.Namespace) -> int:
    from policies import scan as scan_policy
    from tasks.scanners.trivy import ignore_file

    policy = scan_policy.load(Path(args.policy) if args.policy else scan_policy.DEFAULT_POLICY)
    text = ignore_file(policy.waivers, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(policy.waivers)} waiver(s))")
    else:
        print(text, end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    img = sub.add_parser("images", help="base image, build, scan (through the platform engine)")
    isub = img.add_subparsers(dest="images_command", required=True)
    base = isub.add_parser("base", help="debootstrap bookworm + python3 base image (cached)")
    base.add_argument("--rebuild", action="store_true", help="make the rootfs and image anew")
    base.set_defaults(func=cmd_base)
    build = isub.add_parser("build", help="build, push, SBOM and signed provenance")
    build.add_argument("--tag", help="image tag (default: the first 12 digits of the git sha)")
    build.add_argument("--no-cache", action="store_true")
    build.set_defaults(func=cmd_build)
    scan = isub.add_parser("scan", help="Trivy + scan gate on an image and/or a repository")
    scan.add_argument("image", nargs="?", help="image reference")
    scan.add_argument("--repo", help="repository directory to scan as well")
    scan.add_argument("--scanner", default="trivy")
    scan.add_argument("--policy", help="scan policy YAML (default policies/scan.yaml)")
    scan.add_argument("--json", action="store_true", help="print the gate's summary as JSON")
    scan.add_argument("--service", help="the service scanned (for waivers scoped to one)")
    scan.set_defaults(func=cmd_scan)
    wv = isub.add_parser("waivers", help="the scan policy's waivers as Trivy's ignore file")
    wv.add_argument("--policy", help="scan policy YAML (default policies/scan.yaml)")
    wv.add_argument("--format", choices=["trivyignore", "yaml"], default="trivyignore",
                    help="trivyignore (.trivyignore) or yaml (.trivyignore.yaml, keeps paths)")
    wv.add_argument("-o", "--output", help="write to this file (e.g. .trivyignore)")
    wv.set_defaults(func=cmd_waivers)
    ver = sub.add_parser("verify", help="check an image's digest, signature and provenance")
    ver.add_argument("image", help="registry image reference (repo:tag or repo@sha256:…)")
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=cmd_verify)
