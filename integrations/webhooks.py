"""Outbound webhooks of a tenant: registration, and the events they receive.

`EVENTS` lists what a webhook may subscribe to. `emit` finds the tenant's webhooks for an
event and hands each delivery to a small pool of background threads, so the writer that emits
never waits for a receiver; every attempt (signed and retried by `core.webhooks.deliver`) is a
row of `webhook_deliveries`. `drain()` waits for pending deliveries (tests, CLI exit).

A delivery's body:

    {"id": "<delivery id>", "event": "sales.synced", "tenant": "default",
     "occurredAt": "2026-12-01T10:00:00+00:00", "data": {...}}

with the headers `X-RetailPulse-Event`, `X-RetailPulse-Delivery` (the same id on every retry,
so a receiver can de-duplicate) and the signature headers of `core.webhooks`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from core import webhooks as signed
from core.settings import get_settings

log = logging.getLogger(__name__)

EVENTS = {
    "sales.synced": "a POS sync wrote new baskets",
    "inventory.synced": "an inventory sync moved stock levels",
    "crm.synced": "a CRM sync created or changed customers",
    "alert.triggered": "an alert rule raised an alert",
}
EVENT_HEADER = "X-RetailPulse-Event"
DELIVERY_HEADER = "X-RetailPulse-Delivery"
WORKERS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_pending: set[Future] = set()


# ----------------------------------------------------------------------------- registrations


def new_secret() -> str:
    """A signing secret: 32 random bytes, URL-safe text."""
    return "whsec_" + secrets.token_urlsafe(32)


_COLUMNS = "webhook_id, url, events, description, created_by, created_at"


def create_webhook(
    conn: psycopg.Connection,
    *,
    tenant: str,
    url: str,
    events: list[str],
    secret: str | None = None,
    description: str | None = None,
    created_by: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Register a webhook; returns its row and its secret (generated when not given)."""
    secret = secret or new_secret()
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO webhooks (tenant_id, url, events, secret, description, created_by)"
            f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (tenant, url, sorted(set(events)), secret, description, created_by),
        ).fetchone()
    return {**row, "last_delivery": None}, secret


def list_webhooks(conn: psycopg.Connection, *, tenant: str) -> list[dict[str, Any]]:
    """The tenant's webhooks (never their secrets), each with its latest delivery attempt."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {', '.join('w.' + c.strip() for c in _COLUMNS.split(','))},"
            " d.event AS last_event, d.status AS last_status, d.response_code AS last_code,"
            " d.at AS last_at, d.attempt AS last_attempt, d.error AS last_error"
            " FROM webhooks w LEFT JOIN LATERAL ("
            "   SELECT event, status, response_code, at, attempt, error FROM webhook_deliveries"
            "   WHERE tenant_id = w.tenant_id AND webhook_id = w.webhook_id"
            "   ORDER BY at DESC, attempt_id DESC LIMIT 1) d ON true"
            " WHERE w.tenant_id = %s AND w.deleted_at IS NULL ORDER BY w.webhook_id",
            (tenant,),
        ).fetchall()
    out = []
    for r in rows:
        last = None
        if r["last_at"] is not None:
            last = {
                "event": r["last_event"], "status": r["last_status"], "at": r["last_at"],
                "responseCode": r["last_code"], "attempt": r["last_attempt"],
                "error": r["last_error"],
            }  # fmt: skip
        out.append(
            {k: r[k] for k in _COLUMNS.replace(" ", "").split(",")} | {"last_delivery": last}
        )
    return out


def delete_webhook(conn: psycopg.Connection, *, tenant: str, webhook_id: int) -> bool:
    """Stop a webhook (its delivery history stays); False when there is no such live one."""
    row = conn.execute(
        "UPDATE webhooks SET deleted_at = now() WHERE tenant_id = %s AND webhook_id = %s"
        " AND deleted_at IS NULL RETURNING webhook_id",
        (tenant, webhook_id),
    ).fetchone()
    return row is not None


def deliveries(
    conn: psycopg.Connection, *, tenant: str, webhook_id: int, limit: int = 50
) -> list[dict[str, Any]] | None:
    """The latest delivery attempts of a webhook, newest first (None: no such webhook)."""
    found = conn.execute(
        "SELECT 1 FROM webhooks WHERE tenant_id = %s AND webhook_id = %s AND deleted_at IS NULL",
        (tenant, webhook_id),
    ).fetchone()
    if found is None:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT delivery_id, event, attempt, status, response_code, error, duration_ms, at"
            " FROM webhook_deliveries WHERE tenant_id = %s AND webhook_id = %s"
            " ORDER BY at DESC, attempt_id DESC LIMIT %s",
            (tenant, webhook_id, limit),
        ).fetchall()


def subscribers(conn: psycopg.Connection, *, tenant: str, event: str) -> list[tuple[int, str, str]]:
    """(webhook id, url, secret) of the tenant's live webhooks subscribed to `event`."""
    rows = conn.execute(
        "SELECT webhook_id, url, secret FROM webhooks WHERE tenant_id = %s"
        " AND deleted_at IS NULL AND %s = ANY(events) ORDER BY webhook_id",
        (tenant, event),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def record_attempts(
    conn: psycopg.Connection,
    *,
    tenant: str,
    webhook_id: int,
    delivery_id: str,
    event: str,
    attempts: list[signed.Attempt],
) -> None:
    """One `webhook_deliveries` row per attempt."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO webhook_deliveries (tenant_id, webhook_id, delivery_id, event, attempt,"
            " status, response_code, error, duration_ms, at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    tenant,
                    webhook_id,
                    delivery_id,
                    event,
                    a.number,
                    a.status,
                    a.response_code,
                    a.error,
                    a.duration_ms,
                    a.at,
                )
                for a in attempts
            ],  # fmt: skip
        )


# ----------------------------------------------------------------------------- deliveries


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rp-webhooks")
        return _pool


def envelope(tenant: str, event: str, data: dict[str, Any], delivery_id: str) -> dict[str, Any]:
    """The body of one delivery."""
    return {
        "id": delivery_id,
        "event": event,
        "tenant": tenant,
        "occurredAt": datetime.now(UTC).isoformat(),
        "data": data,
    }


def _deliver_one(
    database_url: str, tenant: str, event: str, hook: tuple[int, str, str], body: dict[str, Any]
) -> list[signed.Attempt]:
    webhook_id, url, secret = hook
    s = get_settings()
    attempts = signed.deliver(
        url,
        body,
        secret,
        attempts=s.webhook_attempts,
        backoff=s.webhook_backoff_s,
        timeout=s.webhook_timeout_s,
        headers={EVENT_HEADER: event, DELIVERY_HEADER: body["id"]},
    )
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            record_attempts(
                conn, tenant=tenant, webhook_id=webhook_id, delivery_id=body["id"], event=event,
                attempts=attempts,
            )  # fmt: skip
    except Exception:  # the receiver got (or did not get) it; only the record is lost
        log.exception("webhook %s: delivery %s not recorded", webhook_id, body["id"])
    return attempts


def emit(
    conn: psycopg.Connection,
    *,
    tenant: str,
    event: str,
    data: dict[str, Any],
    database_url: str,
) -> list[Future]:
    """Deliver `event` to each of the tenant's webhooks subscribed to it, in the background
    (one delivery id per webhook); returns the futures (each → its list of attempts)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    futures = []
    for hook in subscribers(conn, tenant=tenant, event=event):
        body = envelope(tenant, event, data, uuid.uuid4().hex)
        future = _executor().submit(_deliver_one, database_url, tenant, event, hook, body)
        _pending.add(future)
        future.add_done_callback(_pending.discard)
        futures.append(future)
    return futures


def drain(timeout: float | None = 60.0) -> bool:
    """Wait for every pending delivery; True when none is left."""
    pending = set(_pending)
    if not pending:
        return True
    done, not_done = wait_futures(pending, timeout=timeout)
    return not not_done


def on_alerts(
    conn: psycopg.Connection, messages: list[dict[str, Any]], *, database_url: str
) -> int:
    """`alert.triggered` to every webhook subscribed to it, for each new alert's tenant (named
    in `core.events.ALERT_RAISED`; the alert engine calls it after its own notifications)."""
    sent = 0
    for message in messages:
        sent += len(emit(conn, tenant=message["tenant"], event="alert.triggered", data=message,
                         database_url=database_url))  # fmt: skip
    return sent
