"""The consume loop's building blocks: a polled batch (validated, split into baskets,
inventory levels and rejects, with the offsets to commit once it is written) and the rebalance
listener that makes the loop read on from the group's committed offsets."""

from __future__ import annotations

from datetime import UTC, datetime

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from integrations.messages import InventoryMessage, RejectedMessage, parse, parse_baskets


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
