"""The platform's live event bus on Kafka: what the WebSocket channels are fed from.

Every live event is one JSON message on the topic `live.events`, keyed by tenant:

    {"tenant": "default", "channel": "sales.realtime", "stores": ["364"],
     "payload": {...}, "at": "2026-11-30T15:00:00+00:00"}

Channels: `sales.realtime` (a stream or import batch landed: baskets, revenue, stores),
`inventory.updates` (stock levels the stream moved), `dashboard.metrics` (the WebSocket hub's
own per-tenant summary ticks). Alerts travel on their own topic, `alerts.trigger`, which the hub
also reads (channel `alerts.new`). `stores` lets the hub give store-scoped users only their
stores' events (empty: tenant-wide).

Publishing never fails the caller: the data is already committed when an event goes out, so a
broker that is down costs the live view an event, not the write (it is logged).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

LIVE_TOPIC = "live.events"
ALERTS_TOPIC = "alerts.trigger"
CHANNELS = ("sales.realtime", "inventory.updates", "alerts.new", "dashboard.metrics")


def event(
    tenant: str, channel: str, payload: dict[str, Any], stores: Iterable[str] = ()
) -> dict[str, Any]:
    """One live event as it travels on `live.events`."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    return {
        "tenant": tenant,
        "channel": channel,
        "stores": sorted({str(s) for s in stores}),
        "payload": payload,
        "at": datetime.now(UTC).isoformat(),
    }


class EventBus:
    """A lazily connected Kafka producer of live events (one per process and bootstrap)."""

    def __init__(self, bootstrap: str, topic: str = LIVE_TOPIC) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    linger_ms=5,
                    max_block_ms=2000,
                    request_timeout_ms=5000,
                )
            return self._producer

    def publish(self, events: list[dict[str, Any]], *, flush: bool = True) -> int:
        """Send `events` (from `event()`); returns how many were handed to the broker."""
        if not events:
            return 0
        try:
            producer = self._get()
            for ev in events:
                producer.send(
                    self.topic,
                    key=ev["tenant"].encode(),
                    value=json.dumps(ev, default=str).encode(),
                )
            if flush:
                producer.flush(timeout=5)
            return len(events)
        except Exception as exc:  # the write is committed; the live view loses this event
            log.warning("live events not published to %s (%s): %s", self.bootstrap, self.topic, exc)
            return 0

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=2)
                self._producer = None


_buses: dict[str, EventBus] = {}
_buses_lock = threading.Lock()


def get_bus(bootstrap: str | None = None) -> EventBus:
    """The process's bus for `bootstrap` (default: the configured or embedded broker)."""
    if bootstrap is None:
        from core.services import get_endpoints

        bootstrap = get_endpoints().kafka_bootstrap
    with _buses_lock:
        if bootstrap not in _buses:
            _buses[bootstrap] = EventBus(bootstrap)
        return _buses[bootstrap]


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = 1) -> None:
    """Create `topics` on the broker where it lacks them (one partition each by default)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="retailpulse-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
