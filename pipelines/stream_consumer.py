"""`retailpulse consume`: transactions.new and inventory.updates into the warehouse and the
online store, exactly once in effect.

Per poll: validate every message (invalid ones go to transactions.rejected with the reason),
merge the batch into the warehouse in one transaction (idempotent by natural keys), push the
fresh RFM features of the customers with new baskets to Redis, publish the rejects, and only
then commit the Kafka offsets. A crash anywhere before that commit re-delivers the batch, which
then changes nothing it already changed. While the database is unreachable the consumer pauses
its partitions (still polling, so it keeps its group membership), retries with back-off and
commits nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import psycopg
import redis
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError
from pydantic import BaseModel, ConfigDict, Field

from core import events
from core.bus import ensure_topics
from core.db import libpq_url
from core.events import Landed
from integrations.messages import (
    INVENTORY_TOPIC,
    REJECTED_TOPIC,
    TRANSACTIONS_TOPIC,
    BasketMessage,
    InventoryMessage,
    RejectedMessage,
    parse,
)
from integrations.warehouse import BatchResult, ensure_tenant_partitions, write_batch
from pipelines.stream_features import OnlineRfmWriter, rfm_for_customers

log = logging.getLogger(__name__)


class ConsumeConfig(BaseModel):
    """Where to read from and write to, and when to stop."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    bootstrap: str
    database_url: str
    redis_url: str
    feast_project: str
    group_id: str = "retailpulse-warehouse"
    transactions_topic: str = TRANSACTIONS_TOPIC
    inventory_topic: str = INVENTORY_TOPIC
    rejected_topic: str = REJECTED_TOPIC
    max_messages: int | None = Field(default=None, gt=0)
    idle_timeout_s: float | None = Field(default=None, gt=0)
    max_batch: int = Field(default=5000, gt=0)
    poll_timeout_ms: int = Field(default=100, gt=0)
    # Tansu completes a group join only after the rebalance timeout (= max.poll.interval).
    max_poll_interval_ms: int = Field(default=3000, ge=1000)
    retry_backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=5.0, gt=0)
    track_lag: bool = False


@dataclass
class ConsumeStats:
    """Counts of one `consume` run (lags in seconds, message time → feature written)."""

    messages: int = 0
    baskets: int = 0
    duplicates: int = 0
    inventory: int = 0
    rejected: int = 0
    customers_pushed: int = 0
    batches: int = 0
    db_retries: int = 0
    lags: list[float] = field(default_factory=list)


def make_consumer(cfg: ConsumeConfig) -> KafkaConsumer:
    """A group member on both input topics; offsets committed by hand."""
    consumer = KafkaConsumer(
        bootstrap_servers=cfg.bootstrap,
        group_id=cfg.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=cfg.max_poll_interval_ms,
        session_timeout_ms=max(6000, cfg.max_poll_interval_ms),
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=cfg.poll_timeout_ms,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    listener = _FromCommitted()
    consumer.subscribe([cfg.transactions_topic, cfg.inventory_topic], listener=listener)
    consumer.rp_listener = listener  # StreamConsumer.run repositions through it
    return consumer


class _FromCommitted(ConsumerRebalanceListener):
    """Notes every (re)assignment, so the loop reads on from the group's committed offsets, or
    from the start where the broker has none: after a broker restart that lost its state
    (tansu's memory storage) the old in-memory positions would point past messages never read.
    Re-reading is harmless: writes are idempotent. (The seek happens in the loop: this
    callback runs inside the client's own join and must not call the broker.)"""

    def __init__(self) -> None:
        self.pending: set = set()

    def on_partitions_revoked(self, revoked) -> None:
        self.pending.clear()

    def on_partitions_assigned(self, assigned) -> None:
        self.pending = set(assigned)

    def reposition(self, consumer: KafkaConsumer) -> bool:
        """Seek the newly assigned partitions; True if any was (drop what was just polled)."""
        if not self.pending:
            return False
        partitions, self.pending = self.pending, set()
        for tp in partitions:
            committed = consumer.committed(tp)
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        return True


class _Batch:
    """One poll's messages, split into valid baskets, inventory levels and rejects."""

    def __init__(self, records: list, transactions_topic: str) -> None:
        self.records = records
        self.baskets: dict[int, BasketMessage] = {}
        self.inventory: dict[tuple[str, int], InventoryMessage] = {}
        self.rejects: list[RejectedMessage] = []
        now = datetime.now(UTC)
        for rec in records:
            model = BasketMessage if rec.topic == transactions_topic else InventoryMessage
            msg, reason = parse(model, rec.value)
            if msg is None:
                self.rejects.append(_reject(rec, reason or "invalid", now))
            elif isinstance(msg, BasketMessage):
                self.baskets.setdefault(msg.transaction_id, msg)  # first delivery wins
            else:
                key = (msg.store_id, msg.product_id)
                old = self.inventory.get(key)
                if old is None or old.timestamp <= msg.timestamp:
                    self.inventory[key] = msg


def _reject(rec, reason: str, now: datetime) -> RejectedMessage:
    raw = rec.value or b""
    return RejectedMessage(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key=rec.key.decode("utf-8", "replace") if rec.key else None,
        original=raw.decode("utf-8", "replace"),
        reason=reason,
        rejected_at=now,
    )


class _Written(NamedTuple):
    """What one batch's transaction wrote, and the customers' features to push."""

    result: BatchResult
    landed: Landed | None  # None: no new basket
    rows: dict[int, list[float]]
    as_of: datetime


class StreamConsumer:
    """The consume loop; `run()` returns when a stop condition is met."""

    def __init__(self, cfg: ConsumeConfig, *, stop: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.stats = ConsumeStats()
        self._conn: psycopg.Connection | None = None
        self._redis = redis.Redis.from_url(cfg.redis_url)
        self._writer = OnlineRfmWriter(self._redis, cfg.feast_project)
        self._producer: KafkaProducer | None = None
        self._partitions_ready = False

    # ------------------------------------------------------------------ database
    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(libpq_url(self.cfg.database_url), connect_timeout=3)
            self._partitions_ready = False
        if not self._partitions_ready:
            ensure_tenant_partitions(self._conn, self.cfg.tenant)
            self._partitions_ready = True
        return self._conn

    def _write(self, batch: _Batch) -> _Written:
        """Merge the batch and read its customers' fresh RFM rows, in one transaction."""
        conn = self._connection()
        landed = None
        with conn.transaction():
            result = write_batch(
                conn,
                tenant=self.cfg.tenant,
                baskets=list(batch.baskets.values()),
                inventory=list(batch.inventory.values()),
            )
            if result.inserted:
                landed = events.sales_landed(
                    self.cfg.tenant,
                    "stream",
                    result.times,
                    result.stores,
                    result.sales,
                    database_url=self.cfg.database_url,
                )
                events.in_transaction(conn, landed)
            as_of = _as_of(result.newest)
            rows = rfm_for_customers(
                conn, tenant=self.cfg.tenant, customers=result.customers, as_of=as_of
            )
        return _Written(result, landed, rows, as_of)

    def _write_with_retry(self, consumer: KafkaConsumer, batch: _Batch) -> _Written:
        """Write the batch; while the database is down, wait (partitions paused) and retry."""
        delay = self.cfg.retry_backoff_s
        paused = False
        try:
            while True:
                try:
                    return self._write(batch)
                except psycopg.OperationalError as exc:
                    self.stats.db_retries += 1
                    log.warning("warehouse unreachable (%s); retrying in %.1f s", exc, delay)
                    if self._conn is not None:
                        self._conn.close()
                    if not paused:
                        consumer.pause(*consumer.assignment())
                        paused = True
                    if self.stop.is_set():
                        raise
                    deadline = time.monotonic() + delay
                    while time.monotonic() < deadline:
                        consumer.poll(timeout_ms=100)  # keeps the group membership alive
                    delay = min(delay * 2, self.cfg.max_backoff_s)
        finally:
            if paused:
                consumer.resume(*consumer.assignment())

    # ------------------------------------------------------------------ loop
    def _publish_rejects(self, rejects: list[RejectedMessage]) -> None:
        if not rejects:
            return
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.cfg.bootstrap, linger_ms=5)
        for rej in rejects:
            self._producer.send(
                self.cfg.rejected_topic,
                key=rej.key.encode() if rej.key else None,
                value=rej.model_dump_json().encode(),
            )
        self._producer.flush()

    def process(self, consumer: KafkaConsumer, records: list) -> None:
        """Handle one poll's records end to end, committing offsets last."""
        batch = _Batch(records, self.cfg.transactions_topic)
        result, landed, rows, as_of = self._write_with_retry(consumer, batch)
        pushed = self._writer.write(rows, as_of)
        done = time.time()
        self._publish_rejects(batch.rejects)
        try:
            consumer.commit()
        except CommitFailedError as exc:  # the group rebalanced (e.g. the broker restarted)
            log.warning("offsets not committed (%s); the batch is written and a re-read of it "
                        "changes nothing", exc)  # fmt: skip
        if landed is not None:
            events.after_commit(landed, bootstrap=self.cfg.bootstrap)
        if batch.inventory:
            events.inventory_moved(
                self.cfg.tenant,
                list(batch.inventory.values()),
                bootstrap=self.cfg.bootstrap,
                database_url=self.cfg.database_url,
            )
        s = self.stats
        s.messages += len(records)
        s.baskets += result.inserted
        s.duplicates += result.duplicates + (
            sum(1 for r in records if r.topic == self.cfg.transactions_topic)
            - len(batch.baskets)
            - sum(1 for r in batch.rejects if r.topic == self.cfg.transactions_topic)
        )
        s.inventory += result.inventory
        s.rejected += len(batch.rejects)
        s.customers_pushed += pushed
        s.batches += 1
        if self.cfg.track_lag:
            s.lags.extend(done - r.timestamp / 1000.0 for r in records)

    def run(
        self,
        consumer: KafkaConsumer | None = None,
        on_batch: Callable[[ConsumeStats], None] | None = None,
    ) -> ConsumeStats:
        """Consume until `max_messages`, `idle_timeout_s` or the stop event."""
        cfg = self.cfg
        own = consumer is None
        topics = (cfg.transactions_topic, cfg.inventory_topic, cfg.rejected_topic)
        ensure_topics(cfg.bootstrap, topics)
        consumer = consumer or make_consumer(cfg)
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
                room = cfg.max_batch
                if cfg.max_messages is not None:
                    room = min(room, cfg.max_messages - self.stats.messages)
                    if room <= 0:
                        break
                polled = consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=room)
                listener = getattr(consumer, "rp_listener", None)
                if listener is not None and listener.reposition(consumer):
                    continue  # polled from positions the (re)assignment replaced
                records = [r for recs in polled.values() for r in recs]
                if not records:
                    if not consumer.assignment():
                        # still joining the group: idleness counts from the first assignment
                        idle_since = time.monotonic()
                    elif cfg.idle_timeout_s and time.monotonic() - idle_since > cfg.idle_timeout_s:
                        break
                    continue
                self.process(consumer, records)
                idle_since = time.monotonic()
                if on_batch:
                    on_batch(self.stats)
        finally:
            if own:
                consumer.close(autocommit=False)
            self.close()
        return self.stats

    def close(self) -> None:
        """Release the database, Redis and producer connections."""
        if self._conn is not None:
            self._conn.close()
        if self._producer is not None:
            self._producer.close()
        self._redis.close()


def _as_of(newest: datetime | None) -> datetime:
    """The stream clock of a batch: its newest basket time truncated to the second, + 1 s."""
    newest = newest or datetime.now(UTC)
    return newest.replace(microsecond=0) + timedelta(seconds=1)


def rejected_messages(
    bootstrap: str, *, topic: str = REJECTED_TOPIC, timeout_s: float = 5.0
) -> list[dict]:
    """Everything on the rejected topic so far (for tests and operators)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    try:
        return [json.loads(rec.value) for rec in consumer]
    finally:
        consumer.close()
