"""Where a Pulumi stack lives and how its secrets are sealed, for the Automation API.

* The CLI must be on PATH: the Automation API drives the ``pulumi`` binary. Without it every
  Pulumi action fails at once with :data:`INSTALL_HINT` (the ``local`` target never needs it).
* Backend: ``file://<SUITE_HOME>/pulumi`` unless ``PULUMI_BACKEND_URL`` (or an explicit URL) says
  otherwise, so state stays beside the rest of the platform's state.
* Secrets: the Vault transit key ``suite-data`` (``hashivault://suite-data``); when transit is not
  usable, a passphrase kept in Vault KV at ``secret/suite/pulumi/<stack>`` (key ``passphrase``).
  A stack keeps the provider it was created with; Pulumi refuses the other one.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac.exceptions
import requests
from pydantic import SecretStr

from suite import vault as vault_mod
from suite.errors import ConfigError, MissingBinary, SuiteError, VaultError
from suite.settings import Settings

INSTALL_HINT = (
    "the Pulumi CLI is not installed (no `pulumi` on PATH); the Automation API drives it. "
    "Install it with `curl -fsSL https://get.pulumi.com | sh` (or unpack the release tarball "
    "from https://github.com/pulumi/pulumi/releases) and put its bin directory (e.g. "
    "~/.pulumi/bin) on PATH of the worker, then retry. The `local` target does not need it"
)
TRANSIT_PROVIDER = f"hashivault://{vault_mod.DATA_KEY}"
PASSPHRASE_PROVIDER = "passphrase"  # noqa: S105 - the provider's name, not a secret
_STACK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def require_pulumi_cli(which: Callable[[str], str | None] | None = None) -> str:
    """Path of the ``pulumi`` executable, or :class:`MissingBinary` with the install hint."""
    path = (which or shutil.which)("pulumi")
    if path is None:
        raise MissingBinary(INSTALL_HINT)
    return path


def check_stack_name(stack: str) -> str:
    if not _STACK.match(stack):
        raise ConfigError(
            f"stack name {stack!r} is invalid (expected letters, digits, '.', '_' or '-', "
            f"e.g. 'dev-k8s')"
        )
    return stack


def backend_url(
    settings: Settings, explicit: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """``explicit`` > ``PULUMI_BACKEND_URL`` > ``file://<SUITE_HOME>/pulumi`` (created)."""
    configured = settings.pulumi_backend_url if env is None else env.get("PULUMI_BACKEND_URL")
    url = explicit or configured or ""
    if not url:
        state = settings.dir("pulumi")
        state.mkdir(parents=True, exist_ok=True)
        return f"file://{state}"
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return url


@dataclass(frozen=True)
class Secrets:
    """The secrets provider of a stack and the environment the CLI needs for it."""

    provider: str
    source: str
    env: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)

    def revealed_env(self) -> dict[str, str]:
        return {key: value.get_secret_value() for key, value in self.env.items()}


def passphrase_path(stack: str) -> str:
    return f"pulumi/{stack}"


def _transit_usable(client: Any) -> str | None:
    """None when ``suite-data`` can encrypt with this token, else why not."""
    probe = base64.b64encode(b"pulumi secrets provider probe").decode()
    try:
        client.secrets.transit.encrypt_data(name=vault_mod.DATA_KEY, plaintext=probe)
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        return f"transit key {vault_mod.DATA_KEY!r} is not usable ({type(exc).__name__})"
    return None


def secrets_for(settings: Settings, stack: str, client: Any | None = None) -> Secrets:
    """Vault transit first; the stack passphrase from Vault KV as the fallback."""
    client = client if client is not None else vault_mod.client(settings)
    why_not = _transit_usable(client)
    if why_not is None:
        return Secrets(
            provider=TRANSIT_PROVIDER,
            source=f"Vault transit key {vault_mod.DATA_KEY} at {settings.vault_addr}",
            env={"VAULT_SERVER_URL": SecretStr(settings.vault_addr),
                 "VAULT_SERVER_TOKEN": SecretStr(str(client.token))},
        )
    path = passphrase_path(stack)
    try:
        passphrase = vault_mod.get_secret(client, path, "passphrase")
    except SuiteError as exc:
        raise VaultError(
            f"no secrets provider for stack {stack!r}: {why_not}, and the fallback passphrase "
            f"could not be read ({exc}); run `suite up` so the transit key exists, or store a "
            f"passphrase with `suite secrets put {path} passphrase <value>`"
        ) from exc
    return Secrets(
        provider=PASSPHRASE_PROVIDER,
        source=f"passphrase from Vault KV {vault_mod.KV_MOUNT}/{vault_mod.KV_PREFIX}/{path} "
               f"({why_not})",
        env={"PULUMI_CONFIG_PASSPHRASE": SecretStr(passphrase)},
    )


def workspace_env(backend: str, secrets: Secrets) -> dict[str, str]:
    """Environment of the CLI processes the Automation API starts (never logged)."""
    return {
        "PULUMI_BACKEND_URL": backend,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        **secrets.revealed_env(),
    }
