"""How a service's Secrets reach the cluster without their values passing through Pulumi.

The pods name each Secret and key (``secretKeyRef``). With ``suite:secretStore`` set, the
program also declares one External Secrets Operator ``ExternalSecret`` per Secret: the operator
reads the platform's Vault (KV v2 ``secret/suite/<path>``, the same path the local target reads)
through the named store and writes the Secret in the service's namespace. The ExternalSecret
holds only the path and the keys, so neither the stack's state nor its outputs ever hold a
value. Without a store the Secrets must already exist (the Vault Secrets Operator, a CSI
driver, or ``kubectl create secret``); a pod whose Secret is missing does not start.
"""

from __future__ import annotations

from typing import Any

from stacks.k8s_config import KubernetesConfig

EXTERNAL_SECRETS_API = "external-secrets.io/v1"
#: the KV v2 mount's prefix the platform keeps every key under (DESIGN.md, Vault layout)
VAULT_PREFIX = "suite"


def external_secret_spec(cfg: KubernetesConfig, secret: str) -> dict[str, Any]:
    entries = [s for s in cfg.secret_env if s.secret == secret]
    keys = list(dict.fromkeys((s.path, s.key) for s in entries))
    return {
        "refreshInterval": "1h",
        "secretStoreRef": {"kind": cfg.secret_store_kind, "name": cfg.secret_store},
        "target": {"name": secret, "creationPolicy": "Owner", "deletionPolicy": "Retain"},
        "data": [{"secretKey": key,
                  "remoteRef": {"key": f"{VAULT_PREFIX}/{path}", "property": key}}
                 for path, key in keys],
    }
