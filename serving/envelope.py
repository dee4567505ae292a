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


def _error(request: Request, status: int, code: str, message: str, details=None) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(code=code, message=message, details=details or {}),
        metadata=_metadata(request),
    )
    return JSONResponse(status_code=status, content=body.model_dump())


def install(app: FastAPI) -> None:
    """Request ids, timing, and one handler per error family, all answering in the envelope."""

    @app.middleware("http")
    async def _stamp(request: Request, call_next):
        request.state.started = time.perf_counter()
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["x-request-id"] = request.state.request_id
        return response

    @app.exception_handler(RetailPulseError)
    async def _ours(request: Request, exc: RetailPulseError) -> JSONResponse:
        return _error(request, exc.status_code, exc.code, exc.message, exc.details)

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
        return _error(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    # pragma: no cover - the last resort; bad input never reaches it
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(request, 500, "INTERNAL_ERROR", "internal error; see the server log")
