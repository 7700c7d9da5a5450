"""HAProxy: the traffic router of the local deploy target.

The configuration is rendered from the route records of every registered service
(``suite.haproxy``): per-service backends chosen by Host header on the release and preview
addresses, an unknown host answered 404 by HAProxy itself, and a third frontend that serves
HAProxy's Prometheus exporter. :meth:`HaproxyService.reload` re-renders it, checks it with
``haproxy -c`` and reloads the master (SIGUSR2): the new worker takes over the listeners and the
old one finishes its requests, so adding or removing a service drops no request of the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from suite.errors import DeployError, SuiteError
from suite.haproxy import RouteStore, RuntimeApi, backend_name, render_routes
from suite.platform import credentials
from suite.platform.files import atomic_write
from suite.platform.service import Service, http_ok

#: how long a reload may take before it is an error (the new worker must list the backends)
RELOAD_TIMEOUT = 20.0


#: the window HAProxy averages each source address's request rate over
RATE_WINDOW_S = 10


def rate_limit(per_second: int) -> str:
    """Release frontend rules: a source address sending more than ``per_second`` requests/s on
    average over :data:`RATE_WINDOW_S` is answered 429 by HAProxy itself, so neither stable nor
    canary sees the flood (and it never counts against an analysis). 0: no limit."""
    if per_second <= 0:
        return "    # no per-source request rate limit (suite up --rate-limit 0)"
    most = per_second * RATE_WINDOW_S
    body = ('{\\"error\\":\\"too many requests from this address: more than '
            f'{per_second} per second over {RATE_WINDOW_S} s\\"}}')
    return "\n".join([
        f"    # per source address: more than {per_second} requests/s over {RATE_WINDOW_S} s get "
        f"429 (suite up --rate-limit)",
        f"    stick-table type ipv6 size 100k expire {RATE_WINDOW_S * 3}s "
        f"store http_req_rate({RATE_WINDOW_S}s)",
        "    http-request track-sc0 src",
        f"    http-request return status 429 content-type application/json string \"{body}\" "
        f"hdr Retry-After {RATE_WINDOW_S} if {{ sc_http_req_rate(0) gt {most} }}",
    ])


def _worker_pid(api: RuntimeApi) -> str:
    for line in api.command("show info").splitlines():
        if line.startswith("Pid:"):
            return line.split(":", 1)[1].strip()
    return ""


class HaproxyService(Service):
    name = "haproxy"
    port_key = "haproxy"
    binaries = {"haproxy": "apt-get install haproxy"}
    start_timeout = 20.0

    @property
    def admin_socket(self):
        return self.state_dir / "admin.sock"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "haproxy.cfg"

    @property
    def routes(self) -> RouteStore:
        return RouteStore(self.state_dir / "routes")

    def extra_ports(self) -> list[int]:
        return [self.settings.port("haproxy_preview"), self.settings.port("haproxy_metrics")]

    @property
    def metrics_url(self) -> str:
        return self.settings.url("haproxy_metrics") + "/metrics"

    def render(self, at_start: bool = False) -> str:
        host = self.settings.host
        release, preview, backends = render_routes(self.routes.all(), at_start)
        unrouted = ('    http-request return status 404 content-type application/json '
                    'string "{\\"error\\":\\"no service is routed for this Host header '
                    '(suite services list)\\"}"')
        return f"""global
    stats socket {self.admin_socket} mode 600 level admin expose-fd listeners
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    retries 2
    option redispatch 1
    # a request whose server died before answering is retried elsewhere; a 500 is an answer
    # and is not retried: the canary analysis must see it
    retry-on conn-failure empty-response response-timeout
    option http-server-close
    # on a reload the old process answers the next request of an idle keep-alive client
    # (with Connection: close) instead of closing under it: no client sees a reset
    option idle-close-on-response

frontend release
    bind {host}:{self.port}
{rate_limit(self.settings.rate_limit)}
{release}
    default_backend unrouted

frontend preview
    bind {host}:{self.settings.port("haproxy_preview")}
{preview}
    default_backend unrouted

frontend metrics
    bind {host}:{self.settings.port("haproxy_metrics")}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats realm suite
    stats auth {credentials.USER}:{credentials.ensure_password(self.settings, "haproxy")}

backend unrouted
{unrouted}

{backends}
"""

    def prepare(self) -> None:
        super().prepare()
        self.routes.folder.mkdir(parents=True, exist_ok=True)
        # 0600: the file holds the stats page's password
        atomic_write(self.config_path, self.render(at_start=True), mode=0o600)
        # HAProxy's own exporter is always scraped (per-server responses, weights, status)
        targets = self.settings.dir("prometheus", "targets")
        targets.mkdir(parents=True, exist_ok=True)
        (targets / "haproxy.json").write_text(json.dumps([{
            "targets": [f"{self.settings.host}:{self.settings.port('haproxy_metrics')}"],
            "labels": {"job_role": "router"},
        }]))

    def reload(self) -> None:
        """Render the configuration from the route records, check it, reload the master."""
        text = self.render()
        candidate = self.state_dir / "haproxy.cfg.new"
        atomic_write(candidate, text, mode=0o600)
        check = subprocess.run([self.binary("haproxy"), "-c", "-q", "-f", str(candidate)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            candidate.unlink(missing_ok=True)
            raise DeployError(f"the rendered HAProxy configuration is invalid (nothing was "
                              f"changed): {(check.stderr or check.stdout).strip()[-800:]}")
        candidate.replace(self.config_path)
        rec = self.record()
        if rec is None or not self.status().pid:
            return  # not running: the next start reads the new file
        api = RuntimeApi(self.admin_socket, timeout=2)
        before = _worker_pid(api)
        os.kill(rec.pid, signal.SIGUSR2)
        wanted = {backend_name(r.service) for r in self.routes.all()}
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if _worker_pid(api) not in (before, "") and wanted <= api.backends():
                    return
            except SuiteError:
                pass
            time.sleep(0.1)
        raise DeployError(f"HAProxy did not reload within {RELOAD_TIMEOUT:.0f}s (see "
                          f"`suite logs haproxy`)")

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

    def detail(self) -> str:
        return f"preview {self.settings.url('haproxy_preview')} · metrics {self.metrics_url}"
