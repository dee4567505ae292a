"""Notifications of new alerts: Kafka `alerts.trigger`, signed webhooks and e-mail (SMTP).

They run after the alert rows are committed, in one background worker thread per process
(`dispatch`), so a slow or failing receiver never holds up the writer that raised the alert;
every attempt is a row of `alert_deliveries`, and a receiver that never answers loses nothing
but its copy (the alert is in the table and on Kafka). `drain()` waits for pending work (tests,
and the CLI before it exits; the pool's threads are also joined at interpreter exit).

Webhooks: `POST` of the alert as JSON with

    X-RetailPulse-Timestamp: <unix seconds>
    X-RetailPulse-Signature: sha256=<hex HMAC-SHA256(rule secret, "<timestamp>." + body)>

(the timestamp is signed too, so a receiver can refuse replays: `verify` checks both), retried
up to WEBHOOK_ATTEMPTS times with exponential backoff on a timeout, a connection error, 429 or a
5xx; a 4xx other than 429 is final. E-mail: one message per alert to the rule's addresses
through `RETAILPULSE_SMTP_HOST/PORT` (optional STARTTLS and login), from `RETAILPULSE_SMTP_FROM`.
"""

from __future__ import annotations

import atexit
import json
import logging
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from typing import Any

import httpx
import psycopg

from alerts.rules import Channels
from alerts.store import record_delivery
from core import events, webhooks
from core.bus import ALERTS_TOPIC

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT_S = 3.0
BACKOFF_S = 0.5  # before the 2nd attempt; doubles after each further failure
SMTP_ATTEMPTS = 2


@dataclass(frozen=True)
class Notice:
    """A new alert and where its rule sends it."""

    alert: dict[str, Any]  # alerts.store.get_alert's shape
    channels: Channels
    secret: str


def message(alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON an alert travels as (Kafka `alerts.trigger` and webhook bodies)."""
    triggered = alert["triggeredAt"]
    subject = alert.get("subject") or {}
    return {
        "type": "alert.triggered",
        "tenant": alert["tenant"],
        "alert_id": alert["alertId"],
        "rule_id": alert["ruleId"],
        "rule_name": alert.get("ruleName"),
        "kind": alert.get("kind"),
        "severity": alert["severity"],
        "status": alert["status"],
        "title": alert["title"],
        "message": alert["message"],
        "subject": subject,
        "stores": [str(subject["store_id"])] if subject.get("store_id") else [],
        "triggered_at": triggered.isoformat() if isinstance(triggered, datetime) else triggered,
        "payload": alert.get("payload") or {},
    }


Recorder = Callable[[int, str, int | None, str | None], None]  # attempt, status, code, error


def send_webhook(
    client: httpx.Client,
    notice: Notice,
    url: str,
    *,
    record: Recorder,
    attempts: int = WEBHOOK_ATTEMPTS,
    backoff_s: float = BACKOFF_S,
) -> bool:
    """POST the alert to `url`, signed and retried by `core.webhooks.deliver`; `record` gets
    every attempt."""
    alert = notice.alert
    tries = webhooks.deliver(
        url,
        message(alert),
        notice.secret,
        attempts=attempts,
        backoff=backoff_s,
        timeout=WEBHOOK_TIMEOUT_S,
        headers={
            "X-RetailPulse-Event": "alert.triggered",
            "X-RetailPulse-Delivery": f"alert-{alert['alertId']}",
        },  # fmt: skip
        client=client,
    )
    for t in tries:
        record(t.number, t.status, t.response_code, t.error)
    if tries and tries[-1].status == "sent":
        return True
    log.warning("alert %s: webhook %s failed after %d attempt(s)", alert["alertId"], url,
                len(tries))  # fmt: skip
    return False


def send_email(conn: psycopg.Connection, notice: Notice, settings: Any) -> bool:
    """One message to the rule's addresses over SMTP; recorded once per address."""
    alert, to = notice.alert, list(notice.channels.emails)
    if not to:
        return True
    if not settings.smtp_host:
        for address in to:
            _record(
                conn, alert, "email", address, 1, "skipped", None, "RETAILPULSE_SMTP_HOST unset"
            )
        return False
    mail = EmailMessage()
    mail["Subject"] = f"[RetailPulse {alert['severity']}] {alert['title']}"
    mail["From"] = settings.smtp_from
    mail["To"] = ", ".join(to)
    mail["X-RetailPulse-Alert-Id"] = str(alert["alertId"])
    lines = [alert["message"], "", f"Alert {alert['alertId']} of tenant {alert['tenant']}"]
    lines += [f"Rule: {alert.get('ruleName')} ({alert.get('kind')})"]
    lines += [f"Subject: {json.dumps(alert.get('subject') or {})}"]
    lines += [f"Triggered at: {alert['triggeredAt']}"]
    mail.set_content("\n".join(lines))
    error = None
    for attempt in range(1, SMTP_ATTEMPTS + 1):
        try:
            with smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
            ) as smtp:
                if settings.smtp_tls:
                    smtp.starttls()
                if settings.smtp_user:
                    password = settings.smtp_password
                    smtp.login(settings.smtp_user, password.get_secret_value() if password else "")
                refused = smtp.send_message(mail)
            for address in to:
                if address in refused:
                    _record(conn, alert, "email", address, attempt, "failed", None, str(refused))
                else:
                    _record(conn, alert, "email", address, attempt, "sent", 250)
            return not refused
        except (smtplib.SMTPException, OSError) as exc:  # timeouts are OSErrors
            error = f"{type(exc).__name__}: {exc}"[:500]
            for address in to:
                _record(conn, alert, "email", address, attempt, "failed", None, error)
            transient = isinstance(exc, (smtplib.SMTPServerDisconnected, OSError)) or (
                isinstance(exc, smtplib.SMTPResponseException) and 400 <= exc.smtp_code < 500
            )
            if not transient:
                break
            if attempt < SMTP_ATTEMPTS:
                time.sleep(BACKOFF_S)
    log.warning("alert %s: e-mail to %s failed: %s", alert["alertId"], to, error)
    return False


_buses: dict[str, Any] = {}
_buses_lock = threading.Lock()


def _bus(bootstrap: str) -> Any:
    """The process's `alerts.trigger` producer for `bootstrap` (the topic made on first use)."""
    from core.bus import EventBus, ensure_topics

    with _buses_lock:
        if bootstrap not in _buses:
            try:
                ensure_topics(bootstrap, (ALERTS_TOPIC,))
            except Exception as exc:  # publishing will tell whether the broker is there
                log.warning("could not ensure topic %s on %s: %s", ALERTS_TOPIC, bootstrap, exc)
            _buses[bootstrap] = EventBus(bootstrap, ALERTS_TOPIC)
        return _buses[bootstrap]


def publish(conn: psycopg.Connection, notices: list[Notice], bootstrap: str | None) -> int:
    """Send the alerts to Kafka `alerts.trigger` (key: tenant); returns how many went out."""
    if not notices:
        return 0
    sent = _bus(bootstrap).publish([message(n.alert) for n in notices]) if bootstrap else 0
    if not bootstrap:
        status, error = "skipped", "no Kafka broker configured"
    elif sent == len(notices):
        status, error = "sent", None
    else:
        status, error = "failed", "the broker did not take the message (see the log)"
    for n in notices:
        _record(conn, n.alert, "kafka", ALERTS_TOPIC, 1, status, None, error)
    return sent


def _record(
    conn: psycopg.Connection,
    alert: dict[str, Any],
    channel: str,
    target: str,
    attempt: int,
    status: str,
    code: int | None = None,
    error: str | None = None,
) -> None:
    try:
        record_delivery(
            conn, tenant=alert["tenant"], alert_id=int(alert["alertId"]), channel=channel,
            target=target, attempt=attempt, status=status, response_code=code, error=error,
        )  # fmt: skip
    except psycopg.Error:  # the warehouse went away: the attempt is still logged
        log.exception("alert %s: %s delivery to %s not recorded", alert["alertId"], channel, target)


def deliver(notices: list[Notice], *, database_url: str, bootstrap: str | None) -> None:
    """Publish, then post and mail every notice (synchronously; `dispatch` runs it off-thread)."""
    from core.db import libpq_url
    from core.settings import get_settings

    settings = get_settings()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        publish(conn, notices, bootstrap)
        with httpx.Client(timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False) as client:
            for notice in notices:
                for url in map(str, notice.channels.webhooks):
                    record = partial(_record, conn, notice.alert, "webhook", url)
                    send_webhook(client, notice, url, record=record)
        for notice in notices:
            send_email(conn, notice, settings)
        events.alert_raised(conn, [message(n.alert) for n in notices], database_url=database_url)


_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-notify")
_pending: set[Future] = set()
_pending_lock = threading.Lock()


def _done(future: Future) -> None:
    with _pending_lock:
        _pending.discard(future)
    if future.exception() is not None:
        log.error("alert notifications failed", exc_info=future.exception())


def dispatch(notices: list[Notice], *, database_url: str, bootstrap: str | None) -> Future | None:
    """Deliver `notices` in the background worker; returns its future (None: nothing to do)."""
    if not notices:
        return None
    future = _pool.submit(deliver, notices, database_url=database_url, bootstrap=bootstrap)
    with _pending_lock:
        _pending.add(future)
    future.add_done_callback(_done)
    return future


def drain(timeout: float | None = 60) -> bool:
    """Wait for every dispatched notification; True when none is left pending."""
    with _pending_lock:
        pending = set(_pending)
    done, _ = wait_futures(pending, timeout=timeout)
    return len(done) == len(pending)


def close() -> None:
    """Close the Kafka producers (at exit, after the pending notifications are delivered)."""
    with _buses_lock:
        buses = list(_buses.values())
        _buses.clear()
    for bus in buses:
        bus.close()


atexit.register(close)
