"""The WebSocket hub: Kafka's live events, fanned out to subscribed clients (seed §4.2).

One hub per ingress process. A background thread reads `live.events` and `alerts.trigger`
(partitions assigned explicitly, from the end: a live view wants what happens from now on, and
no consumer-group join delays the first event) and hands each event to the event loop, which
puts it on the queue of every client subscribed to its channel, of its tenant, and allowed to
see its stores. Each client has a bounded queue drained by its own sender task: a slow client
fills its own queue and loses its oldest events (it is told how many), never slowing the others.
Every `tick_s` the hub sends `dashboard.metrics` to each subscribed tenant: what it saw in the
last interval (baskets, revenue, inventory updates, alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.bus import ALERTS_TOPIC, CHANNELS, LIVE_TOPIC

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


@dataclass(eq=False)
class Client:
    """One WebSocket connection: who it is, what it subscribed to, what it has not sent yet."""

    tenant: str
    stores: frozenset[str] | None  # None: every store of the tenant
    channels: set[str] = field(default_factory=set)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0

    def wants(self, ev: dict[str, Any]) -> bool:
        if ev.get("tenant") != self.tenant or ev.get("channel") not in self.channels:
            return False
        stores = ev.get("stores") or []
        return self.stores is None or not stores or bool(self.stores.intersection(stores))

    def offer(self, message: dict[str, Any]) -> None:
        """Queue `message`; a full queue drops its oldest message (counted)."""
        while True:
            try:
                self.queue.put_nowait(message)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1


def alert_event(value: dict[str, Any]) -> dict[str, Any] | None:
    """An `alerts.trigger` message as a live event on `alerts.new` (None if it has no tenant)."""
    tenant = value.get("tenant")
    if not tenant:
        return None
    subject = value.get("subject") or {}
    stores = subject.get("stores") or ([subject["store_id"]] if subject.get("store_id") else [])
    return {
        "tenant": tenant,
        "channel": "alerts.new",
        "stores": [str(s) for s in stores],
        "payload": value,
        "at": value.get("triggered_at"),
    }


class LiveHub:
    """Kafka → WebSocket fan-out for one process; `start()` on first use, `stop()` at shutdown."""

    def __init__(self, bootstrap: str, *, tick_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.tick_s = tick_s
        self.clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._window: dict[str, dict[str, float]] = defaultdict(_empty_window)
        self.received = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start reading Kafka (idempotent); call from the event loop that serves the clients."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._consume, name="live-hub", daemon=True)
        self._thread.start()
        self._ticker = self._loop.create_task(self._tick())

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until the consumer sits at the end of its partitions (tests, the demo)."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ clients
    def register(self, client: Client) -> None:
        self.clients.add(client)

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)

    def dispatch(self, ev: dict[str, Any]) -> int:
        """Queue `ev` for every client that wants it (on the event loop); returns how many."""
        self.received += 1
        self._count(ev)
        sent = 0
        for client in list(self.clients):
            if client.wants(ev):
                client.offer({"type": "data", "channel": ev["channel"], "payload": ev["payload"],
                              "stores": ev.get("stores") or [], "at": ev.get("at")})  # fmt: skip
                sent += 1
        return sent

    # ------------------------------------------------------------------ dashboard ticks
    def _count(self, ev: dict[str, Any]) -> None:
        window = self._window[ev.get("tenant", "")]
        channel, payload = ev.get("channel"), ev.get("payload") or {}
        if channel == "sales.realtime":
            window["baskets"] += payload.get("baskets") or 0
            window["revenue"] += payload.get("revenue") or 0.0
        elif channel == "inventory.updates":
            window["inventoryUpdates"] += 1
        elif channel == "alerts.new":
            window["alerts"] += 1

    async def _tick(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.tick_s)
            window, self._window = self._window, defaultdict(_empty_window)
            tenants = {c.tenant for c in self.clients if "dashboard.metrics" in c.channels}
            for tenant in tenants:
                counts = window.get(tenant, _empty_window())
                payload = {"windowSeconds": self.tick_s, **counts,
                           "revenue": round(counts["revenue"], 2)}  # fmt: skip
                for client in list(self.clients):
                    if client.tenant == tenant and "dashboard.metrics" in client.channels:
                        client.offer({"type": "data", "channel": "dashboard.metrics",
                                      "payload": payload, "stores": [],
                                      "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})  # fmt: skip

    # ------------------------------------------------------------------ Kafka thread
    def _consume(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from core.bus import ensure_topics

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    ensure_topics(self.bootstrap, (LIVE_TOPIC, ALERTS_TOPIC))
                    consumer = KafkaConsumer(
                        bootstrap_servers=self.bootstrap,
                        group_id=None,
                        enable_auto_commit=False,
                        fetch_max_wait_ms=100,
                    )
                    parts = [
                        TopicPartition(topic, p)
                        for topic in (LIVE_TOPIC, ALERTS_TOPIC)
                        for p in sorted(consumer.partitions_for_topic(topic) or {0})
                    ]
                    consumer.assign(parts)
                    consumer.seek_to_end(*parts)
                    for tp in parts:  # resolve the end offsets now, not on the first poll
                        consumer.position(tp)
                    self._ready.set()
                for tp, records in consumer.poll(timeout_ms=200).items():
                    for rec in records:
                        ev = _loads(rec.value)
                        if tp.topic == ALERTS_TOPIC and isinstance(ev, dict):
                            ev = alert_event(ev)
                        if isinstance(ev, dict) and ev.get("channel") in CHANNELS:
                            self._loop.call_soon_threadsafe(self.dispatch, ev)
            except Exception as exc:  # broker down or restarted: reconnect, keep serving
                log.warning(
                    "live hub lost the broker at %s (%s); reconnecting", self.bootstrap, exc
                )
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.close()
                consumer = None
                self._stop.wait(1.0)
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()


def _empty_window() -> dict[str, float]:
    return {"baskets": 0, "revenue": 0.0, "inventoryUpdates": 0, "alerts": 0}


def _loads(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None  # not ours: skipped
