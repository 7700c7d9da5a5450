"""Which service the Kubernetes program renders: its ``suite.yaml``, read into a ``ServiceSpec``.

Two stack keys name it, and at least one is required:

* ``suite:manifest`` — a manifest file, or a directory holding ``suite.yaml`` (relative paths are
  resolved against the repository root, where ``Pulumi.yaml`` is). The deploy target points it
  at the manifest of the commit being released; ``Pulumi.dev-k8s.yaml`` points it at the model
  server's own ``suite.yaml``.
* ``suite:service`` — a service registered with ``suite services add``. Without
  ``suite:manifest`` the manifest is read from the registered repository at ``suite:serviceRef``
  (a commit or branch; default: the commit recorded when the service was registered, never a
  moving branch head, so two ``up`` runs of one release render the same thing).

When both are set they must agree on the name: a stack cannot render one service under
another's name. Everything is validated before the first resource is declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stacks.config import ConfigReader, full_key, get_str
from suite.errors import ConfigError
from suite.services import spec as spec_mod
from suite.services.spec import ServiceSpec

if TYPE_CHECKING:
    from suite.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def manifest_path(value: str, root: Path = REPO_ROOT) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def _registered(reader: ConfigReader, name: str, settings: Settings | None) -> ServiceSpec:
    """The registered service's manifest at ``suite:serviceRef`` (default: its recorded head)."""
    from suite import settings as settings_mod
    from suite.services.registry import Registry, read_manifest_at

    registration = Registry(settings or settings_mod.load()).get(name)
    ref = get_str(reader, "serviceRef") or registration.head
    spec, _sha = read_manifest_at(registration.repository, ref)
    return spec


def load_service(reader: ConfigReader, root: Path = REPO_ROOT,
                 settings: Settings | None = None) -> ServiceSpec:
    """The validated spec named by ``suite:manifest`` and/or ``suite:service``.

    ``settings`` locate the registry (default: ``suite.settings.load()``, i.e. ``SUITE_HOME``).
    """
    manifest = get_str(reader, "manifest")
    name = get_str(reader, "service")
    if name is not None and not spec_mod.NAME_RE.match(name):
        raise ConfigError(f"{full_key(reader, 'service')} is {name!r} (expected a service "
                          f"name: [a-z][a-z0-9-]{{0,30}})")
    if manifest is None and name is None:
        raise ConfigError(
            f"{full_key(reader, 'manifest')} and {full_key(reader, 'service')} are not set "
            f"(expected the service to render: `pulumi config set {full_key(reader, 'manifest')}"
            f" suite.yaml` for the model server, or `pulumi config set "
            f"{full_key(reader, 'service')} NAME` for a service registered with "
            f"`suite services add`)")
    try:
        spec = (spec_mod.load(manifest_path(manifest, root)) if manifest is not None
                else _registered(reader, str(name), settings))
    except spec_mod.ManifestError as exc:
        raise ConfigError(f"{full_key(reader, 'manifest' if manifest else 'service')}: "
                          f"{exc}") from exc
    if name is not None and spec.service != name:
        raise ConfigError(
            f"{full_key(reader, 'service')} is {name!r} but the manifest "
            f"{manifest!r} declares service {spec.service!r} (expected the same name; fix one "
            f"of them)")
    return spec
