"""Signed outbound webhooks: the signature, and one event's delivery with retries.

A delivery is a `POST` of a JSON body with

    Content-Type: application/json
    X-RetailPulse-Timestamp: <unix seconds of this attempt>
    X-RetailPulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

plus whatever `headers` the caller adds (event name, delivery id). The timestamp is signed with
the body, so a receiver can refuse replays (`verify` checks the signature and the age). Each
attempt is signed afresh. A timeout, a connection error, 429 or a 5xx is retried with
exponential backoff (a `Retry-After` the receiver sends is honoured, up to `MAX_WAIT_S`); any
other answer is final: 2xx/3xx delivered, 4xx refused. `deliver` never raises: what happened is
in the `Attempt`s it returns, for the caller to record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

SIGNATURE_HEADER = "X-RetailPulse-Signature"
TIMESTAMP_HEADER = "X-RetailPulse-Timestamp"
SIGNATURE_TOLERANCE_S = 300
MAX_WAIT_S = 60.0
USER_AGENT = "RetailPulse-Webhooks/1"
EXCERPT = 300  # characters of a failed answer kept with the attempt


@dataclass(frozen=True)
class Attempt:
    """One try of a delivery: `sent` (the receiver answered 2xx/3xx) or `failed`."""

    number: int
    status: str  # "sent" or "failed"
    response_code: int | None
    error: str | None  # the answer's excerpt or the exception, when not sent
    duration_ms: float
    at: datetime
    retryable: bool  # whether this failure was worth another try


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header value of `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def encode(payload: Mapping[str, Any] | bytes) -> bytes:
    """The body bytes of `payload` (compact JSON; bytes are sent as they are)."""
    if isinstance(payload, bytes):
        return payload
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def _retryable(code: int) -> bool:
    return code == 429 or code >= 500


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def deliver(
    url: str,
    payload: Mapping[str, Any] | bytes,
    secret: str,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Attempt]:
    """POST `payload` to `url`, signed with `secret`; retry transient failures (`attempts` in
    all, waiting `backoff`, 2×, 4× … seconds between them). Never raises."""
    body = encode(payload)
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    tries: list[Attempt] = []
    wait = backoff
    try:
        for number in range(1, max(1, attempts) + 1):
            stamp = str(int(time.time()))
            sent_headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: sign(secret, stamp, body),
                **(headers or {}),
            }
            at = datetime.now(UTC)
            clock = time.perf_counter()
            hint = None
            try:
                response = http.post(url, content=body, headers=sent_headers, timeout=timeout)
                code = response.status_code
                ok = code < 400
                retry = _retryable(code)
                error = None if ok else f"HTTP {code}: {response.text[:EXCERPT]}"
                hint = _retry_after(response) if retry else None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # final: not transient
                code, ok, retry = None, False, False
                error = f"{type(exc).__name__}: {exc}"[:EXCERPT]
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                code, ok, retry = None, False, True
                error = f"{type(exc).__name__}: {exc}"[:EXCERPT]
            except Exception as exc:  # a malformed URL, an unsupported scheme: final
                code, ok, retry = None, False, False
                error = f"{type(exc).__name__}: {exc}"[:EXCERPT]
            tries.append(
                Attempt(
                    number=number,
                    status="sent" if ok else "failed",
                    response_code=code,
                    error=error,
                    duration_ms=round((time.perf_counter() - clock) * 1000, 1),
                    at=at,
                    retryable=retry,
                )
            )
            if ok or not retry or number == attempts:
                break
            sleep(min(MAX_WAIT_S, max(wait, hint or 0.0)))
            wait *= 2
    finally:
        if own:
            http.close()
    return tries
