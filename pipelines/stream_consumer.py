"""`retailpulse consume`: transactions.new and inventory.updates into the warehouse and the
online store, exactly once in effect.

Per batch: validate every message (invalid ones go to transactions.rejected with the reason),
merge the batch into the warehouse in one transaction (idempotent by natural keys), push the
fresh RFM features of the customers with new baskets to Redis, publish the rejects and the live
events, and only then commit the batch's Kafka offsets. A crash anywhere before that commit
re-delivers the batch, which then changes nothing it already changed. The write of batch N (a
writer thread) overlaps the polling and validation of batch N+1 (the loop's thread), which
grows only while the writer is busy, so per-batch costs are shared under load and a message is
written at once when the stream is slow. Writer threads (`ConsumeConfig.writers`, 3 by
default), each with its own connection, let batch N+1's merge run while batch N does its
rollups, RFM read and commit: the tenant's rollup lock (analytics/rollups.py) makes N+1 wait for
N's commit before its own rollups, and N+1 reads the RFM part N kept, publishes and has its
offsets committed only after N. While the database is unreachable the consumer pauses its
partitions (still polling, so it keeps its group membership), retries with back-off and
commits nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import psycopg
import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, RebalanceInProgressError

from analytics.rollups import lock_tenant
from core import events
from core.bus import ensure_topics
from core.db import libpq_url
from integrations.landing import land_baskets
from integrations.messages import REJECTED_TOPIC, RejectedMessage
from integrations.warehouse import (
    BatchResult,
    ensure_tenant_partitions,
    insert_dimensions,
    write_batch,
)
from pipelines import rfm_parts
from pipelines.stream_batches import Batch, FromCommitted, Job, Loop
from pipelines.stream_config import ConsumeConfig, ConsumeStats
from pipelines.stream_features import OnlineRfmWriter, StreamRfm

log = logging.getLogger(__name__)


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
        check_crcs=cfg.check_crcs,
    )
    listener = FromCommitted()
    consumer.subscribe([cfg.transactions_topic, cfg.inventory_topic], listener=listener)
    consumer.rp_listener = listener  # StreamConsumer.run repositions through it
    return consumer


class _Written(NamedTuple):
    """What one batch changed, once committed and pushed online."""

    result: BatchResult
    pushed: int
    done: float  # wall-clock time its features were readable


class StreamConsumer:
    """The consume loop; `run()` returns when a stop condition is met.

    Two stages overlap: the loop's thread polls and validates the next batch (and keeps the
    group membership alive) while a writer thread merges the previous one into the warehouse,
    pushes its features, publishes its rejects and live events. Offsets of a batch are committed
    by the loop's thread (the Kafka client is not thread-safe), explicitly, once that batch is
    written: never those of a batch still being polled or written."""

    def __init__(self, cfg: ConsumeConfig, *, stop: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.stats = ConsumeStats()
        self._conns: list[psycopg.Connection | None] = [None] * cfg.writers  # one per writer
        self._producer_lock = threading.Lock()
        self._redis = redis.Redis.from_url(cfg.redis_url)
        self._writer = OnlineRfmWriter(self._redis, cfg.feast_project)
        self._rfm = StreamRfm()
        self._producer: KafkaProducer | None = None
        self._partitions_ready = False
        self._pool = ThreadPoolExecutor(
            max_workers=cfg.writers, thread_name_prefix="rp-stream-writer"
        )

    # ------------------------------------------------------------------ writer thread
    def _connection(self, slot: int) -> psycopg.Connection:
        conn = self._conns[slot]
        if conn is None or conn.closed:
            conn = self._conns[slot] = psycopg.connect(
                libpq_url(self.cfg.database_url), connect_timeout=3
            )
            # A batch's statements touch its own few thousand rows, yet their estimates pass
            # jit_above_cost now and then: on a fresh tenant's unanalysed tables the first
            # batch's RFM read took 0.41 s with JIT, under 0.02 s without. (End to end at 5,000
            # msg/s: +5% in four alternated pairs, -1.5% in four more: within the noise.)
            conn.execute("SET jit = off")
            conn.commit()
            self._partitions_ready = False
        if not self._partitions_ready:
            ensure_tenant_partitions(conn, self.cfg.tenant)
            self._partitions_ready = True
        return conn

    def _write(self, job: Job) -> _Written:
        """Write a batch (`_write_batch`), then let the next job go on, whatever happened."""
        try:
            return self._write_batch(job)
        finally:
            job.release()
            job.prev = None  # no chain of every batch written

    def _write_batch(self, job: Job) -> _Written:
        """Merge the batch and its rollups, read its customers' fresh RFM rows (one
        transaction); then push them online, publish rejects and the after-commit events."""
        batch, prev = job.batch, job.prev
        try:
            conn = self._connection(job.slot)
            timed, t = self.stats.timed, time.perf_counter()
            with conn.transaction():
                result = write_batch(
                    conn,
                    tenant=self.cfg.tenant,
                    baskets=list(batch.baskets.values()),
                    inventory=list(batch.inventory.values()),
                    dimensions=False,
                )
                job.merged.set()  # the next batch may merge while this one goes on
                t = timed("db_merge", t)
                # what reads only this batch's own baskets (the rollups' staging, its customers'
                # RFM parts of these baskets) goes before it waits for the batch before it to
                # commit: it overlaps that batch's rollups and RFM read, which wait for it
                landed = land_baskets(
                    conn, tenant=self.cfg.tenant, source="stream", result=result,
                    sent=batch.baskets.keys(), database_url=self.cfg.database_url, refresh=False,
                )  # fmt: skip
                new_parts = rfm_parts.new_parts(conn, tenant=self.cfg.tenant, result=result)
                # (and a restarted consumer's returning customers' history, but for those of
                # the batches in flight before it, kept once they commit)
                skip = _customers_in_flight(prev)
                whole = self._rfm.whole_parts(
                    conn, tenant=self.cfg.tenant, result=result, new=new_parts, skip=skip
                )
                t = timed("prepare", t)
                # the tenant's rollup lock, in the batches' order: once the batch before holds
                # it, queue for it (this waits for that batch's commit)
                if prev is not None:
                    prev.locked.wait()
                lock_tenant(conn, self.cfg.tenant)
                job.locked.set()
                t = timed("wait_previous", t)
                # ids first seen in this batch: after the batch before has committed, which
                # may have added some of them (inserting one it holds uncommitted waits)
                insert_dimensions(conn, self.cfg.tenant, result)
                t = timed("dimensions", t)
                if landed is not None:
                    events.in_transaction(conn, landed)
                    t = timed("rollups", t)
                if prev is not None:
                    prev.kept.wait()
                as_of = _as_of(result.newest)
                read = self._rfm.rows(
                    conn, tenant=self.cfg.tenant, result=result, as_of=as_of, new=new_parts,
                    whole=whole,
                )  # fmt: skip
                t = timed("rfm_query", t)
        except psycopg.OperationalError:
            conn = self._conns[job.slot]
            if conn is not None:
                conn.close()
            raise
        self._rfm.keep(read)
        job.kept.set()
        t = timed("db_commit", t)
        if prev is not None:
            prev.done.wait()  # online rows, rejects and events go out in batch order
        rows = read.rows
        pushed = self._writer.write(rows, as_of)
        done = time.time()
        t = timed("online_push", t)
        self._publish_rejects(batch.rejects)
        t = timed("rejects", t)
        if landed is not None:
            events.after_commit(landed, bootstrap=self.cfg.bootstrap)
        if batch.inventory:
            events.inventory_moved(
                self.cfg.tenant, list(batch.inventory.values()), bootstrap=self.cfg.bootstrap,
                database_url=self.cfg.database_url,
            )  # fmt: skip
        timed("after_commit", t)
        return _Written(result, pushed, done)

    def _publish_rejects(self, rejects: list[RejectedMessage]) -> None:
        if not rejects:
            return
        with self._producer_lock:
            if self._producer is None:
                self._producer = KafkaProducer(bootstrap_servers=self.cfg.bootstrap, linger_ms=5)
        for rej in rejects:
            self._producer.send(
                self.cfg.rejected_topic,
                key=rej.key.encode() if rej.key else None,
                value=rej.model_dump_json().encode(),
            )
        self._producer.flush()

    # ------------------------------------------------------------------ loop thread
    def _finish(self, consumer: KafkaConsumer, batch: Batch, written: _Written) -> None:
        """Commit a written batch's offsets and count it."""
        t = time.perf_counter()
        try:
            consumer.commit(batch.offsets())
        except (CommitFailedError, RebalanceInProgressError) as exc:  # the group rebalanced
            log.warning("offsets not committed (%s); the batch is written and a re-read of it "
                        "changes nothing", exc)  # fmt: skip
        self.stats.timed("offset_commit", t)
        result, s = written.result, self.stats
        s.messages += len(batch)
        s.baskets += result.inserted + batch.written_before
        rejected_tx = sum(1 for r in batch.rejects if r.topic == self.cfg.transactions_topic)
        s.duplicates += (result.duplicates - batch.written_before + batch.tx_messages
                         - len(batch.baskets) - rejected_tx)  # fmt: skip
        s.inventory += result.inventory
        s.rejected += len(batch.rejects)
        s.customers_pushed += written.pushed
        s.batches += 1
        if batch.records:
            s.last_lag = written.done - min(r.timestamp for r in batch.records) / 1000.0
        if self.cfg.track_lag:
            s.lags.extend(written.done - r.timestamp / 1000.0 for r in batch.records)

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
        listener = getattr(consumer, "rp_listener", None)
        loop = Loop(self, consumer)
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
                if loop.step(on_batch):
                    idle_since = time.monotonic()
                if loop.taken_all():
                    break
                room = loop.room()
                loop.set_paused(room <= 0 or loop.retry_at is not None)
                wait_ms = cfg.poll_timeout_ms if not loop.inflight else 10
                t, cpu = time.perf_counter(), time.thread_time()
                polled = consumer.poll(
                    timeout_ms=wait_ms, max_records=max(1, min(room, cfg.max_poll_records))
                )
                self.stats.timed("poll", t)
                self.stats.add("poll_cpu", time.thread_time() - cpu)  # decoding the records
                if listener is not None and listener.pending:
                    # a (re)assignment: drop what was polled and buffered (never committed),
                    # let the batch in flight finish and commit, then read on from the
                    # group's committed offsets
                    loop.drain(on_batch, reread=True)
                    loop.buffer, loop.retry = Batch(cfg.transactions_topic), []
                    listener.reposition(consumer)
                    loop.paused = False  # a new assignment starts unpaused
                    continue
                records = [r for recs in polled.values() for r in recs]
                if records:
                    t, cpu = time.perf_counter(), time.thread_time()
                    loop.buffer.add(records)
                    self.stats.timed("validate", t)
                    # its own CPU time: the rest of the wall time above is spent waiting for
                    # the interpreter lock while the writer threads run Python
                    self.stats.add("validate_cpu", time.thread_time() - cpu)
                    idle_since = time.monotonic()
                elif not loop.inflight and not loop.buffer and loop.retry_at is None:
                    if not consumer.assignment():
                        # still joining the group: idleness counts from the first assignment
                        idle_since = time.monotonic()
                    elif cfg.idle_timeout_s and time.monotonic() - idle_since > cfg.idle_timeout_s:
                        break
            loop.drain(on_batch)  # the batches in flight are written: commit them
        finally:
            self._pool.shutdown(wait=True)
            if own:
                consumer.close(autocommit=False)
            self.close()
        return self.stats

    def close(self) -> None:
        """Release the database, Redis and producer connections."""
        for conn in self._conns:
            if conn is not None:
                conn.close()
        if self._producer is not None:
            self._producer.close()
        self._redis.close()


def _customers_in_flight(job: Job | None) -> set[int]:
    """The customers of `job` and of the jobs before it still being written (a finished job
    has dropped its `prev`): their RFM parts are kept before this batch reads them."""
    out: set[int] = set()
    while job is not None:
        out.update(b["customer_id"] for b in job.batch.baskets.values())
        job = job.prev
    return out


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
