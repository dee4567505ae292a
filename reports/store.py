"""Reports, report files and schedules in PostgreSQL (migration 0009).

Keyword-only repository functions taking a psycopg connection; every query carries
`tenant_id` except the scheduler's cross-tenant claims (reports/scheduler.py). A report moves
queued → running → done | failed; `claim_report` is the one place a report starts, so a report
runs once even when the API's pool and the scheduler's sweep both reach for it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

REPORT_COLUMNS = (
    "report_id, template, params, format, status, error, requested_by, created_at, started_at,"
    " finished_at, size_bytes, schedule_id"
)
SCHEDULE_COLUMNS = (
    "schedule_id, template, params, format, cron, timezone, next_run_at, enabled, created_by,"
    " created_at, last_run_at, last_report_id"
)
SORTABLE = ("created_at", "finished_at", "template", "status", "size_bytes")
ERROR_CHARS = 2000


def new_id() -> str:
    return uuid.uuid4().hex


def insert_report(
    conn: psycopg.Connection,
    *,
    tenant: str,
    template: str,
    params: dict[str, Any],
    fmt: str,
    requested_by: str | None,
    schedule_id: str | None = None,
    report_id: str | None = None,
) -> dict[str, Any]:
    """A new queued report; returns its row."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO reports (tenant_id, report_id, template, params, format, status,"
            " requested_by, schedule_id) VALUES (%s, %s, %s, %s, %s, 'queued', %s, %s)"
            f" RETURNING {REPORT_COLUMNS}",
            (
                tenant,
                report_id or new_id(),
                template,
                Jsonb(params),
                fmt,
                requested_by,
                schedule_id,
            ),  # fmt: skip
        )
        return cur.fetchone()


def claim_report(conn: psycopg.Connection, *, tenant: str, report_id: str) -> dict[str, Any] | None:
    """Mark a queued report running and return it; None when it is not queued (any more)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE reports SET status = 'running', started_at = now()"
            " WHERE tenant_id = %s AND report_id = %s AND status = 'queued'"
            f" RETURNING {REPORT_COLUMNS}",
            (tenant, report_id),
        )
        return cur.fetchone()


def finish_report(
    conn: psycopg.Connection,
    *,
    tenant: str,
    report_id: str,
    file_name: str,
    content_type: str,
    content: bytes,
) -> None:
    """Store the file and mark the report done, in one transaction."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO report_files (tenant_id, report_id, file_name, content_type, content)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, report_id) DO UPDATE SET"
            " file_name = EXCLUDED.file_name, content_type = EXCLUDED.content_type,"
            " content = EXCLUDED.content, created_at = now()",
            (tenant, report_id, file_name, content_type, content),
        )
        conn.execute(
            "UPDATE reports SET status = 'done', finished_at = now(), size_bytes = %s,"
            " error = NULL WHERE tenant_id = %s AND report_id = %s",
            (len(content), tenant, report_id),
        )


def fail_report(conn: psycopg.Connection, *, tenant: str, report_id: str, error: str) -> None:
    """Mark a report failed with the reason (no file is kept)."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM report_files WHERE tenant_id = %s AND report_id = %s", (tenant, report_id)
        )
        conn.execute(
            "UPDATE reports SET status = 'failed', finished_at = now(), error = %s,"
            " size_bytes = NULL WHERE tenant_id = %s AND report_id = %s",
            (error[:ERROR_CHARS], tenant, report_id),
        )


def get_report(conn: psycopg.Connection, *, tenant: str, report_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE tenant_id = %s AND report_id = %s",
            (tenant, report_id),
        )
        return cur.fetchone()


def get_file(
    conn: psycopg.Connection, *, tenant: str, report_id: str
) -> tuple[str, str, bytes] | None:
    """(file name, content type, bytes) of a done report."""
    row = conn.execute(
        "SELECT file_name, content_type, content FROM report_files"
        " WHERE tenant_id = %s AND report_id = %s",
        (tenant, report_id),
    ).fetchone()
    return None if row is None else (row[0], row[1], bytes(row[2]))


def list_reports(
    conn: psycopg.Connection,
    *,
    tenant: str,
    page: int,
    limit: int,
    sort: str = "created_at",
    order: Literal["asc", "desc"] = "desc",
    template: str | None = None,
    status: str | None = None,
    requested_by: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the tenant's reports (or one requester's) and the total matching."""
    if sort not in SORTABLE:
        raise ValueError(f"cannot sort by {sort!r}")
    direction = "ASC" if order == "asc" else "DESC"
    where = (
        "tenant_id = %(tenant)s AND (%(template)s::text IS NULL OR template = %(template)s)"
        " AND (%(status)s::text IS NULL OR status = %(status)s)"
        " AND (%(by)s::text IS NULL OR requested_by = %(by)s)"
    )
    args = {"tenant": tenant, "template": template, "status": status, "by": requested_by,
            "limit": limit, "offset": (page - 1) * limit}  # fmt: skip
    total = conn.execute(f"SELECT count(*) FROM reports WHERE {where}", args).fetchone()[0]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE {where}"
            f" ORDER BY {sort} {direction} NULLS LAST, report_id {direction}"
            " LIMIT %(limit)s OFFSET %(offset)s",
            args,
        )
        return cur.fetchall(), int(total)


def insert_schedule(
    conn: psycopg.Connection,
    *,
    tenant: str,
    template: str,
    params: dict[str, Any],
    fmt: str,
    cron: str,
    timezone: str,
    next_run_at: datetime,
    created_by: str | None,
    enabled: bool = True,
) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO report_schedules (tenant_id, schedule_id, template, params, format, cron,"
            " timezone, next_run_at, enabled, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {SCHEDULE_COLUMNS}",
            (
                tenant,
                new_id(),
                template,
                Jsonb(params),
                fmt,
                cron,
                timezone,
                next_run_at,
                enabled,
                created_by,
            ),  # fmt: skip
        )
        return cur.fetchone()


def list_schedules(
    conn: psycopg.Connection, *, tenant: str, created_by: str | None = None
) -> list[dict[str, Any]]:
    """The tenant's schedules (or one user's), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM report_schedules WHERE tenant_id = %s"
            " AND (%s::text IS NULL OR created_by = %s) ORDER BY created_at, schedule_id",
            (tenant, created_by, created_by),
        )
        return cur.fetchall()


def delete_schedule(
    conn: psycopg.Connection, *, tenant: str, schedule_id: str, created_by: str | None = None
) -> bool:
    """Remove a schedule (its reports stay); False when the tenant (or, given, that user)
    has no such schedule."""
    cur = conn.execute(
        "DELETE FROM report_schedules WHERE tenant_id = %s AND schedule_id = %s"
        " AND (%s::text IS NULL OR created_by = %s)",
        (tenant, schedule_id, created_by, created_by),
    )
    return cur.rowcount > 0
