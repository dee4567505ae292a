"""Generating reports: one function for the file itself, one for a stored report's run, and the
small thread pool the API process runs them in.

`generate` is pure work (warehouse reads, then rendering) and is what the CLI calls.
`run_report` claims a queued report (queued → running; a report already claimed elsewhere is
left alone), generates it, and stores the file and the status `done` in one transaction; any
failure marks it `failed` with the reason and keeps no file. SQL is sync psycopg, hence
threads rather than the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from core.db import connect
from core.errors import RetailPulseError, ServiceUnavailable
from reports import store
from reports.formats import FORMATS, Format
from reports.templates import build_document, get_template, validate_params

log = logging.getLogger(__name__)
Step = Callable[[str], None]


@dataclass(frozen=True)
class Generated:
    file_name: str
    content_type: str
    content: bytes
    title: str


def _no_step(_: str) -> None:
    return None


def get_format(name: str) -> Format:
    from core.errors import ValidationFailed

    fmt = FORMATS.get(name)
    if fmt is None:
        known = ", ".join(FORMATS)
        raise ValidationFailed(
            f"format: unknown report format {name!r} (known: {known})",
            details={"errors": [{"field": "format", "reason": f"unknown; known: {known}"}]},
        )
    return fmt


def file_name(template: str, report_id: str | None, fmt: Format, when: Any) -> str:
    tag = f"-{report_id[:8]}" if report_id else ""
    return f"{template}-{when:%Y%m%d}{tag}.{fmt.extension}"


def generate(
    conn: psycopg.Connection,
    *,
    tenant: str,
    template: str,
    params: dict[str, Any] | None,
    fmt: str,
    report_id: str | None = None,
    step: Step = _no_step,
) -> Generated:
    """Build the template's document from the warehouse and render it in `fmt`."""
    spec = get_template(template)
    checked = validate_params(spec, params)
    out = get_format(fmt)
    doc = build_document(conn, tenant=tenant, template=spec, params=checked, step=step)
    step(f"rendering {out.name.upper()}")
    content = out.render(doc)
    name = file_name(spec.name, report_id, out, doc.generated_at)
    return Generated(name, out.content_type, content, doc.title)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RetailPulseError):
        return exc.message
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_report(*, tenant: str, report_id: str, url: str | None = None) -> str | None:
    """Run one queued report to `done` or `failed`; returns the final status, or None when
    the report was not queued (another worker has it, or it is already finished)."""
    with connect(url) as conn:
        claimed = store.claim_report(conn, tenant=tenant, report_id=report_id)
        conn.commit()
        if claimed is None:
            return None
        try:
            made = generate(
                conn,
                tenant=tenant,
                template=claimed["template"],
                params=claimed["params"],
                fmt=claimed["format"],
                report_id=report_id,
            )
            conn.rollback()  # end the read transaction of the queries
            store.finish_report(
                conn,
                tenant=tenant,
                report_id=report_id,
                file_name=made.file_name,
                content_type=made.content_type,
                content=made.content,
            )
            conn.commit()
            return "done"
        except Exception as exc:  # any failure is the report's status, not a crash
            log.warning("report %s of tenant %s failed: %s", report_id, tenant, _reason(exc))
            if conn.closed or conn.broken:
                raise
            conn.rollback()
            store.fail_report(conn, tenant=tenant, report_id=report_id, error=_reason(exc))
            conn.commit()
            return "failed"


class ReportRunner:
    """A small thread pool that runs queued reports in the API process."""

    def __init__(self, workers: int = 2, url_of: Callable[[], str] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rp-report")
        self._url_of = url_of
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, *, tenant: str, report_id: str, url: str | None = None) -> Future:
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("report workers are shutting down; retry shortly")
            target = url or (self._url_of() if self._url_of else None)
            future = self._pool.submit(_run_logged, tenant, report_id, target)
        return future

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _run_logged(tenant: str, report_id: str, url: str | None) -> str | None:
    try:
        return run_report(tenant=tenant, report_id=report_id, url=url)
    except Exception:  # a dead database: the scheduler's sweep retries queued reports later
        log.exception("report %s of tenant %s could not run", report_id, tenant)
        return None
