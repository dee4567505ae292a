"""What a `retailpulse consume` run is given (`ConsumeConfig`) and what it counts
(`ConsumeStats`), for the consume loop (pipelines/stream_consumer.py) and its callers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from integrations.messages import INVENTORY_TOPIC, REJECTED_TOPIC, TRANSACTIONS_TOPIC


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
    # The batch grows only while the writers are busy, up to this. Sent 5,000 msg/s on 2 cores,
    # with 2 writers 2,500 held the freshness lag's p99 at 1.91 / 1.99 / 2.68 / 2.83 s against
    # 2.92-3.72 s for 5,000 (alternated runs, stop 29): a batch is written sooner. Bigger batches
    # share per-batch costs better: with 3 writers, 5,000 against 2,500 in six alternated pairs
    # on a slower machine, pace past the start-up 5,010-5,339 msg/s against 4,435-4,836 (it kept
    # up, 2,500 fell behind), p99 lower in 4 of 6 (mean 3.65 vs 3.92 s); yet against the two
    # writers with 2,500 its p99 was higher in 3 of 5 pairs (mean 2.99 vs 2.75 s). Smaller
    # batches fall behind (1,500: 4,000 msg/s; 1,000: 3,300).
    max_batch: int = Field(default=2500, gt=0)
    # Batches written at once, by as many writer threads, each with its own connection: batch
    # N+1 merges while the batches before it do their rollups, RFM read and commit under the
    # tenant's lock. Sent 5,000 msg/s on 2 cores with batches of up to 2,500, 3 against 2 in
    # five alternated pairs: the pace past the start-up 4,694-5,044 msg/s against 4,477-4,551
    # (higher in 5 of 5), p99 lag 2.35-3.71 s against 3.26-4.15 s (lower in 4, 0.02 s higher
    # in 1); the third connection keeps the cores busier (1.73 against 1.65 on average).
    writers: int = Field(default=3, ge=1)
    # Records taken per poll: the loop validates them between polls, and must poll again well
    # within max_poll_interval_ms (on a busy machine too) or the group drops it.
    max_poll_records: int = Field(default=500, gt=0)
    poll_timeout_ms: int = Field(default=100, gt=0)
    # Tansu completes a group join only after the rebalance timeout (= max.poll.interval).
    max_poll_interval_ms: int = Field(default=3000, ge=1000)
    retry_backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=5.0, gt=0)
    track_lag: bool = False
    # Verify each record batch's CRC-32C: in C through the `crc32c` package (a dependency;
    # kafka-python's pure-Python fallback costs ~0.16 ms per KB of messages).
    check_crcs: bool = True


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
    # the last batch's freshness lag: its oldest message's Kafka time → its features written
    # online (kept whether or not `track_lag` keeps every message's)
    last_lag: float | None = None
    # seconds spent per stage (the two writer threads' stages overlap: their sum can pass the
    # wall time)
    stages: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        """Add `seconds` to `stage` (a count other than wall time, e.g. a thread's CPU time)."""
        with self._lock:
            self.stages[stage] = self.stages.get(stage, 0.0) + seconds

    def timed(self, stage: str, since: float) -> float:
        """Add the time since `since` to `stage`; returns now (the next stage's start)."""
        now = time.perf_counter()
        self.add(stage, now - since)
        return now
