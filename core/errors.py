"""Our error hierarchy: each error knows its HTTP status and machine-readable code."""

from __future__ import annotations


class RetailPulseError(Exception):
    """Base of every error we raise on purpose."""

    status_code: int = 400
    code: str = "BAD_REQUEST"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFoundError(RetailPulseError):
    status_code = 404
    code = "NOT_FOUND"


class ValidationFailed(RetailPulseError):
    status_code = 422
    code = "VALIDATION_ERROR"


class ModelNotReady(RetailPulseError):
    status_code = 503
    code = "MODEL_NOT_READY"


class ServiceUnavailable(RetailPulseError):
    """A configured or embedded backing service does not answer."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(
        self, message: str, *, details: dict | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after  # seconds, sent as the Retry-After header


class Unauthorized(RetailPulseError):
    """No valid credentials: a missing, expired, forged or revoked token, a wrong password.

    The answer carries `WWW-Authenticate: Bearer` (RFC 6750), with `error="invalid_token"`
    when a token was presented and rejected."""

    status_code = 401
    code = "UNAUTHORIZED"

    def __init__(
        self,
        message: str,
        *,
        details: dict | None = None,
        code: str | None = None,
        invalid_token: bool = False,
    ) -> None:
        super().__init__(message, details=details)
        if code:
            self.code = code
        challenge = 'Bearer realm="retailpulse"'
        if invalid_token:
            challenge += ', error="invalid_token"'
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(RetailPulseError):
    """Authenticated, but the caller's role, tenant or stores do not allow this."""

    status_code = 403
    code = "FORBIDDEN"


class Conflict(RetailPulseError):
    """The request clashes with existing state (e.g. an e-mail address already registered)."""

    status_code = 409
    code = "CONFLICT"


class TooManyRequests(RetailPulseError):
    """A rate limit or login throttle: retry after `retry_after` seconds."""

    status_code = 429
    code = "RATE_LIMITED"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        details: dict | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = max(1, int(retry_after))
        if code:
            self.code = code


class PayloadTooLarge(RetailPulseError):
    """A request body past a documented size (bytes or records); the message names the limit."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
