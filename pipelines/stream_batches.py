"""The consume loop's building blocks: a polled batch (validated, split into baskets,
inventory levels and rejects, with the offsets to commit once it is written), the rebalance
listener that makes the loop read on from the group's committed offsets, and the loop's state
(`Loop`: up to `writers` batches written while the next is polled, retries while the
database is down)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from integrations.messages import InventoryMessage, RejectedMessage, parse, parse_baskets

if TYPE_CHECKING:
    from pipelines.stream_consumer import StreamConsumer

log = logging.getLogger("pipelines.stream_consumer")  # the loop's messages, as before


class FromCommitted(ConsumerRebalanceListener):
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


class Batch:
    """Polled messages, split into valid baskets (`BasketMessage.model_dump()` dicts, from the
    fast path of `parse_baskets`), inventory levels and rejects; grown poll by poll while the
    previous batch is being written."""

    def __init__(self, transactions_topic: str) -> None:
        self.topic = transactions_topic
        self.records: list = []
        self.baskets: dict[int, dict] = {}
        self.inventory: dict[tuple[str, int], InventoryMessage] = {}
        self.rejects: list[RejectedMessage] = []
        self.tx_messages = 0
        # baskets an earlier write of this batch inserted and committed, when it is written
        # again after the batch before it failed: the rewrite finds them already there
        self.written_before = 0

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: list) -> None:
        self.records.extend(records)
        now = datetime.now(UTC)
        tx = [rec for rec in records if rec.topic == self.topic]
        self.tx_messages += len(tx)
        parsed = dict(zip(map(id, tx), parse_baskets([rec.value for rec in tx]), strict=True))
        for rec in records:  # in poll order, so rejects keep it
            if rec.topic == self.topic:
                msg, reason = parsed[id(rec)]
            else:
                msg, reason = parse(InventoryMessage, rec.value)
            if msg is None:
                self.rejects.append(reject_record(rec, reason or "invalid", now))
            elif isinstance(msg, dict):
                self.baskets.setdefault(msg["transaction_id"], msg)  # first delivery wins
            else:
                key = (msg.store_id, msg.product_id)
                old = self.inventory.get(key)
                if old is None or old.timestamp <= msg.timestamp:
                    self.inventory[key] = msg

    def offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """The offsets to commit once the batch is written: past its last record per partition."""
        last: dict[TopicPartition, int] = {}
        for rec in self.records:
            tp = TopicPartition(rec.topic, rec.partition)
            last[tp] = max(last.get(tp, -1), rec.offset)
        return {tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in last.items()}


def reject_record(rec, reason: str, now: datetime) -> RejectedMessage:
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


class Job:
    """One write of a batch (`StreamConsumer._write`), on connection `slot`. Its events let the
    next job go on: `merged` (its merge is done: the loop may start the next batch's merge on
    the other connection), `locked` (it holds the tenant's lock: the next may queue for it, so
    batches take it in their order), `kept` (its RFM part is kept or dropped: the next may read
    it), `done` (its online push and events are out: the next publishes after it, in order)."""

    def __init__(self, batch: Batch, prev: Job | None, slot: int) -> None:
        self.batch, self.prev, self.slot = batch, prev, slot
        self.merged, self.locked = threading.Event(), threading.Event()
        self.kept, self.done = threading.Event(), threading.Event()
        self.future: Future | None = None

    def release(self) -> None:
        """Let the next job go on (the end of this one, whatever happened)."""
        for event in (self.merged, self.locked, self.kept, self.done):
            event.set()


class Loop:
    """The consume loop's state (`StreamConsumer.run`): the batches being written (at most one
    per writer thread: each merges once the one before it has merged, while those before it
    prepare, do their rollups and RFM read under the tenant's lock, and commit), the one being
    polled, and batches waiting to be retried while the database is down (partitions paused
    meanwhile). Offsets are committed in order only."""

    def __init__(self, sc: StreamConsumer, consumer: KafkaConsumer) -> None:
        self.sc, self.consumer = sc, consumer
        self.buffer = Batch(sc.cfg.transactions_topic)
        self.inflight: list[Job] = []
        self.retry: list[Batch] = []
        self.retry_at: float | None = None
        self.delay = sc.cfg.retry_backoff_s
        self.paused = False
        self._last: Job | None = None
        self._submitted = 0

    def taken(self) -> int:
        busy = sum(len(job.batch) for job in self.inflight)
        return self.sc.stats.messages + busy + len(self.buffer) + sum(map(len, self.retry))

    def taken_all(self) -> bool:
        limit = self.sc.cfg.max_messages
        return limit is not None and self.taken() >= limit and self.idle()

    def idle(self) -> bool:
        return not self.inflight and not self.buffer and not self.retry

    def room(self) -> int:
        cfg = self.sc.cfg
        room = cfg.max_batch - len(self.buffer)
        if cfg.max_messages is not None:
            room = min(room, cfg.max_messages - self.taken())
        return room

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused and self.consumer.assignment():
            parts = self.consumer.assignment()
            self.consumer.pause(*parts) if paused else self.consumer.resume(*parts)
            self.paused = paused

    def step(self, on_batch) -> bool:
        """Finish written batches (in order), start the next write; True if a batch was
        finished."""
        finished = False
        while self.inflight and self.inflight[0].future.done():
            finished |= self._collect(on_batch)
        if self.retry:  # one at a time, once nothing is in flight
            if not self.inflight and time.monotonic() >= (self.retry_at or 0):
                self._submit(self.retry.pop(0))
        elif self.buffer and (not self.inflight or (
                len(self.inflight) < self.sc.cfg.writers
                and self.inflight[-1].merged.is_set())):  # fmt: skip
            self._submit(self.buffer)
            self.buffer = Batch(self.sc.cfg.transactions_topic)
        return finished

    def drain(self, on_batch, *, reread: bool = False) -> None:
        """Wait for the batches in flight and commit them in order. A failed write is left
        uncommitted, and so is every batch after it: dropped when their messages are to be read
        again (`reread`), else raised."""
        if self.inflight:
            futures.wait([job.future for job in self.inflight])
        while self.inflight:
            self._collect(on_batch, on_error="drop" if reread else "raise")

    def _submit(self, batch: Batch) -> None:
        job = Job(batch, self._last, self._submitted % self.sc.cfg.writers)
        self._submitted += 1
        self._last = job
        job.future = self.sc._pool.submit(self.sc._write, job)
        self.inflight.append(job)

    def _collect(self, on_batch, on_error: str = "retry") -> bool:
        job = self.inflight.pop(0)
        try:
            written = job.future.result()
        except psycopg.OperationalError as exc:
            sc = self.sc
            sc.stats.db_retries += 1
            # the batches after it must not be committed before it: wait for them, and write
            # them again after it (a write that went through changes nothing the second time)
            later = self.inflight
            futures.wait([j.future for j in later])
            self.inflight = []
            for j in later:
                if j.future.exception() is None:  # committed: counted as its own, not re-reads
                    j.batch.written_before += j.future.result().result.inserted
            if sc.stop.is_set() or on_error == "raise":
                raise
            if on_error == "drop":
                log.warning("warehouse unreachable (%s); the batch will be read again", exc)
                return False
            log.warning("warehouse unreachable (%s); retrying in %.1f s", exc, self.delay)
            self.retry = [job.batch, *(j.batch for j in later), *self.retry]
            self.retry_at = time.monotonic() + self.delay
            self.delay = min(self.delay * 2, sc.cfg.max_backoff_s)
            return False
        self.retry_at, self.delay = None, self.sc.cfg.retry_backoff_s
        self.sc._finish(self.consumer, job.batch, written)
        if on_batch:
            on_batch(self.sc.stats)
        return True
