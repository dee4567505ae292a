"""Shared pieces of the alert tests: a signed-webhook receiver, the API app, baskets landed
as the stream consumer lands them, and readers of the alert tables."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from alerts import notify
from core import events, webhooks
from integrations.messages import BasketMessage
from integrations.warehouse import write_batch

TENANT = "default"
DAY = datetime(2017, 3, 4, 15, 0, tzinfo=UTC)  # business day 2017-03-04
SECRET = "test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A webhook receiver answering the scripted statuses in turn (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = webhooks.verify(
                    SECRET,
                    self.headers["X-RetailPulse-Timestamp"],
                    body,
                    self.headers["X-RetailPulse-Signature"],
                )
                outer.calls.append({"body": json.loads(body), "signed": ok})
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def baskets(start_id: int, store: str, when: datetime, values: list[float]) -> list:
    return [
        BasketMessage(
            transaction_id=start_id + n, store_id=store, customer_id=900 + n, timestamp=when,
            lines=[{"product_id": 10, "quantity": 1, "sales_value": v}],
        )
        for n, v in enumerate(values)
    ]  # fmt: skip


def land(url: str, baskets: list, tenant: str = TENANT) -> None:
    """One stream batch as the consumer writes it: committed, then the after-commit hooks."""
    with psycopg.connect(url) as conn, conn.transaction():
        result = write_batch(conn, tenant=tenant, baskets=baskets, inventory=[])
    events.after_commit(events.sales_landed(tenant, "stream", result.times, result.stores))
    assert notify.drain(timeout=60)


def alerts(url: str, tenant: str = TENANT) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT alert_id, rule_id, status, subject, payload FROM alert_events"
            " WHERE tenant_id = %s ORDER BY alert_id",
            (tenant,),
        ).fetchall()


def deliveries(url: str, alert_id: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT channel, attempt, status, response_code FROM alert_deliveries"
            " WHERE alert_id = %s ORDER BY delivery_id",
            (alert_id,),
        ).fetchall()


@contextmanager
def _alerts_partition(bootstrap: str, **options: Any) -> Iterator[tuple[Any, Any]]:
    """A consumer of the `alerts.trigger` topic and its one partition, closed after use."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **options)
    try:
        yield consumer, TopicPartition(notify.ALERTS_TOPIC, 0)
    finally:
        consumer.close()


def alerts_topic_end(bootstrap: str) -> int:
    """The next offset of the alerts topic: what a test publishes comes at or after it (the
    session's broker is shared, and every test's warehouse numbers its alerts from 1)."""
    from core.bus import ensure_topics

    ensure_topics(bootstrap, [notify.ALERTS_TOPIC])
    with _alerts_partition(bootstrap) as (consumer, tp):
        return consumer.end_offsets([tp])[tp]


def kafka_alerts(bootstrap: str, since: int = 0) -> list[dict[str, Any]]:
    """The `alerts.trigger` messages from offset `since` on."""
    with _alerts_partition(bootstrap, consumer_timeout_ms=3000) as (consumer, tp):
        consumer.assign([tp])
        consumer.seek(tp, since)
        return [json.loads(m.value) for m in consumer]


def create_rule(api: TestClient, body: dict[str, Any], tenant: str = TENANT) -> dict[str, Any]:
    r = api.post("/api/v1/alerts/rules", json=body, headers={"X-Tenant-ID": tenant})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def threshold_rule(**params: Any) -> dict[str, Any]:
    p = {"metric": "baskets", "operator": ">=", "value": 2, **params}
    return {"kind": "threshold", "name": "busy", "params": p, "scope": {"storeIds": ["367"]}}
