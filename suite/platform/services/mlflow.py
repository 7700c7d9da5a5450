"""MLflow tracking server and model registry (SQLite backend, local artifact directory)."""

from __future__ import annotations

from suite.platform.service import Service, http_ok


class MlflowService(Service):
    name = "mlflow"
    port_key = "mlflow"
    binaries = {"mlflow": "pip install mlflow"}
    #: a limit, not a wait: start returns once healthy (~20 s quiet); a busy 2-core host (load
    #: above 10) took more than 90 s, so the limit leaves room before it calls the start failed
    start_timeout = 240.0

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
            # uvicorn kills a worker that does not answer its parent's ping within 5 s: on a busy
            # host a worker still importing mlflow missed it, was restarted, and missed it again
            "--uvicorn-opts", "--timeout-worker-healthcheck 60",
        ]

    def healthy(self) -> bool:
        return http_ok(self.url + "/health")
