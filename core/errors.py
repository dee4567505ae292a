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
