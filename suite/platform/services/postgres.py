"""A local PostgreSQL cluster for the Prefect server (``suite up --database postgres``).

SQLite gives "database is locked" once many workers write task runs at once; Postgres does not.
``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user.

Nobody connects without the password: ``pg_hba.conf`` asks for ``scram-sha-256`` on the unix
socket and on TCP, and the ``postgres`` role's password is made on the first start
(``SUITE_HOME/secrets/postgres.password``, 0600, :mod:`suite.platform.credentials`). Only the
Prefect server is given it (:meth:`PrefectServerService.env`). A data directory initialised by
an earlier version with ``--auth=trust`` is switched before its next start: the password is set
in single-user mode (no server listens meanwhile) and ``pg_hba.conf`` is rewritten.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

from suite.errors import ConfigError, MissingBinary, ServiceUnavailable
from suite.platform import credentials
from suite.platform.files import atomic_write
from suite.platform.service import Service
from suite.settings import child_env

PG_HINT = "apt-get install postgresql"
#: the whole pg_hba.conf: every connection proves the password (peer would let root in as any
#: role name it asks for only if mapped; scram is the same rule for socket and TCP)
HBA = """# written by the suite: every connection needs the password (scram-sha-256)
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***")


class PostgresService(Service):
    name = "postgres"
    port_key = "postgres"
    binaries = {"initdb": PG_HINT, "postgres": PG_HINT, "psql": PG_HINT, "pg_isready": PG_HINT}
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM waits for clients to leave
    start_timeout = 30.0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.settings.host}:{self.port}/prefect"

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise MissingBinary(f"no 'postgres' system user: {PG_HINT}") from exc
        return entry.pw_uid, entry.pw_gid

    def _demote(self) -> None:
        owner = self._owner()
        if owner:
            os.setgid(owner[1])
            os.setuid(owner[0])

    def preexec(self) -> object:
        return self._demote

    def prepare(self) -> None:
        super().prepare()
        data = self.state_dir / "data"
        sock = self.state_dir / "sock"
        owner = self._owner()
        for path in (self.state_dir, sock):
            path.mkdir(parents=True, exist_ok=True)
            if owner:
                os.chown(path, *owner)
        if owner:
            self._check_reachable(owner[0])
        secret = credentials.ensure_password(self.settings, "postgres")
        if not (data / "PG_VERSION").exists():
            pwfile = self.state_dir / ".initdb-pw"
            atomic_write(pwfile, secret + "\n", mode=0o600)
            if owner:
                os.chown(pwfile, *owner)
            try:
                result = subprocess.run(
                    [self.binary("initdb"), "-D", str(data), "-U", "postgres",
                     "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8"],
                    check=False, capture_output=True, text=True, preexec_fn=self._demote,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise ServiceUnavailable(
                    f"initdb for {data} failed: "
                    f"{_scrub((result.stderr or result.stdout).strip()[-800:], secret)}")
        self._require_password(data, secret)

    def _require_password(self, data: Path, secret: str) -> None:
        """A cluster that still trusts anyone (made by an earlier version with
        ``--auth=trust``): give ``postgres`` the password in single-user mode, then rewrite
        ``pg_hba.conf``. Runs only while no server is up (``prepare``), so there is no moment
        in which a trusting server listens with the switch half done."""
        hba = data / "pg_hba.conf"
        if hba.read_text() == HBA:
            return
        quoted = secret.replace("'", "''")
        result = subprocess.run(
            [self.binary("postgres"), "--single", "-D", str(data), "postgres"],
            input=f"ALTER ROLE postgres PASSWORD '{quoted}';\n", check=False,
            capture_output=True, text=True, preexec_fn=self._demote,
        )
        if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
            raise ServiceUnavailable(
                f"setting the password of role postgres in {data} failed (is a server still "
                f"running on it? `suite down --only postgres`): "
                f"{_scrub((result.stderr or result.stdout).strip()[-800:], secret)}")
        atomic_write(hba, HBA, mode=0o600)
        owner = self._owner()
        if owner:
            os.chown(hba, *owner)

    def _check_reachable(self, uid: int) -> None:
        """The postgres user must be able to walk down to the state dir."""
        for parent in reversed(self.state_dir.parents):
            mode = parent.stat()
            if mode.st_uid != uid and not mode.st_mode & 0o001:
                raise ConfigError(
                    f"the 'postgres' user cannot enter {parent} (mode {oct(mode.st_mode & 0o777)}),"
                    f" so it cannot reach {self.state_dir}; allow it (chmod o+x {parent}) or set "
                    f"SUITE_HOME to a directory below traversable parents"
                )

    def argv(self) -> list[str]:
        return [
            self.binary("postgres"), "-D", str(self.state_dir / "data"),
            "-p", str(self.port), "-h", self.settings.host, "-k", str(self.state_dir / "sock"),
        ]

    def healthy(self) -> bool:
        result = subprocess.run(
            [self.binary("pg_isready"), "-h", self.settings.host, "-p", str(self.port), "-q"],
            check=False,
        )
        return result.returncode == 0

    def after_start(self) -> None:
        psql = [self.binary("psql"), "-h", self.settings.host, "-p", str(self.port),
                "-U", "postgres", "-w", "-tAc"]
        # the password goes in the environment of psql only, never on its command line
        env = {**child_env(self.settings),
               "PGPASSWORD": credentials.password(self.settings, "postgres")}
        exists = subprocess.run(
            [*psql, "SELECT 1 FROM pg_database WHERE datname='prefect'"],
            capture_output=True, text=True, check=False, env=env,
        )
        if exists.returncode != 0:
            raise ServiceUnavailable(f"postgres query failed: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, "CREATE DATABASE prefect"], check=True,
                           capture_output=True, env=env)
