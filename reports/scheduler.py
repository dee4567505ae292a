"""The report scheduler: claims due schedules, queues their reports, runs them.

`claim_due` takes due schedules with `SELECT … FOR UPDATE SKIP LOCKED`, queues one report
each and moves `next_run_at` to the schedule's next cron time after now, all in one
transaction: several schedulers (API replicas, a cluster job) never run a schedule twice,
and a schedule that missed several runs (everything was down) runs once, not once per miss.
Each `tick` also runs reports left queued by a process that died (`stale_queued_minutes`)
and marks reports stuck running (`abandoned_running_minutes`) failed.

Runs inside the API process (serving/app.py's lifespan; `RETAILPULSE_REPORTS_SCHEDULER=false`
turns that off) or in the foreground: `retailpulse reports run-scheduler`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from croniter import CroniterBadDateError, croniter

from core.db import connect
from core.errors import ServiceUnavailable, ValidationFailed
from reports import store
from reports.config import ReportSettings
from reports.runner import run_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    tenant: str
    schedule_id: str
    report_id: str


def _invalid(field: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {reason}", details={"errors": [{"field": field, "reason": reason}]}
    )


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or 422 naming the field."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise _invalid("timezone", f"unknown time zone {name!r} (use an IANA name such as "
                                   "'UTC' or 'Europe/Paris')") from None  # fmt: skip


def check_cron(expression: str) -> str:
    """A five-field cron expression (`minute hour day month weekday`) or an alias such as
    `@daily`, that fires at least once; else 422 naming the field."""
    text = " ".join(expression.split())
    shape_ok = len(text.split(" ")) == 5 or (text.startswith("@") and " " not in text)
    if not shape_ok or not croniter.is_valid(text):
        raise _invalid("cron", f"{expression!r} is not a cron expression of five fields "
                               "(minute hour day-of-month month day-of-week), e.g. '0 6 * * 1'")  # fmt: skip
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise _invalid("cron", f"{expression!r} never fires (e.g. 30 February)") from None
    return text


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that `cron` names, on `timezone`'s wall clock."""
    zone = check_timezone(timezone)
    start = after.astimezone(zone)
    return croniter(cron, start).get_next(datetime).astimezone(UTC)


def claim_due(conn: psycopg.Connection, *, now: datetime | None = None, limit: int = 20
              ) -> list[Claimed]:  # fmt: skip
    """Queue one report for each due schedule (any tenant) and advance it; commits."""
    now = now or datetime.now(UTC)
    claimed: list[Claimed] = []
    with conn.transaction():
        rows = conn.execute(
            "SELECT tenant_id, schedule_id, template, params, format, cron, timezone, created_by"
            " FROM report_schedules WHERE enabled AND next_run_at <= %s"
            " ORDER BY next_run_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (now, limit),
        ).fetchall()
        for tenant, schedule_id, template, params, fmt, cron, tz, created_by in rows:
            report = store.insert_report(conn, tenant=tenant, template=template, params=params,
                                         fmt=fmt, requested_by=created_by,
                                         schedule_id=schedule_id)  # fmt: skip
            try:
                upcoming = next_run(cron, tz, now)
            except Exception as exc:  # a schedule edited by hand into nonsense: park it
                log.warning("schedule %s of tenant %s disabled: %s", schedule_id, tenant, exc)
                upcoming, enabled = now, False
            else:
                enabled = True
            conn.execute(
                "UPDATE report_schedules SET next_run_at = %s, enabled = %s, last_run_at = %s,"
                " last_report_id = %s WHERE tenant_id = %s AND schedule_id = %s",
                (upcoming, enabled, now, report["report_id"], tenant, schedule_id),
            )
            claimed.append(Claimed(tenant, schedule_id, report["report_id"]))
    return claimed


def claim_stale(conn: psycopg.Connection, *, older_than: timedelta, limit: int = 20
                ) -> list[tuple[str, str]]:  # fmt: skip
    """(tenant, report id) of reports queued longer than `older_than` (their worker died).
    No lock needed: `run_report` claims each one (queued → running) before it runs it."""
    rows = conn.execute(
        "SELECT tenant_id, report_id FROM reports WHERE status = 'queued'"
        " AND created_at < now() - %s ORDER BY created_at LIMIT %s",
        (older_than, limit),
    ).fetchall()
    return [(str(t), str(r)) for t, r in rows]


def fail_abandoned(conn: psycopg.Connection, *, older_than: timedelta) -> int:
    """Mark reports running longer than `older_than` failed (their process died)."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE reports SET status = 'failed', finished_at = now(), error = %s"
            " WHERE status = 'running' AND started_at < now() - %s",
            (
                "interrupted: the process generating this report stopped; request it again",
                older_than,
            ),  # fmt: skip
        )
    return cur.rowcount


def tick(url: str | None = None, *, settings: ReportSettings | None = None,
         run: Callable[..., object] = run_report) -> list[Claimed]:  # fmt: skip
    """One pass: claim due schedules and run their reports, then the housekeeping."""
    settings = settings or ReportSettings()
    with connect(url, autocommit=True) as conn:
        claimed = claim_due(conn)
        stale = claim_stale(conn, older_than=timedelta(minutes=settings.stale_queued_minutes))
        fail_abandoned(conn, older_than=timedelta(minutes=settings.abandoned_running_minutes))
    for c in claimed:
        run(tenant=c.tenant, report_id=c.report_id, url=url)
    for tenant, report_id in stale:
        run(tenant=tenant, report_id=report_id, url=url)
    return claimed


class Scheduler:
    """`tick` every `poll_seconds` (the first after `first_delay`) on a daemon thread until
    `stop()`."""

    def __init__(
        self,
        url_of: Callable[[], str],
        settings: ReportSettings | None = None,
        *,
        first_delay: float = 0.0,
    ) -> None:
        self._url_of = url_of
        self._settings = settings or ReportSettings()
        self._first_delay = first_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_forever(self, *, on_tick: Callable[[list[Claimed]], None] | None = None) -> None:
        """Poll until stopped (the foreground loop of `retailpulse reports run-scheduler`)."""
        if self._stop.wait(self._first_delay):
            return
        while not self._stop.is_set():
            try:
                done = tick(self._url_of(), settings=self._settings)
                if on_tick is not None:
                    on_tick(done)
            except ServiceUnavailable as exc:  # no warehouse (yet): nothing to schedule
                log.info("report scheduler idle: %s", exc.message)
            except Exception as exc:  # the database may be down for a while: keep polling
                log.warning("report scheduler tick failed: %s", exc)
            self._stop.wait(self._settings.poll_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="rp-report-scheduler",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
