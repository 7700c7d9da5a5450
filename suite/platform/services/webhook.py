"""The webhook receiver as a platform service, so `git push` works right after `suite up`.

It logs in to Vault with the worker AppRole (read-only on ``secret/data/suite/*``) to read the
per-provider secrets, which are generated here on first start if absent.
"""

from __future__ import annotations

import secrets
import sys

from suite import vault
from suite.errors import ConfigError
from suite.platform import api_auth
from suite.platform.service import Service, http_ok
from suite.webhook.verify import PROVIDERS


class WebhookService(Service):
    name = "webhook"
    port_key = "webhook"
    requires = ("vault", "prefect")
    start_timeout = 20.0

    def prepare(self) -> None:
        super().prepare()
        client = vault.client(self.settings)
        for provider in PROVIDERS:
            try:
                vault.get_secret(client, f"webhook/{provider}", "secret")
            except ConfigError:
                vault.put_secret(client, f"webhook/{provider}", "secret", secrets.token_hex(32))

    def env(self) -> dict[str, str]:
        env = super().env()
        vdir = vault.vault_dir(self.settings)
        env.update(
            PREFECT_API_URL=self.settings.prefect_api_url,
            PREFECT_API_AUTH_STRING=api_auth.prefect_auth(self.settings).get_secret_value(),
            SUITE_VAULT_ROLE_ID_FILE=str(vdir / "worker-role-id"),
            SUITE_VAULT_SECRET_ID_FILE=str(vdir / "worker-secret-id"),
        )
        return env

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "suite.cli", "webhook", "serve"]

    def healthy(self) -> bool:
        return http_ok(self.url + "/healthz")

    def detail(self) -> str:
        return ("POST /hooks/{github,gitlab,gitea} (registered services, their branch) -> "
                "release/release")
