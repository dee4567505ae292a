"""Login sessions and short-lived keys in Redis.

- `session:{sessionId}` (seed §3.3): JSON of the session's tenant, user, role, client and start,
  with TTL = the refresh-token lifetime (renewed by each refresh). Logout deletes it, and an
  access token whose session key is gone is rejected, so logging out takes effect at once
  although the JWT itself would still be valid for up to 15 minutes.
- `pwreset:{sha256}`: a pending password reset (TTL = `password_reset_minutes`).
- `mfa:used:{tenant}:{user}:{code}`: a TOTP code just accepted (not accepted twice).
- `rl:{window}:…`: fixed-window counters of the rate limits (accounts/ratelimit.py).
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import redis

from core.errors import ServiceUnavailable

SESSION_PREFIX = "session:"


# The errors of an unreachable or hung session store (sync and asyncio clients alike).
STORE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def store_down(exc: BaseException) -> ServiceUnavailable:
    """The 503 for a session store that did not answer (`raise store_down(exc) from None`)."""
    return ServiceUnavailable(
        f"the session store (Redis) did not answer: {type(exc).__name__}; retry shortly",
        details={"service": "session store"},
        retry_after=1,
    )


def session_key(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def reset_key(token_hash: str) -> str:
    return f"pwreset:{token_hash}"


def redis_url() -> str:
    """The configured Redis, else the embedded one (started if need be)."""
    from core.settings import get_settings

    configured = get_settings().redis_url
    if configured:
        return configured
    from core.services import get_endpoints

    return get_endpoints().redis_url


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)


def sync_redis() -> redis.Redis:
    """A blocking client of the platform's Redis (for account operations in worker threads)."""
    return _client_for(redis_url())


def open_session(
    r: redis.Redis,
    *,
    session_id: str,
    tenant: str,
    user_id: str,
    role: str,
    ttl_s: int,
    ip: str | None,
    user_agent: str | None,
) -> None:
    value: dict[str, Any] = {
        "tenant": tenant,
        "userId": user_id,
        "role": role,
        "ip": ip,
        "userAgent": (user_agent or "")[:256],
        "startedAt": int(time.time()),
    }
    r.set(session_key(session_id), json.dumps(value), ex=ttl_s)


def renew_session(r: redis.Redis, *, session_id: str, ttl_s: int) -> bool:
    """Push a live session's expiry out; False if it is gone (logged out or expired)."""
    return bool(r.expire(session_key(session_id), ttl_s))


def close_sessions(r: redis.Redis, session_ids: list[str]) -> None:
    if session_ids:
        r.delete(*(session_key(s) for s in session_ids))


def mark_code_used(r: redis.Redis, *, tenant: str, user_id: str, code: str) -> bool:
    """Remember an accepted TOTP code for 2 periods; False if it was already used."""
    return bool(r.set(f"mfa:used:{tenant}:{user_id}:{code}", 1, nx=True, ex=90))
