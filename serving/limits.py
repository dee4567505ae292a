"""Request-body size limit: a body past `RETAILPULSE_MAX_BODY_BYTES` (default 1 MiB) is
refused with 413 in the error envelope, the limit in the message.

Checked twice, in a pure ASGI middleware (DESIGN §6: no `BaseHTTPMiddleware`): by the declared
`Content-Length` before the app runs (nothing is read), and by counting the bytes as the app
reads them (a chunked body or an understated length gets no further). Paths whose routes
enforce a larger limit of their own (the integration sync routes,
`RETAILPULSE_INTEGRATION_MAX_BYTES`) get that larger limit here, so their own check answers.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import PayloadTooLarge
from core.settings import Settings, get_settings
from serving.envelope import ErrorBody, ErrorEnvelope, Metadata

INTEGRATIONS_PREFIX = "/api/v1/integrations/"


@dataclass(frozen=True)
class Limit:
    """A byte limit and the setting that configures it (named in the 413's message)."""

    bytes: int
    setting: str


def limits_from(settings: Settings) -> tuple[Limit, dict[str, Limit]]:
    """The default limit and the larger limits of path prefixes, from `settings`."""
    default = Limit(settings.max_body_bytes, "RETAILPULSE_MAX_BODY_BYTES")
    integration = Limit(settings.integration_max_bytes, "RETAILPULSE_INTEGRATION_MAX_BYTES")
    by_prefix = {INTEGRATIONS_PREFIX: max(default, integration, key=lambda lim: lim.bytes)}
    return default, by_prefix


class BodyLimitMiddleware:
    """413 for a request body past its limit, declared or counted (see the module doc)."""

    def __init__(self, app: ASGIApp, *, default: Limit, by_prefix: dict[str, Limit]) -> None:
        self.app = app
        self.default = default
        self.by_prefix = by_prefix

    def limit_for(self, path: str) -> Limit:
        """The limit that applies to `path` (the first matching prefix's, else the default)."""
        for prefix, limit in self.by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit.bytes:
            await _refuse(scope, send, f"{declared:,} bytes declared", limit)
            return

        received = 0
        refused = False  # our 413 went out: the app's own answer is dropped
        started = False  # the app began its response: too late for a 413

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    if not started:
                        refused = True
                        await _refuse(scope, send, f"more than {limit.bytes:,} bytes sent", limit)
                    # the app sees a client gone away and stops reading
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:  # the app failed on its own: not ours to hide
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _refuse(scope: Scope, send: Send, what: str, limit: Limit) -> None:
    """Send the 413 envelope (request id and timing from the stamp middleware when present)."""
    error = PayloadTooLarge(
        f"request body too large: {what}; the limit is {limit.bytes:,} bytes ({limit.setting})",
        details={"limitBytes": limit.bytes},
    )
    state = scope.get("state") or {}
    started = state.get("started", time.perf_counter())
    body = ErrorEnvelope(
        error=ErrorBody(code=error.code, message=error.message, details=error.details),
        metadata=Metadata(
            requestId=state.get("request_id") or uuid.uuid4().hex,
            timestamp=datetime.now(UTC).isoformat(),
            processingTime=round((time.perf_counter() - started) * 1000, 3),
        ),
    )
    # the unread rest of the body is not wanted: ask the client to drop the connection
    response = JSONResponse(
        status_code=error.status_code, content=body.model_dump(), headers={"Connection": "close"}
    )

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)


def install(app: FastAPI) -> None:
    """Add the body limit, configured from the settings (call before the envelope's
    middleware is added, so the 413 carries the request id and is audited)."""
    default, by_prefix = limits_from(get_settings())
    app.add_middleware(BodyLimitMiddleware, default=default, by_prefix=by_prefix)
