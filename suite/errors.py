"""One error hierarchy for the whole suite.

    SuiteError
    ├── ConfigError          bad input or configuration: says the key, the value and the fix
    ├── ServiceUnavailable   a platform service is down or did not become healthy in time
    │   └── PortInUse        a port the platform needs is taken by another process
    ├── MissingBinary        an executable is not installed: names the package that brings it
    ├── VaultError           a Vault/OpenBao call failed (never carries a secret value)
    ├── AuditError           the audit trail cannot be written or does not verify
    ├── StorageError         a file could not be written (disk full, I/O error); also an OSError
    ├── ProviderError        a plugin (metrics, scanner, target) failed
    ├── GateBlocked          a policy gate refused a stage; carries every reason
    └── DeployError          a deployment step failed

Messages say what failed, the value seen, what was expected and how to fix it.
"""

from __future__ import annotations


class SuiteError(Exception):
    """Base of every error the suite raises on purpose."""


class ConfigError(SuiteError):
    """Invalid configuration or input."""


class ServiceUnavailable(SuiteError):
    """A platform service is not reachable or not healthy."""


class PortInUse(ServiceUnavailable):
    """A TCP port needed by a service is already bound by someone else."""


class MissingBinary(SuiteError):
    """A required executable is not installed."""


class VaultError(SuiteError):
    """A Vault/OpenBao operation failed."""


class AuditError(SuiteError):
    """The audit trail could not be appended to or read."""


class StorageError(SuiteError, OSError):
    """A file could not be written: disk full (ENOSPC), I/O error (EIO), read-only file system.

    Also an ``OSError`` (with the original ``errno``), so code that already handles ``OSError``
    keeps working; the message names the path and the free space.
    """

    def __str__(self) -> str:
        return self.strerror if isinstance(self.strerror, str) else super().__str__()


class ProviderError(SuiteError):
    """A plugin provider failed."""


class GateBlocked(SuiteError):
    """A policy gate blocked a stage; ``reasons`` lists every reason."""

    def __init__(self, gate: str, reasons: list[str]) -> None:
        self.gate = gate
        self.reasons = list(reasons)
        joined = "; ".join(self.reasons) or "no reason given"
        super().__init__(f"{gate} gate blocked: {joined}")


class DeployError(SuiteError):
    """A deployment step failed."""
