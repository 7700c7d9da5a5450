"""A local PostgreSQL cluster for the Prefect server (``suite up --database postgres``).

SQLite gives "database is locked" once many workers write task runs at once; Postgres does not.
``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess

from suite.errors import ConfigError, MissingBinary, ServiceUnavailable
from suite.platform.service import Service

PG_HINT = "apt-get install postgresql"


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
        if not (data / "PG_VERSION").exists():
            result = subprocess.run(
                [self.binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8"],
                check=False,
                capture_output=True,
                text=True,
                preexec_fn=self._demote,
            )
            if result.returncode != 0:
                raise ServiceUnavailable(
                    f"initdb for {data} failed: {(result.stderr or result.stdout).strip()[-800:]}"
                )

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
                "-U", "postgres", "-tAc"]
        exists = subprocess.run(
            [*psql, "SELECT 1 FROM pg_database WHERE datname='prefect'"],
            capture_output=True, text=True, check=False,
        )
        if exists.returncode != 0:
            raise ServiceUnavailable(f"postgres query failed: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, "CREATE DATABASE prefect"], check=True,
                           capture_output=True)
