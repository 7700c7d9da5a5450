"""The OCI registry (distribution, Debian's ``docker-registry``) with filesystem storage."""

from __future__ import annotations

from suite.platform.service import Service, http_ok


class RegistryService(Service):
    name = "registry"
    port_key = "registry"
    binaries = {"docker-registry": "apt-get install docker-registry"}
    start_timeout = 30.0

    def prepare(self) -> None:
        super().prepare()
        data = self.state_dir / "data"
        data.mkdir(exist_ok=True)
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
  addr: {self.settings.host}:{self.port}
  headers:
    X-Content-Type-Options: [nosniff]
"""
        )

    def argv(self) -> list[str]:
        return [self.binary("docker-registry"), "serve", str(self.state_dir / "config.yml")]

    def healthy(self) -> bool:
        return http_ok(self.url + "/v2/")
