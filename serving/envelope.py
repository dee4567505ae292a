"""The seed's response envelope.

`{success, data|error, metadata{requestId, timestamp, processingTime}}`.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import RetailPulseError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Metadata(BaseModel):
    requestId: str
    timestamp: str
    processingTime: float  # milliseconds


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T
    metadata: Metadata


class ErrorEnvelope(BaseModel):
    success: bool = False
    error: ErrorBody
    metadata: Metadata


def errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route's error statuses, in the error envelope:
    `errors(_404="why", _503="why")` (422 for a malformed request is always declared)."""
    out: dict[int | str, dict[str, Any]] = {
        422: {"model": ErrorEnvelope, "description": "Invalid request: the message names the field"}
    }
    for code, text in described.items():
        out[int(code.lstrip("_"))] = {"model": ErrorEnvelope, "description": text}
    return out


UNAVAILABLE = "No trained model (the message names the command), or a backing service down"


def _metadata(request: Request) -> Metadata:
    started = getattr(request.state, "started", time.perf_counter())
    return Metadata(
        requestId=getattr(request.state, "request_id", uuid.uuid4().hex),
        timestamp=datetime.now(UTC).isoformat(),
        processingTime=round((time.perf_counter() - started) * 1000, 3),
    )


def ok(request: Request, data: Any) -> dict:
    """Wrap `data` in the success envelope."""
    return {"success": True, "data": data, "metadata": _metadata(request).model_dump()}


def _error(
    request: Request,
    status: int,
    code: str,
    message: str,
    details=None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(code=code, message=message, details=details or {}),
        metadata=_metadata(request),
    )
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


class StampMiddleware:
    """Request id and start time on every request; `x-request-id` on every response.

    Plain ASGI on purpose: Starlette's `BaseHTTPMiddleware` logs "No response returned" when a
    client disconnects mid-request and costs a task per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
                break
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["started"] = time.perf_counter()
        state["request_id"] = request_id
        stamp = (b"x-request-id", request_id.encode("latin-1"))

        async def send_stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), stamp]
            await send(message)

        await self.app(scope, receive, send_stamped)


def install(app: FastAPI) -> None:
    """Request ids, timing, and one handler per error family, all answering in the envelope."""

    app.add_middleware(StampMiddleware)

    @app.exception_handler(RetailPulseError)
    async def _ours(request: Request, exc: RetailPulseError) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})  # e.g. a 401's WWW-Authenticate
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
        return _error(request, exc.status_code, exc.code, exc.message, exc.details, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "reason": e["msg"],
            }
            for e in exc.errors()
        ]
        text = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        message = f"invalid request: {text}"
        return _error(request, 422, "VALIDATION_ERROR", message, {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        # keep the exception's headers: a 405 carries `Allow`
        return _error(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    import psycopg

    @app.exception_handler(psycopg.OperationalError)
    async def _warehouse_down(request: Request, exc: Exception) -> JSONResponse:
        # routes that need PostgreSQL answer 503 while it is down; the others keep answering
        log.warning("warehouse unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return _error(
            request,
            503,
            "SERVICE_UNAVAILABLE",
            "the warehouse (PostgreSQL) is not reachable; retry shortly",
            {"service": "warehouse"},
            {"Retry-After": "5"},
        )

    @app.exception_handler(psycopg.DataError)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        # a value the warehouse refuses (a NUL character, past a column's range) came from the
        # request: the schemas name such fields (core/values.py); this is the net under them
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("value refused by the warehouse on %s: %s", request.url.path, reason)
        message = f"invalid request: a value cannot be stored ({reason})"
        return _error(request, 422, "VALIDATION_ERROR", message, {"errors": []})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")  # the last resort; bad input never reaches it
        return _error(request, 500, "INTERNAL_ERROR", "internal error; see the server log")
