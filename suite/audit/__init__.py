"""Audit trail API for the stages: ``append(settings, ...)`` and ``verify(settings)``.

Nothing is done without its record: ``append`` raises :class:`~suite.errors.AuditError` when
the record cannot be written (Vault cannot sign, the disk is full) and the caller must then not
do, or not go on with, the action the record is for. Record first where the record can say what
is about to happen (``release.start`` before the release's first change); where the record can
only follow the action (a secret's new version), call ``ready`` before it.

Signing uses the one identity that may sign audit records, the AppRole ``suite-audit`` (key
``suite-audit``), in workers and in the CLI alike (see :func:`suite.vault.signer_client`).
"""

from __future__ import annotations

import getpass
from typing import Any

from suite.audit.anchor import VaultAnchor, head_path
from suite.audit.record import AuditRecord
from suite.audit.signer import TransitSigner
from suite.audit.store import AuditTrail, VerifyReport
from suite.settings import Settings
from suite.vault import Purpose, signer_client

__all__ = ["AuditRecord", "AuditTrail", "VerifyReport", "append", "default_actor", "ready",
           "trail", "verify"]


def trail(settings: Settings) -> AuditTrail:
    """The platform's trail; its HEAD counter is kept in Vault KV by the same audit identity."""
    directory = settings.dir("audit")
    signer = TransitSigner(lambda: signer_client(settings, Purpose.AUDIT))
    return AuditTrail(directory, signer, VaultAnchor(lambda: signer.client, head_path(directory)))


#: identities already asked of Vault in this process, by (Vault, login cache, home)
_identities: dict[tuple[str, str, str], str] = {}


def default_actor(settings: Settings | None = None) -> str:
    """The authenticated identity of this process (suite.people.identity): ``userpass:<name>``
    after `suite login`, ``token:suite-admin`` for the operator's admin token,
    ``approle:suite-worker`` in a worker. Only when Vault cannot say (no login, no admin token,
    Vault down) the local account, marked ``local:<user>`` — never a name typed by someone."""
    from suite import people
    from suite.errors import SuiteError
    from suite.settings import load

    settings = settings or load()
    key = (settings.vault_addr, str(settings.token_file), str(settings.home))
    if key not in _identities:
        try:
            _identities[key] = people.identity(settings).name
        except SuiteError:
            try:
                return f"local:{getpass.getuser()}"
            except (KeyError, OSError):
                return "local:unknown"
    return _identities[key]


def append(
    settings: Settings,
    *,
    actor: str | None = None,
    action: str,
    subject: str,
    inputs: Any = None,
    outcome: str = "ok",
) -> AuditRecord:
    return trail(settings).append(
        actor=actor or default_actor(settings), action=action, subject=subject, inputs=inputs,
        outcome=outcome,
    )


def ready(settings: Settings) -> None:
    """Raise ``AuditError`` (what is wrong and how to fix it) unless a record can be written now."""
    trail(settings).check()


def verify(settings: Settings) -> VerifyReport:
    return trail(settings).verify()
