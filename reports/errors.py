"""Errors of the reports package (each knows its HTTP status; the envelope renders them)."""

from __future__ import annotations

from core.errors import RetailPulseError


class ReportNotReady(RetailPulseError):
    """A download asked for a report that is still queued or running."""

    status_code = 409
    code = "REPORT_NOT_READY"


class ReportFailed(RetailPulseError):
    """A download asked for a report whose generation failed (the message says why)."""

    status_code = 409
    code = "REPORT_FAILED"
