"""The Redis cache of analytics answers, invalidated when new data for a tenant lands.

Keys: `analytics:{tenant}:{generation}:{route}:{digest}` (digest: SHA-1 of the route's
parameters and the caller's store scope) holding the answer's JSON, with a TTL per route;
`analytics:gen:{tenant}` holds the tenant's generation. `invalidate` bumps the generation after
new sales commit, so every cached answer of that tenant is unreachable at once and expires
by its TTL. A lookup is one round trip (a Lua script reads the generation and the answer).
If Redis does not answer, routes compute the answer uncached rather than fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio as aioredis

from core.aioredis_clients import LoopClients
from core.events import Landed

log = logging.getLogger(__name__)

TIMEOUT_S = 0.05
TTL_S = {  # seconds
    "realtime": 30,
    "product": 300,
    "comparison": 300,
    "trends": 300,
    "basket": 900,
}

_LOOKUP = """
local gen = redis.call('GET', KEYS[1]) or '0'
return {gen, redis.call('GET', ARGV[1] .. gen .. ':' .. ARGV[2])}
"""


def generation_key(tenant: str) -> str:
    return f"analytics:gen:{tenant}"


def answer_key(tenant: str, generation: str, route: str, digest: str) -> str:
    return f"analytics:{tenant}:{generation}:{route}:{digest}"


def digest(params: dict[str, Any], scope: frozenset[str] | None) -> str:
    """A stable digest of a request's parameters and the caller's store scope."""
    payload = {"p": params, "s": None if scope is None else sorted(scope)}
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()


def _redis_url() -> str | None:
    from core.services import get_endpoints

    return get_endpoints(start=False).redis_url or None


@lru_cache(maxsize=8)
def _sync_client(url: str) -> redis.Redis:
    """One client (a connection pool: thread-safe, reset after a fork) per Redis URL."""
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def invalidate(landed: Landed, url: str | None = None) -> None:
    """Drop the tenant's cached analytics answers (bump its generation)."""
    url = url or _redis_url()
    if not url:
        return
    _sync_client(url).incr(generation_key(landed.tenant))


class AnalyticsCache:
    """Async reads and writes of cached answers, one `redis.asyncio` client per event loop."""

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._redis = LoopClients(url, timeout_s=timeout_s)
        self._clients: dict[int, tuple[aioredis.Redis, Any]] = {}

    def _client(self) -> tuple[aioredis.Redis, Any]:
        loop = id(asyncio.get_running_loop())
        entry = self._clients.get(loop)
        if entry is None:
            client = self._redis.get()
            entry = (client, client.register_script(_LOOKUP))
            self._clients[loop] = entry
        return entry

    async def lookup(self, tenant: str, route: str, key: str) -> tuple[str | None, bytes | None]:
        """(generation, cached answer or None); (None, None) when Redis does not answer."""
        _, script = self._client()
        try:
            gen, value = await script(
                keys=[generation_key(tenant)], args=[f"analytics:{tenant}:", f"{route}:{key}"]
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("analytics cache unavailable: %s", type(exc).__name__)
            return None, None
        return gen.decode() if isinstance(gen, bytes) else str(gen), value

    async def store(self, tenant: str, generation: str, route: str, key: str, body: bytes) -> None:
        """Cache `body` under the generation read before computing it (errors are logged)."""
        client, _ = self._client()
        try:
            await client.set(
                answer_key(tenant, generation, route, key), body, ex=TTL_S.get(route, 300)
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("analytics cache unavailable: %s", type(exc).__name__)
