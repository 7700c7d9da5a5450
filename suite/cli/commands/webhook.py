"""`suite webhook serve | deliver` and `suite hooks install BARE_REPO`.

`serve` is also what the platform's ``webhook`` service runs. `deliver` is what the post-receive
hook of a local bare repository calls: it turns one pushed ref into a Gitea-style push delivery,
signs it with the secret from Vault and posts it to the webhook server, so a plain `git push`
goes through exactly the path a hosted forge would use.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from suite import settings as settings_mod
from suite import vault
from suite.errors import ConfigError, PortInUse, ServiceUnavailable
from suite.settings import Settings
from suite.webhook.verify import PROVIDERS, hmac_hex

SECRET_KEY = "secret"  # noqa: S105 - the name of the KV key, not a value


def secret_path(provider: str) -> str:
    return f"webhook/{provider}"


def _audit_fn(settings: Settings) -> Callable[[str, str, str, dict[str, Any]], None]:
    from suite import audit

    def record(action: str, subject: str, outcome: str, inputs: dict[str, Any]) -> None:
        audit.append(settings, action=action, subject=subject, inputs=inputs, outcome=outcome)

    return record


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    if args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout} must be more than 0 seconds (a silent "
                          f"client is cut after it; the default is 10)")
    from suite.services.registry import Registry
    from suite.webhook.replay import DeliveryLog
    from suite.webhook.server import WebhookApp, make_server
    from suite.webhook.trigger import DeploymentTrigger, EventTrigger

    def secrets(provider: str) -> str:
        return vault.get_secret(vault.client(settings), secret_path(provider), SECRET_KEY)

    registry = Registry(settings)  # read at each request: services are added while it runs
    api = settings.prefect_api_url
    trigger = (EventTrigger(api) if args.mode == "event"
               else DeploymentTrigger(args.deployment, api))
    app = WebhookApp(
        secrets=secrets, trigger=trigger,
        deliveries=DeliveryLog(settings.dir("webhook", "deliveries.sqlite3"),
                               legacy=settings.dir("webhook", "deliveries.json")),
        registrations=registry.all, branches=args.branch or [], max_body=args.max_body,
        audit=_audit_fn(settings), max_age=args.max_age or None, max_skew=args.max_skew,
    )
    port = args.port or settings.port("webhook")
    try:
        server = make_server(app, settings.host, port, workers=args.workers,
                             timeout=args.timeout)
    except OSError as exc:
        raise PortInUse(
            f"cannot listen on {settings.host}:{port} ({exc.strerror}); the platform's webhook "
            f"service uses {settings.port('webhook')}: pass --port for a second receiver"
        ) from exc
    print(f"webhook server on http://{settings.host}:{port}/hooks/{{{','.join(PROVIDERS)}}} "
          f"-> {args.mode} {args.deployment if args.mode == 'deployment' else ''} for the "
          f"services registered in {registry.folder}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} in {repo} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def push_payload(repo: Path, ref: str, old: str, new: str, pusher: str) -> dict[str, Any]:
    deleted = set(new) == {"0"}
    commits = []
    if not deleted:
        log = git(repo, "log", "--format=%H%x09%s", "-n", "20", new if set(old) == {"0"}
                  else f"{old}..{new}")
        commits = [{"id": line.split("\t", 1)[0], "message": line.split("\t", 1)[-1]}
                   for line in log.splitlines() if line]
    name = repo.resolve().name.removesuffix(".git")
    return {
        "ref": ref, "before": old, "after": new, "deleted": deleted,
        "repository": {"name": name, "full_name": f"local/{name}",
                       "clone_url": f"file://{repo.resolve()}",
                       # the push's own time, as GitHub sends it: the receiver's age check
                       "pushed_at": int(time.time())},
        "pusher": {"login": pusher, "username": pusher},
        "commits": commits,
    }


def cmd_deliver(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    provider = args.provider
    secret = vault.get_secret(vault.client(settings), secret_path(provider), SECRET_KEY)
    body = json.dumps(push_payload(Path(args.repo), args.ref, args.old, args.new,
                                   args.pusher or os.environ.get("USER", "git"))).encode()
    headers = {"Content-Type": "application/json"}
    delivery = str(uuid.uuid4())
    if provider == "github":
        headers |= {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                    "X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body)}
    elif provider == "gitea":
        headers |= {"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery,
                    "X-Gitea-Signature": hmac_hex(secret, body)}
    else:
        headers |= {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery,
                    "X-Gitlab-Token": secret}
    url = args.url or f"{settings.url('webhook')}/hooks/{provider}"
    try:
        resp = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"webhook server {url} does not answer ({exc}); `suite up`"
        ) from exc
    answer = resp.json() if resp.headers.get("content-type", "").startswith("application/json") \
        else {"error": resp.text}
    print(f"{args.ref} {args.new[:12]}: {resp.status_code} {json.dumps(answer)}")
    return 0 if resp.status_code < 400 else 1


HOOK = """#!/bin/sh
# post-receive hook installed by `suite hooks install`: each pushed ref becomes a signed
# {provider} push delivery to the suite's webhook server, which starts a release.
export SUITE_HOME={home}
while read old new ref; do
  {suite} webhook deliver --provider {provider} --repo "$PWD" \\
    --ref "$ref" --old "$old" --new "$new"{url} || true
done
"""


def cmd_hooks_install(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    repo = Path(args.repo).resolve()
    if git(repo, "rev-parse", "--is-bare-repository") != "true":
        raise ConfigError(f"{repo} is not a bare repository (create one with `git init --bare`)")
    hook = repo / "hooks" / "post-receive"
    if hook.exists() and "suite hooks install" not in hook.read_text() and not args.force:
        raise ConfigError(f"{hook} exists and was not written by suite; use --force to replace it")
    suite_bin = Path(sys.executable).parent / "suite"
    hook.write_text(HOOK.format(
        home=shlex.quote(str(settings.home)), suite=shlex.quote(str(suite_bin)),
        provider=args.provider, url=f" --url {shlex.quote(args.url)}" if args.url else "",
    ))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    print(f"installed {hook}: pushes post {args.provider} deliveries to "
          f"{args.url or settings.url('webhook') + '/hooks/' + args.provider}")
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    wh = sub.add_parser("webhook", help="git push webhooks that start releases")
    wsub = wh.add_subparsers(dest="webhook_command", required=True)
    serve = wsub.add_parser("serve", help="receive GitHub/GitLab/Gitea push events")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--branch", action="append", default=[],
                       help="also require the pushed branch to match (glob; repeatable); a push "
                            "always releases only the services registered on its branch")
    serve.add_argument("--deployment", default="release/release",
                       help="FLOW/DEPLOYMENT to run (default release/release)")
    serve.add_argument("--mode", choices=["deployment", "event"], default="deployment",
                       help="call run_deployment (default) or emit a git.push Prefect event")
    serve.add_argument("--max-body", type=int, default=1 << 20, help="bytes (default 1 MiB)")
    serve.add_argument("--max-age", type=_seconds, default=3600.0,
                       help="refuse a push whose payload timestamp is older (seconds, default "
                            "3600; 0 turns the check off, undated pushes are then accepted)")
    serve.add_argument("--max-skew", type=_seconds, default=300.0,
                       help="refuse a push dated further ahead (seconds, default 300)")
    serve.add_argument("--workers", type=_positive, default=8,
                       help="concurrent handler threads (default 8); more connections wait, "
                            "then are closed after --timeout")
    serve.add_argument("--timeout", type=_seconds, default=10.0,
                       help="seconds a client may stay silent before it is cut (default 10)")
    serve.set_defaults(func=cmd_serve)
    deliver = wsub.add_parser("deliver", help="post one pushed ref as a signed delivery")
    deliver.add_argument("--provider", choices=PROVIDERS, default="gitea")
    deliver.add_argument("--repo", required=True)
    deliver.add_argument("--ref", required=True)
    deliver.add_argument("--old", required=True)
    deliver.add_argument("--new", required=True)
    deliver.add_argument("--pusher")
    deliver.add_argument("--url")
    deliver.set_defaults(func=cmd_deliver)

    hooks = sub.add_parser("hooks", help="git hooks")
    hsub = hooks.add_subparsers(dest="hooks_command", required=True)
    install = hsub.add_parser("install", help="post-receive hook on a bare repo: push → release")
    install.add_argument("repo")
    install.add_argument("--provider", choices=PROVIDERS, default="gitea")
    install.add_argument("--url", help="webhook URL (default: the platform's webhook service)")
    install.add_argument("--force", action="store_true")
    install.set_defaults(func=cmd_hooks_install)
