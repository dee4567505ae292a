"""The consume loop's building blocks: a polled batch (validated, split into baskets,
inventory levels and rejects, with the offsets to commit once it is written), the rebalance
listener that makes the loop read on from the group's committed offsets, and the loop's state
(`Loop`: one batch written while the next is polled, retries while the database is down)."""

from __future__ import annotations

import logging
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


class Loop:
    """The consume loop's state (`StreamConsumer.run`): the batch being written (at most one,
    by the consumer's writer thread), the one being polled, and a batch waiting to be retried
    while the database is down (partitions paused meanwhile)."""

    def __init__(self, sc: StreamConsumer, consumer: KafkaConsumer) -> None:
        self.sc, self.consumer = sc, consumer
        self.buffer = Batch(sc.cfg.transactions_topic)
        self.inflight: tuple[Batch, Future] | None = None
        self.retry: Batch | None = None
        self.retry_at: float | None = None
        self.delay = sc.cfg.retry_backoff_s
        self.paused = False

    def taken(self) -> int:
        busy = len(self.inflight[0]) if self.inflight else 0
        return self.sc.stats.messages + busy + len(self.buffer) + len(self.retry or ())

    def taken_all(self) -> bool:
        limit = self.sc.cfg.max_messages
        return limit is not None and self.taken() >= limit and self.idle()

    def idle(self) -> bool:
        return self.inflight is None and not self.buffer and self.retry is None

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
        """Finish a written batch, start the next write; True if a batch was finished."""
        finished = False
        if self.inflight is not None and self.inflight[1].done():
            finished = self._collect(on_batch)
        if self.inflight is None:
            if self.retry is not None:
                if time.monotonic() >= (self.retry_at or 0):
                    self._submit(self.retry)
                    self.retry = None
            elif self.buffer:
                self._submit(self.buffer)
                self.buffer = Batch(self.sc.cfg.transactions_topic)
        return finished

    def drain(self, on_batch, *, reread: bool = False) -> None:
        """Wait for the batch in flight and commit it. A failed write is left uncommitted:
        dropped when its messages are to be read again (`reread`), else raised."""
        if self.inflight is not None:
            futures.wait([self.inflight[1]])
            self._collect(on_batch, on_error="drop" if reread else "raise")

    def _submit(self, batch: Batch) -> None:
        self.inflight = (batch, self.sc._pool.submit(self.sc._write, batch))

    def _collect(self, on_batch, on_error: str = "retry") -> bool:
        assert self.inflight is not None
        (batch, future), self.inflight = self.inflight, None
        try:
            written = future.result()
        except psycopg.OperationalError as exc:
            sc = self.sc
            sc.stats.db_retries += 1
            if sc.stop.is_set() or on_error == "raise":
                raise
            if on_error == "drop":
                log.warning("warehouse unreachable (%s); the batch will be read again", exc)
                return False
            log.warning("warehouse unreachable (%s); retrying in %.1f s", exc, self.delay)
            self.retry, self.retry_at = batch, time.monotonic() + self.delay
            self.delay = min(self.delay * 2, sc.cfg.max_backoff_s)
            return False
        self.retry_at, self.delay = None, self.sc.cfg.retry_backoff_s
        self.sc._finish(self.consumer, batch, written)
        if on_batch:
            on_batch(self.sc.stats)
        return True
