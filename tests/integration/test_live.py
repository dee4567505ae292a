"""Live updates: events published on Kafka reach subscribed WebSocket clients of their tenant
(and stores) only; bad messages get an error and the connection stays; a slow client loses its
own oldest events without slowing the others."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from core import events as hooks
from core.bus import event, get_bus
from integrations.messages import InventoryMessage
from serving.app import create_api
from serving.deps import Backends
from serving.live import Client, LiveHub

pytestmark = pytest.mark.integration


@pytest.fixture
def client(service_env):
    app = create_api(Backends(default_tenant="default"))
    with TestClient(app) as tc:
        yield tc
        hub = getattr(app.state, "live_hub", None)
        if hub is not None:
            hub.stop()


def _subscribe(ws, channel: str) -> dict:
    ws.send_json({"type": "subscribe", "channel": channel})
    return ws.receive_json()


def _ready(client: TestClient) -> None:
    assert client.app.state.live_hub.wait_ready(15), "the hub never reached the end of its topics"


def _receive_data(ws, channel: str, timeout: float = 15.0) -> dict:
    """The next `data` message on `channel` (other channels' ticks are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = ws.receive_json()
        if msg.get("type") == "data" and msg["channel"] == channel:
            return msg
    raise AssertionError(f"no {channel} event within {timeout}s")


def test_stream_batch_reaches_subscriber_of_its_tenant_only(client, service_env):
    bus = get_bus(service_env["RETAILPULSE_KAFKA_BOOTSTRAP"])
    with (
        client.websocket_connect("/ws?tenant=live-a") as mine,
        client.websocket_connect("/ws?tenant=live-b") as other,
    ):
        assert _subscribe(mine, "sales.realtime")["channels"] == ["sales.realtime"]
        assert _subscribe(other, "sales.realtime")["type"] == "subscribed"
        _ready(client)
        # what the stream consumer announces after a batch commits
        stamp = datetime(2026, 11, 30, 12, tzinfo=UTC)
        landed = hooks.sales_landed("live-b", "stream", [stamp], ["7"], [3.5])
        hooks._publish_sales(landed, service_env["RETAILPULSE_KAFKA_BOOTSTRAP"])
        landed = hooks.sales_landed("live-a", "stream", [stamp, stamp], ["364", "365"], [10, 2.5])
        hooks._publish_sales(landed, service_env["RETAILPULSE_KAFKA_BOOTSTRAP"])
        got = _receive_data(mine, "sales.realtime")
        assert got["payload"]["baskets"] == 2
        assert got["payload"]["revenue"] == 12.5
        assert got["payload"]["byStore"]["364"] == {"baskets": 1, "revenue": 10.0}
        assert sorted(got["stores"]) == ["364", "365"]
        theirs = _receive_data(other, "sales.realtime")
        assert theirs["payload"]["baskets"] == 1  # live-b saw only its own basket
    assert bus.publish([]) == 0


def test_inventory_and_unsubscribe(client, service_env):
    bootstrap = service_env["RETAILPULSE_KAFKA_BOOTSTRAP"]
    with client.websocket_connect("/ws?tenant=live-c") as ws:
        _subscribe(ws, "inventory.updates")
        _ready(client)
        level = InventoryMessage(store_id="9", product_id=42, on_hand=17,
                                 timestamp=datetime.now(UTC))  # fmt: skip
        hooks.inventory_moved("live-c", [level], bootstrap=bootstrap)
        got = _receive_data(ws, "inventory.updates")
        assert got["payload"]["productId"] == 42 and got["payload"]["onHand"] == 17
        ws.send_json({"type": "unsubscribe", "channel": "inventory.updates"})
        assert ws.receive_json() == {
            "type": "unsubscribed",
            "channel": "inventory.updates",
            "channels": [],
        }
        hooks.inventory_moved("live-c", [level], bootstrap=bootstrap)
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # nothing queued before the pong


def test_alerts_topic_feeds_alerts_channel(client, service_env):
    from kafka import KafkaProducer

    with client.websocket_connect("/ws?tenant=live-d") as ws:
        _subscribe(ws, "alerts.new")
        _ready(client)
        producer = KafkaProducer(bootstrap_servers=service_env["RETAILPULSE_KAFKA_BOOTSTRAP"])
        producer.send(
            "alerts.trigger",
            b'{"tenant": "live-d", "alert_id": 5, "severity": "critical", "title": "low sales",'
            b' "subject": {"store_id": "364"}, "triggered_at": "2026-11-30T12:00:00+00:00"}',
        )
        producer.flush()
        producer.close()
        got = _receive_data(ws, "alerts.new")
        assert got["payload"]["alert_id"] == 5 and got["stores"] == ["364"]


def test_bad_messages_get_errors_and_the_connection_stays(client):
    with client.websocket_connect("/ws?tenant=live-e") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["code"] == "BAD_JSON"
        ws.send_json({"type": "subscribe", "channel": "payroll"})
        bad = ws.receive_json()
        assert bad["code"] == "UNKNOWN_CHANNEL" and "sales.realtime" in bad["message"]
        ws.send_json({"type": "shout"})
        assert ws.receive_json()["code"] == "BAD_TYPE"
        ws.send_text("x" * 5000)
        assert ws.receive_json()["code"] == "MESSAGE_TOO_LARGE"
        assert _subscribe(ws, "alerts.new")["type"] == "subscribed"


def test_invalid_tenant_is_refused(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/ws?tenant=bad%20tenant") as ws:
            ws.receive_json()
    assert closed.value.code == 4401


def test_store_scope_and_slow_client_do_not_affect_others():
    async def scenario() -> tuple[Client, Client, Client, int]:
        hub = LiveHub("unused:0")
        fast = Client(tenant="t", stores=None, channels={"sales.realtime"})
        slow = Client(tenant="t", stores=None, channels={"sales.realtime"})
        scoped = Client(tenant="t", stores=frozenset({"1"}), channels={"sales.realtime"})
        for c in (fast, slow, scoped):
            hub.register(c)
        for n in range(400):  # nobody drains `slow`; `fast` is drained as it goes
            hub.dispatch(event("t", "sales.realtime", {"n": n}, [str(n % 2)]))
            while not fast.queue.empty():
                fast.queue.get_nowait()
        delivered = hub.dispatch(event("t", "sales.realtime", {"n": "last"}, ["0"]))
        return fast, slow, scoped, delivered

    fast, slow, scoped, delivered = asyncio.run(scenario())
    assert delivered == 2  # fast and slow; the store-1 client does not see store 0
    assert fast.dropped == 0 and fast.queue.get_nowait()["payload"] == {"n": "last"}
    assert slow.queue.full() and slow.dropped == 401 - slow.queue.maxsize
    seen = [scoped.queue.get_nowait()["payload"]["n"] for _ in range(scoped.queue.qsize())]
    assert seen == list(range(1, 400, 2))  # only store 1's events


def test_dashboard_metrics_summarise_the_last_interval(service_env):
    bootstrap = service_env["RETAILPULSE_KAFKA_BOOTSTRAP"]
    app = create_api(Backends(default_tenant="default"))
    app.state.live_hub = LiveHub(bootstrap, tick_s=0.5)
    with TestClient(app) as tc, tc.websocket_connect("/ws?tenant=live-f") as ws:
        _subscribe(ws, "dashboard.metrics")
        _ready(tc)
        stamp = datetime(2026, 11, 30, 12, tzinfo=UTC)
        landed = hooks.sales_landed("live-f", "stream", [stamp] * 3, ["1", "1", "2"], [1, 2, 3])
        hooks._publish_sales(landed, bootstrap)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            tick = _receive_data(ws, "dashboard.metrics")["payload"]
            if tick["baskets"]:
                break
        assert tick["baskets"] == 3 and tick["revenue"] == 6.0 and tick["windowSeconds"] == 0.5
    app.state.live_hub.stop()


# ----------------------------------------------------------------------------- authenticated


def _closed_with(client: TestClient, url: str) -> int:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect(url) as ws:
            ws.receive_json()
    return closed.value.code


def test_a_store_manager_hears_only_their_stores(accounts, service_env):
    bootstrap = service_env["RETAILPULSE_KAFKA_BOOTSTRAP"]
    manager = accounts.user("store_manager", stores=["1"])
    with accounts.app() as client:
        token = accounts.tokens(client, manager)["accessToken"]
        with client.websocket_connect(f"/ws?token={token}") as ws:
            _subscribe(ws, "sales.realtime")
            _ready(client)
            stamp = datetime(2026, 11, 30, 12, tzinfo=UTC)
            for store in ("2", "1"):  # store 2's event first: it must never arrive
                landed = hooks.sales_landed(accounts.tenant, "stream", [stamp], [store], [4.0])
                hooks._publish_sales(landed, bootstrap)
            got = _receive_data(ws, "sales.realtime")
            assert got["stores"] == ["1"]
        client.app.state.live_hub.stop()


def test_tokens_are_checked_and_required_when_auth_is(accounts, monkeypatch):
    """Bad and foreign tokens are refused whatever the setting; with authentication required
    an anonymous connection is too. The WebSocket reads the same settings snapshot as the
    HTTP routes (the app's auth runtime): an app built before the flip keeps its setting."""
    from core.settings import get_settings

    analyst = accounts.user("analyst")
    monkeypatch.setenv("RETAILPULSE_AUTH_REQUIRED", "false")
    get_settings.cache_clear()
    with accounts.app() as client:
        token = accounts.tokens(client, analyst)["accessToken"]
        assert _closed_with(client, "/ws?token=not-a-jwt") == 4401
        assert _closed_with(client, f"/ws?token={token}&tenant={accounts.other_tenant}") == 4403
        with client.websocket_connect("/ws") as ws:  # anonymous is allowed when not required
            assert _subscribe(ws, "alerts.new")["type"] == "subscribed"
        monkeypatch.setenv("RETAILPULSE_AUTH_REQUIRED", "true")
        get_settings.cache_clear()
        with client.websocket_connect("/ws") as ws:  # this app's runtime still says optional
            assert _subscribe(ws, "alerts.new")["type"] == "subscribed"
        client.app.state.live_hub.stop()
    with accounts.app() as client:
        assert _closed_with(client, "/ws") == 4401
        assert client.get("/api/v1/analytics/trends").status_code == 401  # HTTP agrees
        with client.websocket_connect(f"/ws?token={token}") as ws:
            assert _subscribe(ws, "alerts.new")["type"] == "subscribed"
        client.app.state.live_hub.stop()
