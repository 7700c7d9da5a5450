"""MLflow tracking server and model registry (SQLite backend, local artifact directory), behind
MLflow's own basic-auth app.

Every request but ``/health`` and the static files needs a user (anonymous: 401, and the UI
gets the browser's basic-auth prompt). ``default_permission`` is READ: any authenticated user
reads everything, and only the creator of an experiment or a registered model (MLflow grants it
MANAGE) and the admin edit it. The platform's user ``suite`` (:func:`credentials.mlflow_login`)
is the one the workers, the CLI and the tests use; :meth:`MlflowService.after_start` creates it
through MLflow's REST API on every start and, the first time auth is on over an existing store,
hands it what was created before (so its models stay its own). Users are created only by the
admin: in MLflow 3.17 ``/signup`` and ``users/create`` need an admin (or a workspace admin).
"""

from __future__ import annotations

import httpx

from suite.errors import ServiceUnavailable
from suite.platform import credentials
from suite.platform.files import atomic_write
from suite.platform.service import Service, http_ok

#: MLflow's own REST paths for users and grants (3.17: grants are one v3 endpoint)
USERS_CREATE = "/api/2.0/mlflow/users/create"
USERS_GET = "/api/2.0/mlflow/users/get"
USERS_SET_SECRET = "/api/2.0/mlflow/users/update-password"  # noqa: S105 (a path)
GRANT = "/api/3.0/mlflow/users/permissions/grant"
#: written once every experiment and model made before auth was on belongs to ``suite``
ADOPTED = "auth-adopted"


class MlflowService(Service):
    name = "mlflow"
    port_key = "mlflow"
    binaries = {"mlflow": "pip install 'mlflow[auth]'"}
    #: a limit, not a wait: start returns once healthy (~20 s quiet); a busy 2-core host (load
    #: above 10) took more than 90 s, so the limit leaves room before it calls the start failed
    start_timeout = 240.0

    @property
    def auth_config(self) -> str:
        return str(self.state_dir / "basic_auth.ini")

    def prepare(self) -> None:
        super().prepare()
        (self.state_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        for owned in ("mlflow-admin", "mlflow-suite", "mlflow-flask-key"):
            credentials.ensure_password(self.settings, owned)  # clients only read them
        admin, secret = credentials.mlflow_admin(self.settings)
        # read only when the auth store has no admin yet; later the stored hash is the truth
        atomic_write(self.state_dir / "basic_auth.ini", "[mlflow]\n"
                     "default_permission = READ\n"
                     f"database_uri = sqlite:///{self.state_dir / 'basic_auth.db'}\n"
                     f"admin_username = {admin}\n"
                     f"admin_password = {secret}\n", mode=0o600)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        env["MLFLOW_AUTH_CONFIG_PATH"] = self.auth_config
        # signs the UI's CSRF tokens: the same in both workers and across restarts
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = credentials.password(self.settings,
                                                                     "mlflow-flask-key")
        return env

    def argv(self) -> list[str]:
        return [
            self.binary("mlflow"), "server",
            "--app-name", "basic-auth",
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

    def after_start(self) -> None:
        with httpx.Client(base_url=self.url, auth=credentials.mlflow_admin(self.settings),
                          timeout=30) as admin:
            ensure_user(admin, *credentials.mlflow_login(self.settings))
            marker = self.state_dir / ADOPTED
            if not marker.exists():
                adopt(admin, credentials.mlflow_login(self.settings)[0])
                atomic_write(marker, "experiments and registered models made before auth "
                             "belong to the platform user\n")

    def detail(self) -> str:
        return f"UI {self.url} (basic auth)"


def _check(resp: httpx.Response, what: str) -> httpx.Response:
    if resp.status_code >= 400:
        raise ServiceUnavailable(
            f"MLflow: {what} answered HTTP {resp.status_code} ({resp.text[:200]!r}); expected "
            "200 (does the admin's password in SUITE_HOME/secrets/mlflow-admin.password still "
            "match the auth store mlflow/basic_auth.db?)")
    return resp


def ensure_user(admin: httpx.Client, name: str, secret: str) -> None:
    """``name`` exists with ``secret`` as its password (created, or its password set again)."""
    found = admin.get(USERS_GET, params={"username": name})
    if found.status_code == 200:
        _check(admin.patch(USERS_SET_SECRET, json={"username": name, "password": secret}),
               f"setting {name}'s password")
        return
    _check(admin.post(USERS_CREATE, json={"username": name, "password": secret}),
           f"creating user {name}")


def grant(admin: httpx.Client, name: str, resource_type: str, resource_id: str,
          permission: str = "MANAGE") -> None:
    """``name`` holds ``permission`` on the resource (already holding a grant there is fine)."""
    resp = admin.post(GRANT, json={"username": name, "resource_type": resource_type,
                                   "resource_id": resource_id, "permission": permission})
    if resp.status_code == 400 and "RESOURCE_ALREADY_EXISTS" in resp.text:
        return
    _check(resp, f"granting {name} {permission} on {resource_type} {resource_id}")


def adopt(admin: httpx.Client, name: str) -> None:
    """Every experiment and registered model that exists now is ``name``'s to edit: they were
    all made by the platform before auth was on, when MLflow recorded no creator."""
    for exp in _pages(admin, "/api/2.0/mlflow/experiments/search", "experiments"):
        grant(admin, name, "experiment", str(exp["experiment_id"]))
    for model in _pages(admin, "/api/2.0/mlflow/registered-models/search", "registered_models"):
        grant(admin, name, "registered_model", str(model["name"]))


def _pages(admin: httpx.Client, path: str, key: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    token = ""
    while True:
        query = {"max_results": "1000", **({"page_token": token} if token else {})}
        body = _check(admin.get(path, params=query), f"listing {key}").json()
        found.extend(body.get(key, []))
        token = body.get("next_page_token", "")
        if not token:
            return found
