"""Sync batches of the integration API: POS baskets, inventory levels and CRM customers.

Each batch is validated record by record; the valid records are written in ONE transaction
through the same idempotent writer as the Kafka stream (`integrations.warehouse`), together
with the batch's row in `sync_batches`. Every record ends up counted once:

- `accepted`   valid and written (a new basket, a stock level or customer that moved)
- `rejected`   invalid; the report names index, field, value, rule and message
- `duplicates` valid, but the warehouse already had it unchanged (`already_loaded`) or the
               batch repeats its key (`duplicate_in_batch`): re-sending a batch changes nothing
- `stale`      valid, but older than what the warehouse (or a later record of the batch) has

`atomic=True`: one rejected record rejects the batch and nothing is written. After the commit
the data is announced as the stream consumer announces it (`core.events`) and the tenant's
webhooks get `sales.synced` / `inventory.synced` / `crm.synced` in the background.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core import events
from core.db import libpq_url
from core.errors import Forbidden, ServiceUnavailable
from integrations import webhooks
from integrations.landing import land_baskets
from integrations.messages import BasketMessage, InventoryMessage
from integrations.records import (
    DEMOGRAPHIC_FIELDS,
    PROFILE_FIELDS,
    Checked,
    CustomerRecord,
    rule_counts,
    validate,
)
from integrations.warehouse import ensure_tenant_partitions, write_batch

log = logging.getLogger(__name__)

SOURCES = ("pos", "inventory", "crm")
EVENT_OF = {"pos": "sales.synced", "inventory": "inventory.synced", "crm": "crm.synced"}
LANDED_SOURCE = "pos"  # `Landed.source` of baskets from the integration API (core/events.py)
ERRORS_KEPT = 20  # problems stored with a batch (the reply carries all of them)
CONNECT_TIMEOUT_S = 5

_partitions_ready: set[tuple[str, str]] = set()


@dataclass
class SyncReport:
    """What one sync did (the API's reply and the `sync_batches` row)."""

    source: str
    batch_id: str
    atomic: bool
    received_at: datetime
    received: int = 0
    valid: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    stale: int = 0
    committed: bool = False  # False: nothing was written (an atomic batch with rejects)
    status: str = "complete"  # complete, partial, rejected
    rules: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    sync_id: int | None = None
    webhooks: int = 0  # deliveries queued

    def finish(self, problems: list[dict[str, Any]], skipped: Counter[str]) -> None:
        """Fill in the counts and status from the problems and the skip reasons."""
        self.errors = problems
        self.rules = rule_counts(problems, skipped)
        self.duplicates = skipped["duplicate_in_batch"] + skipped["already_loaded"]
        self.stale = skipped["stale"]
        if self.rejected and (not self.committed or self.rejected == self.received):
            self.status = "rejected"
        elif self.rejected:
            self.status = "partial"

    def event_data(self) -> dict[str, Any]:
        """What a webhook receives about this sync."""
        keys = ("source", "status", "received", "accepted", "rejected", "duplicates", "stale")
        return {"batchId": self.batch_id, "syncId": self.sync_id} | {
            k: getattr(self, k) for k in keys
        } | self.details  # fmt: skip


def targets() -> tuple[str, str | None]:
    """(warehouse URL, Kafka bootstrap or None) of the running platform, starting nothing and
    checking nothing else (a down broker must not stop a sync: its live events are skipped)."""
    from core.services import embedded
    from core.settings import get_settings

    settings = get_settings()
    found: dict[str, str | None] = {}
    for name, configured in (("postgres", settings.database_url),
                             ("kafka", settings.kafka_bootstrap)):  # fmt: skip
        if configured:
            found[name] = configured
            continue
        service = embedded(name, settings.home_dir)
        port = service.running_port()
        found[name] = service.url(port) if port else None
    if not found["postgres"]:
        raise ServiceUnavailable(
            "the warehouse (PostgreSQL) is not configured or running: "
            "set RETAILPULSE_DATABASE_URL or run `retailpulse services up`",
            details={"service": "warehouse"},
            retry_after=5,
        )
    return str(found["postgres"]), found["kafka"]


def new_batch_id() -> str:
    return uuid.uuid4().hex


def _connect(database_url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(database_url), connect_timeout=CONNECT_TIMEOUT_S)


def _check_stores(stores: frozenset[str] | None, used: set[str]) -> None:
    outside = sorted(used - stores) if stores is not None else []
    if outside:
        raise Forbidden(
            f"this batch has records of stores that are not yours: {', '.join(outside[:10])}"
            f"{' …' if len(outside) > 10 else ''}; nothing was written",
            details={"stores": outside[:100], "yourStores": sorted(stores or ())},
        )


def _record(
    conn: psycopg.Connection, *, tenant: str, report: SyncReport, actor: str | None
) -> None:
    row = conn.execute(
        "INSERT INTO sync_batches (tenant_id, source, batch_id, status, atomic, received,"
        " accepted, rejected, duplicates, stale, rules, errors, created_by, received_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING sync_id",
        (
            tenant,
            report.source,
            report.batch_id,
            report.status,
            report.atomic,
            report.received,
            report.accepted,
            report.rejected,
            report.duplicates,
            report.stale,
            Jsonb(report.rules),
            Jsonb(report.errors[:ERRORS_KEPT]),
            actor,
            report.received_at,
        ),  # fmt: skip
    ).fetchone()
    report.sync_id = int(row[0])


def _start(
    source: str, records: Sequence[Any], *, atomic: bool, batch_id: str | None
) -> SyncReport:
    return SyncReport(
        source=source,
        batch_id=batch_id or new_batch_id(),
        atomic=atomic,
        received_at=datetime.now(UTC),
        received=len(records),
    )


def _refuse_atomic(
    conn: psycopg.Connection, report: SyncReport, checked: Checked, tenant: str, actor: str | None
) -> SyncReport:
    """An atomic batch with a rejected record: record it, write nothing."""
    report.finish(checked.problems, Counter())
    with conn.transaction():
        _record(conn, tenant=tenant, report=report, actor=actor)
    return report


def _announce(
    conn: psycopg.Connection, report: SyncReport, *, tenant: str, database_url: str
) -> None:
    if report.accepted:
        report.webhooks = len(
            webhooks.emit(
                conn, tenant=tenant, event=EVENT_OF[report.source], data=report.event_data(),
                database_url=libpq_url(database_url),
            )
        )  # fmt: skip


# ----------------------------------------------------------------------------- POS baskets


def sync_pos(
    *,
    database_url: str,
    tenant: str,
    records: Sequence[Any],
    atomic: bool = False,
    batch_id: str | None = None,
    actor: str | None = None,
    stores: frozenset[str] | None = None,
    bootstrap: str | None = None,
) -> SyncReport:
    """Write a batch of baskets (`BasketMessage` records); see the module docstring."""
    report = _start("pos", records, atomic=atomic, batch_id=batch_id)
    checked = validate(BasketMessage, records)
    report.rejected = len(checked.rejected)
    report.valid = len(checked.valid)
    _check_stores(stores, {m.store_id for _, m in checked.valid})
    skipped: Counter[str] = Counter()
    baskets: dict[int, BasketMessage] = {}
    for _, msg in checked.valid:
        if msg.transaction_id in baskets:
            skipped["duplicate_in_batch"] += 1  # the first one wins, as on the stream
        else:
            baskets[msg.transaction_id] = msg
    landed = None
    with _connect(database_url) as conn:
        if atomic and checked.rejected:
            return _refuse_atomic(conn, report, checked, tenant, actor)
        if baskets and (database_url, tenant) not in _partitions_ready:
            ensure_tenant_partitions(conn, tenant)
            _partitions_ready.add((database_url, tenant))
        with conn.transaction():
            result = write_batch(conn, tenant=tenant, baskets=list(baskets.values()), inventory=[])
            landed = land_baskets(
                conn, tenant=tenant, source=LANDED_SOURCE, result=result, sent=baskets.keys()
            )
            report.accepted = result.inserted
            skipped["already_loaded"] += result.duplicates
            report.committed = True
            if landed is not None:
                report.details = {
                    "firstDay": landed.first_day.isoformat() if landed.first_day else None,
                    "lastDay": landed.last_day.isoformat() if landed.last_day else None,
                    "stores": sorted(landed.stores or ()),
                    "revenue": landed.revenue,
                }
            report.finish(checked.problems, skipped)
            _record(conn, tenant=tenant, report=report, actor=actor)
        if landed is not None:
            events.after_commit(landed, bootstrap=bootstrap)
        _announce(conn, report, tenant=tenant, database_url=database_url)
    return report


# ----------------------------------------------------------------------------- inventory


def sync_inventory(
    *,
    database_url: str,
    tenant: str,
    records: Sequence[Any],
    atomic: bool = False,
    batch_id: str | None = None,
    actor: str | None = None,
    stores: frozenset[str] | None = None,
    bootstrap: str | None = None,
) -> SyncReport:
    """Upsert a batch of stock levels (`InventoryMessage` records); the newest timestamp of a
    (store, product) wins, in the batch and against the warehouse."""
    report = _start("inventory", records, atomic=atomic, batch_id=batch_id)
    checked = validate(InventoryMessage, records)
    report.rejected = len(checked.rejected)
    report.valid = len(checked.valid)
    _check_stores(stores, {m.store_id for _, m in checked.valid})
    skipped: Counter[str] = Counter()
    latest: dict[tuple[str, int], InventoryMessage] = {}
    for _, msg in checked.valid:
        if "rule" not in msg.model_fields_set:  # say where the level came from
            msg = msg.model_copy(update={"rule": "api"})
        key = (msg.store_id, msg.product_id)
        old = latest.get(key)
        if old is None or old.timestamp <= msg.timestamp:  # a later record of a tie wins
            latest[key] = msg
        if old is not None:
            loser = msg if latest[key] is old else old
            skipped["duplicate_in_batch" if loser == latest[key] else "stale"] += 1
    with _connect(database_url) as conn:
        if atomic and checked.rejected:
            return _refuse_atomic(conn, report, checked, tenant, actor)
        with conn.transaction():
            result = write_batch(conn, tenant=tenant, baskets=[], inventory=list(latest.values()))
            report.accepted = len(result.moved)
            skipped["stale"] += len(result.stale)
            skipped["already_loaded"] += len(latest) - len(result.moved) - len(result.stale)
            report.committed = True
            moved = [latest[k] for k in result.moved]
            report.details = {"stores": sorted({m.store_id for m in moved})}
            report.finish(checked.problems, skipped)
            _record(conn, tenant=tenant, report=report, actor=actor)
        if moved:
            events.inventory_moved(tenant, moved, bootstrap=bootstrap)
        _announce(conn, report, tenant=tenant, database_url=database_url)
    return report


# ----------------------------------------------------------------------------- CRM customers

_CRM_FIELDS = (*PROFILE_FIELDS, *DEMOGRAPHIC_FIELDS)
_CRM_UPSERT = f"""
WITH incoming AS (
    SELECT * FROM unnest(%(ids)s::bigint[], {", ".join(f"%({f})s::text[]" for f in _CRM_FIELDS)},
                         %(times)s::timestamptz[])
        AS t(customer_id, {", ".join(_CRM_FIELDS)}, profile_updated_at)
), stored AS (
    SELECT i.customer_id, c.profile_updated_at AS stored_at
    FROM incoming i
    LEFT JOIN customers c ON c.tenant_id = %(tenant)s AND c.customer_id = i.customer_id
), written AS (
    INSERT INTO customers (tenant_id, customer_id, {", ".join(_CRM_FIELDS)}, profile_updated_at)
    SELECT %(tenant)s, customer_id, {", ".join(_CRM_FIELDS)}, profile_updated_at FROM incoming
    ON CONFLICT (tenant_id, customer_id) DO UPDATE
    SET {", ".join(f"{f} = COALESCE(EXCLUDED.{f}, customers.{f})" for f in _CRM_FIELDS)},
        profile_updated_at = EXCLUDED.profile_updated_at
    WHERE (customers.profile_updated_at IS NULL
           OR customers.profile_updated_at <= EXCLUDED.profile_updated_at)
      AND ({", ".join(f"COALESCE(EXCLUDED.{f}, customers.{f})" for f in _CRM_FIELDS)})
          IS DISTINCT FROM ({", ".join(f"customers.{f}" for f in _CRM_FIELDS)})
    RETURNING customer_id, (xmax = 0) AS created
)
SELECT s.customer_id, s.stored_at, w.customer_id IS NOT NULL AS written, w.created
FROM stored s LEFT JOIN written w USING (customer_id)
"""


def sync_crm(
    *,
    database_url: str,
    tenant: str,
    records: Sequence[Any],
    atomic: bool = False,
    batch_id: str | None = None,
    actor: str | None = None,
) -> SyncReport:
    """Upsert a batch of customers (`CustomerRecord`); fields left out keep their values, and
    an older record of a customer than the warehouse's is skipped as stale."""
    report = _start("crm", records, atomic=atomic, batch_id=batch_id)
    checked = validate(CustomerRecord, records)
    report.rejected = len(checked.rejected)
    report.valid = len(checked.valid)
    skipped: Counter[str] = Counter()
    latest: dict[int, tuple[datetime, CustomerRecord]] = {}
    for _, rec in checked.valid:
        when = rec.updated_at or report.received_at
        old = latest.get(rec.customer_id)
        if old is None or old[0] <= when:
            latest[rec.customer_id] = (when, rec)
        if old is not None:
            loser = rec if latest[rec.customer_id][1] is old[1] else old[1]
            same = loser.model_dump(exclude={"updated_at"}) == latest[rec.customer_id][
                1
            ].model_dump(exclude={"updated_at"})
            skipped["duplicate_in_batch" if same else "stale"] += 1
    with _connect(database_url) as conn:
        if atomic and checked.rejected:
            return _refuse_atomic(conn, report, checked, tenant, actor)
        with conn.transaction():
            rows = []
            if latest:
                params: dict[str, Any] = {
                    "tenant": tenant,
                    "ids": list(latest),
                    "times": [when for when, _ in latest.values()],
                }
                for f in _CRM_FIELDS:
                    params[f] = [getattr(rec, f) for _, rec in latest.values()]
                rows = conn.execute(_CRM_UPSERT, params).fetchall()
            created = updated = 0
            for customer_id, stored_at, written, was_created in rows:
                if written:
                    created += bool(was_created)
                    updated += not was_created
                elif stored_at is not None and stored_at > latest[int(customer_id)][0]:
                    skipped["stale"] += 1
                else:
                    skipped["already_loaded"] += 1
            report.accepted = created + updated
            report.committed = True
            report.details = {"created": created, "updated": updated}
            report.finish(checked.problems, skipped)
            _record(conn, tenant=tenant, report=report, actor=actor)
        _announce(conn, report, tenant=tenant, database_url=database_url)
    return report
