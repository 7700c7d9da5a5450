"""The OCI registry: distribution (Debian's ``docker-registry``) behind a gate that checks who
may pull and who may push.

distribution's own htpasswd auth knows users but no permissions: any user it accepts may push.
So distribution listens only on a unix socket in its 0700 state directory (only root reaches
it), and the registry's address (``127.0.0.1:5000``) is a small HAProxy of its own, the *gate*,
with a userlist of two users (bcrypt hashes, :mod:`suite.platform.credentials`):

* a request without credentials, or with wrong ones, gets **401** (``WWW-Authenticate: Basic``);
* ``builder`` (the build stage) may do anything: push and pull;
* ``puller`` (the engine starting replicas, Trivy, evidence reads, tests) may ``GET``/``HEAD``
  only; its ``POST``/``PUT``/``PATCH``/``DELETE`` get **403**.

Two services, so each process has its own pid, log and health: ``registry-store``
(distribution) and ``registry`` (the gate, which clients talk to).
"""

from __future__ import annotations

import httpx

from suite.platform import credentials
from suite.platform.files import atomic_write
from suite.platform.service import Service, http_ok

#: the methods the ``puller`` may use: reading manifests, tags and blobs
READ_METHODS = ("GET", "HEAD")


class RegistryStoreService(Service):
    """distribution itself, on a unix socket only root can reach."""

    name = "registry-store"
    binaries = {"docker-registry": "apt-get install docker-registry"}
    start_timeout = 30.0

    @property
    def socket(self):
        return self.state_dir / "registry.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def prepare(self) -> None:
        super().prepare()
        self.state_dir.chmod(0o700)
        data = self.state_dir / "data"
        data.mkdir(exist_ok=True)
        self.socket.unlink(missing_ok=True)  # left by a killed process: distribution won't bind
        (self.state_dir / "config.yml").write_text(
            f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  net: unix
  addr: {self.socket}
  headers:
    X-Content-Type-Options: [nosniff]
"""
        )

    def argv(self) -> list[str]:
        return [self.binary("docker-registry"), "serve", str(self.state_dir / "config.yml")]

    def healthy(self) -> bool:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)),
                              timeout=2) as http:
                return http.get("http://registry/v2/").status_code == 200
        except (httpx.HTTPError, OSError):
            return False


class RegistryService(Service):
    """The gate: HAProxy on the registry's port, checking users and methods."""

    name = "registry"
    port_key = "registry"
    requires = ("registry-store",)
    binaries = {"haproxy": "apt-get install haproxy"}
    start_timeout = 30.0

    @property
    def config_path(self):
        return self.state_dir / "gate.cfg"

    def render(self) -> str:
        store = RegistryStoreService(self.settings).socket
        for role in credentials.REGISTRY_ROLES:  # the gate checks them: it makes them
            credentials.ensure_password(self.settings, f"registry-{role}")
        users = "\n".join(
            f"    user {role} password "
            f"{credentials.bcrypt_hash(credentials.registry_login(self.settings, role)[1], 4)}"
            for role in credentials.REGISTRY_ROLES)
        return f"""global
    maxconn 512

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 30s
    option http-server-close

userlist registry
    group push users builder
    group pull users builder,puller
{users}

frontend registry
    bind {self.settings.host}:{self.port}
    acl can_pull http_auth_group(registry) pull
    acl can_push http_auth_group(registry) push
    acl reading method {" ".join(READ_METHODS)}
    # no (or a wrong) credential: 401 with a Basic challenge, so clients send theirs
    http-request auth realm suite-registry unless can_pull
    # a known user who may not write: 403 (the puller pushing)
    http-request deny deny_status 403 if !reading !can_push
    default_backend store

backend store
    server store unix@{store}
"""

    def prepare(self) -> None:
        super().prepare()
        self.state_dir.chmod(0o700)
        # 0600: the file holds the users' password hashes
        atomic_write(self.config_path, self.render(), mode=0o600)

    def argv(self) -> list[str]:
        return [self.binary("haproxy"), "-W", "-db", "-f", str(self.config_path)]

    def healthy(self) -> bool:
        return http_ok(self.url + "/v2/",
                       headers=credentials.basic_auth(self.settings, "registry-puller"))

    def detail(self) -> str:
        return "pull: builder, puller · push: builder"
