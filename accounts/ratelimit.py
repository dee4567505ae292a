"""Fixed-window rate limits in Redis: per user, per client IP, and login attempts per IP.

A counter per (subject, window) is INCRed with an expiry of two windows; a request over the
limit gets 429 with `Retry-After` = the seconds left in the window. The per-request check of
an authenticated call is one Redis command together with the session lookup (`REQUEST_CHECK`,
a Lua script run by `serving/auth.py`), so it costs what one Redis GET costs.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import redis

from core.errors import TooManyRequests


@dataclass(frozen=True)
class Window:
    number: int
    retry_after: int  # seconds until the window ends


# One command per authenticated request: does the session exist, and the per-user and per-IP
# counters (each given its expiry when created). KEYS: session [, user counter, IP counter];
# ARGV[1]: counter expiry (s). Returns {session exists} or {exists, user count, IP count}.
REQUEST_CHECK = """
local alive = redis.call('EXISTS', KEYS[1])
if #KEYS == 1 then return {alive} end
local counts = {alive}
for i = 2, #KEYS do
    local n = redis.call('INCR', KEYS[i])
    if n == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
    counts[i] = n
end
return counts
"""
REQUEST_CHECK_SHA = hashlib.sha1(REQUEST_CHECK.encode()).hexdigest()


def current_window(window_s: int, now: float | None = None) -> Window:
    t = time.time() if now is None else now
    number = int(t // window_s)
    return Window(number, max(1, math.ceil((number + 1) * window_s - t)))


def user_key(window: Window, tenant: str, user_id: str) -> str:
    return f"rl:{window.number}:u:{tenant}:{user_id}"


def ip_key(window: Window, ip: str) -> str:
    return f"rl:{window.number}:ip:{ip}"


def login_key(window: Window, ip: str) -> str:
    return f"rl:{window.number}:login:{ip}"


def check_login_rate(r: redis.Redis, *, ip: str, per_minute: int) -> None:
    """Count one login-type attempt (login, token, password reset) from `ip`; 429 past the
    limit."""
    window = current_window(60)
    key = login_key(window, ip)
    pipe = r.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 120)
    count = pipe.execute()[0]
    if count > per_minute:
        raise TooManyRequests(
            f"too many sign-in attempts from this address: at most {per_minute} a minute; "
            f"retry in {window.retry_after} s",
            retry_after=window.retry_after,
            code="LOGIN_THROTTLED",
            details={"limit": per_minute, "window_s": 60},
        )
