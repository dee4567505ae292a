"""`redis.asyncio` clients for request paths: one per event loop, tight timeouts, one retry.

asyncio connections belong to the loop that made them (a Serve replica, a test client and a
worker thread each run their own), so every reader keeps one client per running loop. Reads
time out after `timeout_s` with one immediate retry (a connection left stale by a Redis
restart), so a hung or stopped Redis costs a request tens of milliseconds, not a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry


class LoopClients:
    """The running loop's client of one Redis URL (given, or resolved on first use)."""

    def __init__(self, url: str | Callable[[], str], *, timeout_s: float) -> None:
        self._url = url
        self.timeout_s = timeout_s
        self._clients: dict[int, aioredis.Redis] = {}

    @property
    def url(self) -> str:
        if callable(self._url):
            self._url = self._url()
        return self._url

    def get(self) -> aioredis.Redis:
        """This loop's client (call from a coroutine)."""
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=0,
            )
            self._clients[loop] = client
        return client
