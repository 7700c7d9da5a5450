"""Prometheus: scrapes itself and every target file dropped into ``prometheus/targets``.

Releases add their targets with file-based discovery; the scrape interval is short (1 s) so each
canary analysis step has enough points. Its API and UI answer only with the platform's
credential (a web config with basic auth, :mod:`suite.platform.credentials`), and it runs
without the lifecycle API: nobody can ``POST /-/quit`` it to make every canary read ERROR.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from suite.platform import credentials
from suite.platform.files import atomic_write, free_space
from suite.platform.service import Service, http_ok

SCRAPE_INTERVAL = "1s"
#: below this much free space under its data directory Prometheus soon fails to write its WAL
#: (it then drops samples: analyses see no data), so `suite status` and `suite doctor` say so
LOW_DISK_BYTES = 256 << 20


class PrometheusService(Service):
    name = "prometheus"
    port_key = "prometheus"
    binaries = {"prometheus": "apt-get install prometheus"}
    start_timeout = 60.0

    @property
    def targets_dir(self) -> Path:
        return self.state_dir / "targets"

    def prepare(self) -> None:
        super().prepare()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "data").mkdir(exist_ok=True)
        secret = credentials.ensure_password(self.settings, "prometheus")
        atomic_write(self.web_config, "basic_auth_users:\n"
                     f"  {credentials.USER}: {credentials.bcrypt_hash(secret)}\n", mode=0o600)
        (self.state_dir / "prometheus.yml").write_text(
            f"""global:
  scrape_interval: {SCRAPE_INTERVAL}
  evaluation_interval: {SCRAPE_INTERVAL}
scrape_configs:
  - job_name: prometheus
    basic_auth:
      username: {credentials.USER}
      password_file: {credentials.path(self.settings, "prometheus")}
    static_configs:
      - targets: ["{self.settings.host}:{self.port}"]
  - job_name: suite
    file_sd_configs:
      - files: ["{self.targets_dir}/*.json", "{self.targets_dir}/*.yml"]
        refresh_interval: 5s
    metric_relabel_configs:
      # HAProxy's per-server series name the service by backend (be_NAME / pv_NAME) and the
      # track by server (stable-1-TAG): the built-in `http` analysis selects on these labels
      - source_labels: [proxy]
        regex: "(?:be|pv)_(.+)"
        target_label: service
        replacement: "$1"
      - source_labels: [server]
        regex: "(stable|canary|preview)-.*"
        target_label: track
        replacement: "$1"
"""
        )

    @property
    def web_config(self) -> Path:
        return self.state_dir / "web.yml"

    def argv(self) -> list[str]:
        return [
            self.binary("prometheus"),
            f"--config.file={self.state_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.state_dir / 'data'}",
            f"--web.listen-address={self.settings.host}:{self.port}",
            f"--web.config.file={self.web_config}",
            "--storage.tsdb.retention.time=7d",
        ]

    def healthy(self) -> bool:
        return http_ok(self.url + "/-/ready",
                       headers=credentials.basic_auth(self.settings, "prometheus"))

    def detail(self) -> str:
        data = self.state_dir / "data"
        try:
            free = shutil.disk_usage(data).free
        except OSError as exc:
            return f"data {data} unreadable ({exc.strerror or exc})"
        if free < LOW_DISK_BYTES:
            return (f"low disk: {free_space(data)} under {data}; samples are dropped once it is "
                    f"full: free space there")
        return ""
