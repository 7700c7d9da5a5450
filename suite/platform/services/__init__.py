"""The registry of platform services, in start order. Adding a service: a module + one line."""

from __future__ import annotations

from suite.platform.service import Service
from suite.platform.services.haproxy import HaproxyService
from suite.platform.services.mlflow import MlflowService
from suite.platform.services.podman import PodmanService
from suite.platform.services.postgres import PostgresService
from suite.platform.services.prefect import PrefectServerService
from suite.platform.services.prometheus import PrometheusService
from suite.platform.services.registry import RegistryService, RegistryStoreService
from suite.platform.services.vault import VaultService
from suite.platform.services.webhook import WebhookService
from suite.platform.services.workers import WorkerService
from suite.settings import Settings

SERVICES: dict[str, type[Service]] = {
    "postgres": PostgresService,
    "vault": VaultService,
    "prefect": PrefectServerService,
    "mlflow": MlflowService,
    "prometheus": PrometheusService,
    "registry-store": RegistryStoreService,
    "registry": RegistryService,
    "engine": PodmanService,
    "haproxy": HaproxyService,
    "webhook": WebhookService,
}


def build(settings: Settings) -> list[Service]:
    """Every service this configuration runs, in dependency order."""
    services: list[Service] = [
        cls(settings)
        for name, cls in SERVICES.items()
        if name != "postgres" or settings.database == "postgres"
    ]
    services += [WorkerService(settings, i) for i in range(1, settings.workers + 1)]
    return services
