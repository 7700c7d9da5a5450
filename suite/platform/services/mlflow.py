"""MLflow tracking server and model registry (SQLite backend, local artifact directory)."""

from __future__ import annotations

from suite.platform.service import Service, http_ok


class MlflowService(Service):
    name = "mlflow"
    port_key = "mlflow"
    binaries = {"mlflow": "pip install mlflow"}
    start_timeout = 90.0

    def prepare(self) -> None:
        super().prepare()
        (self.state_dir / "artifacts").mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env

    def argv(self) -> list[str]:
        return [
            self.binary("mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.state_dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.state_dir / "artifacts"),
            "--host", self.settings.host, "--port", str(self.port),
            "--workers", "2",
        ]

    def healthy(self) -> bool:
        return http_ok(self.url + "/health")
