"""HAProxy: the traffic router of the local deploy target.

Backend ``app`` (release traffic) and ``preview`` (blue-green preview) hold fixed slots made by
``server-template`` (``stable1..4``, ``canary1..4``, ``preview1..4``), parked in maintenance until
a release points them at containers through the runtime API: weights and addresses change with
no reload. A third frontend serves HAProxy's Prometheus exporter. On stop the runtime state is
saved to ``server-state`` and loaded on the next start, so weights survive a restart.
"""

from __future__ import annotations

import json

from suite.errors import SuiteError
from suite.haproxy import BACKEND, PREVIEW_BACKEND, SLOTS, RuntimeApi
from suite.platform.service import Service, http_ok


class HaproxyService(Service):
    name = "haproxy"
    port_key = "haproxy"
    binaries = {"haproxy": "apt-get install haproxy"}
    start_timeout = 20.0

    @property
    def admin_socket(self):
        return self.state_dir / "admin.sock"

    @property
    def state_file(self):
        return self.state_dir / "server-state"

    def extra_ports(self) -> list[int]:
        return [self.settings.port("haproxy_preview"), self.settings.port("haproxy_metrics")]

    @property
    def metrics_url(self) -> str:
        return self.settings.url("haproxy_metrics") + "/metrics"

    def prepare(self) -> None:
        super().prepare()
        host = self.settings.host
        check = "check inter 1s fall 2 rise 2"
        slots = f"1-{SLOTS}"
        if not self.state_file.exists():
            self.state_file.write_text("1\n# be_id be_name srv_id srv_name\n")
        (self.state_dir / "haproxy.cfg").write_text(
            f"""global
    stats socket {self.admin_socket} mode 600 level admin
    server-state-file {self.state_file}
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch 1
    # predictions are idempotent: a request whose server died mid-way is retried elsewhere
    # (a 500 is an answer, not retried: the canary analysis must see it)
    retry-on conn-failure empty-response response-timeout 502 503 504
    option http-server-close
    load-server-state-from-file global

frontend release
    bind {host}:{self.port}
    default_backend {BACKEND}

frontend preview
    bind {host}:{self.settings.port("haproxy_preview")}
    default_backend {PREVIEW_BACKEND}

frontend metrics
    bind {host}:{self.settings.port("haproxy_metrics")}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats

backend {BACKEND}
    balance roundrobin
    option httpchk GET /healthz
    server-template stable {slots} 127.0.0.1:9 weight 100 disabled {check}
    server-template canary {slots} 127.0.0.1:9 weight 0 disabled {check}

backend {PREVIEW_BACKEND}
    balance roundrobin
    option httpchk GET /healthz
    server-template preview {slots} 127.0.0.1:9 weight 100 disabled {check}
"""
        )

        # HAProxy's own exporter is always scraped (per-server responses, weights, status)
        targets = self.settings.dir("prometheus", "targets")
        targets.mkdir(parents=True, exist_ok=True)
        (targets / "haproxy.json").write_text(json.dumps([{
            "targets": [f"{host}:{self.settings.port('haproxy_metrics')}"],
            "labels": {"job_role": "router"},
        }]))

    def argv(self) -> list[str]:
        # -db: stay in the foreground so the platform tracks the pid; -W: master-worker
        return [self.binary("haproxy"), "-W", "-db", "-f", str(self.state_dir / "haproxy.cfg")]

    def healthy(self) -> bool:
        if not http_ok(self.metrics_url):
            return False
        try:
            RuntimeApi(self.admin_socket, timeout=2).command("show info")
        except SuiteError:
            return False
        return True

    def before_stop(self) -> None:
        try:
            RuntimeApi(self.admin_socket, timeout=2).save_state(self.state_file)
        except SuiteError:
            pass

    def detail(self) -> str:
        return f"preview {self.settings.url('haproxy_preview')} · metrics {self.metrics_url}"
