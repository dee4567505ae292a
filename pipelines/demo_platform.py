"""The demo's tour of the platform API: an admin signs in, reads analytics, watches the live
WebSocket while a stream batch raises an alert, and downloads a PDF and an Excel report.

Everything goes over HTTP to the served application, as a retailer's client would. The admin
is a super admin of the demo (it reads the main tenant's analytics and reports and raises the
alert on the stream tenant); its password is generated once and kept, readable only by its
owner, in `RETAILPULSE_HOME/demo-admin.json`.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from core.settings import get_settings
from pipelines.console import console

ADMIN_EMAIL = "admin@retailpulse.demo"
LIVE_CHANNELS = ("sales.realtime", "alerts.new")


def _admin_password(home: Path) -> tuple[str, bool]:
    """(password, created) of the demo admin, creating the account on the first run."""
    from accounts import jobs
    from core.errors import Conflict

    path = home / "demo-admin.json"
    if path.exists():
        return json.loads(path.read_text())["password"], False
    password = secrets.token_urlsafe(15)
    try:
        jobs.create_admin(email=ADMIN_EMAIL, password=password, super_admin=True,
                          name="Demo admin")  # fmt: skip
    except Conflict:
        raise RuntimeError(
            f"{ADMIN_EMAIL} exists but its password is not in {path}: reset it with "
            "`retailpulse users` or remove the account"
        ) from None
    path.write_text(json.dumps({"email": ADMIN_EMAIL, "password": password}))
    path.chmod(0o600)
    return password, True


def _show(reply: httpx.Response, what: str, keep: int = 3) -> Any:
    """Print one line per call, and a short view of its data."""
    cache = reply.headers.get("x-cache")
    note = f" (cache {cache})" if cache else ""
    console.print(f"[bold]{what}[/] → {reply.status_code}{note}")
    body = reply.json()
    data = body.get("data") if body.get("success") else body.get("error")
    if isinstance(data, dict):
        short = {k: (v[:keep] if isinstance(v, list) else v) for k, v in data.items()}
        console.print_json(json.dumps(short, default=str))
    return data


class _Watcher:
    """A WebSocket client in a thread: subscribes, then collects messages until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="demo-ws", daemon=True)

    def _run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=30) as ws:
                for channel in LIVE_CHANNELS:
                    ws.send(json.dumps({"type": "subscribe", "channel": channel}))
                    json.loads(ws.recv(timeout=10))
                self.ready.set()
                while not self.stop.is_set():
                    try:
                        msg = json.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if msg.get("type") == "data":
                        self.messages.append(msg)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def wait_for(self, channel: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.messages:
                if msg["channel"] == channel:
                    return msg
            time.sleep(0.2)
        return None


def _stream_baskets(tenant: str, count: int, store: str) -> dict[str, Any]:
    """Send `count` fresh baskets (ids from the clock, time: now) on `transactions.new` and run
    the consumer until they are written; returns its counts."""
    from kafka import KafkaProducer

    from core.bus import ensure_topics
    from core.services import get_endpoints
    from integrations.messages import TOPICS, TRANSACTIONS_TOPIC
    from pipelines.jobs.stream import consume, demo_group

    bootstrap = get_endpoints().kafka_bootstrap
    ensure_topics(bootstrap, TOPICS)
    first = int(time.time() * 1000) * 100
    now = datetime.now(UTC)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for n in range(count):
        basket = {
            "transaction_id": first + n, "store_id": store, "customer_id": 1,
            "timestamp": (now + timedelta(seconds=n)).isoformat(),
            "lines": [{"product_id": 1004906, "quantity": 2, "sales_value": 5.98}],
        }  # fmt: skip
        producer.send(TRANSACTIONS_TOPIC, key=b"1", value=json.dumps(basket).encode())
    producer.flush()
    producer.close()
    stats = consume(tenant, max_messages=count, idle_timeout_s=3, group_id=demo_group(tenant))
    return {"baskets": stats.baskets, "duplicates": stats.duplicates, "rejected": stats.rejected}


def _report(http: httpx.Client, headers: dict[str, str], fmt: str, out_dir: Path) -> Path:
    body = {"template": "sales_summary", "format": fmt, "params": {"lastDays": 28}}
    reply = http.post("/api/v1/reports/generate", json=body, headers=headers)
    reply.raise_for_status()
    report_id = reply.json()["data"]["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = http.get(f"/api/v1/reports/{report_id}", headers=headers).json()["data"]
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    if status["status"] != "done":
        raise RuntimeError(f"report {report_id} {status['status']}: {status.get('error')}")
    file = http.get(f"/api/v1/reports/{report_id}/download", headers=headers)
    file.raise_for_status()
    path = out_dir / f"sales_summary.{fmt}"
    path.write_bytes(file.content)
    return path


def sign_in(http: httpx.Client, tenant: str) -> str:
    """An access token of the demo admin (the account is created on the first run)."""
    home = get_settings().home_dir
    password, created = _admin_password(home)
    if created:
        console.print(
            f"admin {ADMIN_EMAIL} created (super admin; password in {home / 'demo-admin.json'});"
            f" a token from the shell: "
            f"`retailpulse users token --email {ADMIN_EMAIL} --password-stdin`"
        )
    login = http.post("/api/v1/users/login",
                      json={"email": ADMIN_EMAIL, "password": password},
                      headers={"X-Tenant-ID": tenant})  # fmt: skip
    login.raise_for_status()
    console.print(f"[bold]POST /api/v1/users/login[/] → {login.status_code} (bearer token)")
    return login.json()["data"]["accessToken"]


def platform_tour(base_url: str, *, tenant: str, stream_tenant: str) -> dict[str, Any]:
    """The tour (see the module docstring); returns what it saw."""
    home = get_settings().home_dir
    seen: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        token = sign_in(http, tenant)
        auth = {"Authorization": f"Bearer {token}"}
        _show(http.get("/api/v1/users/me", headers=auth), "GET /api/v1/users/me")

        # analytics of the main tenant: the second call of a route is served from the cache
        for path in ("/api/v1/analytics/sales/realtime?by=store",
                     "/api/v1/analytics/stores/comparison?limit=3&sort=revenue&order=desc",
                     "/api/v1/analytics/stores/comparison?limit=3&sort=revenue&order=desc",
                     "/api/v1/analytics/trends?interval=week"):  # fmt: skip
            _show(http.get(path, headers=auth), f"GET {path}")
        _show(
            http.post("/api/v1/analytics/basket/analysis", headers=auth,
                      json={"level": "department", "minSupport": 0.01, "maxRules": 3}),
            "POST /api/v1/analytics/basket/analysis",
        )  # fmt: skip

        # an alert rule on the stream tenant, the live view, then a stream batch that trips it
        live = {**auth, "X-Tenant-ID": stream_tenant}
        store = "demo-1"
        rule = http.post("/api/v1/alerts/rules", headers=live, json={
            "kind": "threshold", "name": f"busy till at store {store}", "severity": "warning",
            "params": {"metric": "baskets", "operator": ">=", "value": 10, "windowDays": 1},
            "scope": {"storeIds": [store]},
        })  # fmt: skip
        _show(rule, f"POST /api/v1/alerts/rules (tenant {stream_tenant})")
        ws_url = base_url.replace("http", "ws", 1) + f"/ws?token={token}&tenant={stream_tenant}"
        watcher = _Watcher(ws_url)
        watcher.thread.start()
        watcher.ready.wait(40)
        if watcher.error:
            raise RuntimeError(f"WebSocket {ws_url.split('?')[0]}: {watcher.error}")
        console.print(f"WebSocket /ws subscribed to {', '.join(LIVE_CHANNELS)}")
        streamed = _stream_baskets(stream_tenant, 12, store)
        console.print(f"stream: {streamed['baskets']} baskets written to {stream_tenant}")
        for channel in LIVE_CHANNELS:
            msg = watcher.wait_for(channel, timeout=30)
            seen[channel] = msg
            text = json.dumps(msg["payload"], default=str)[:160] if msg else "nothing within 30 s"
            console.print(f"[bold]WebSocket {channel}[/] ← {text}")
        watcher.stop.set()
        active = _show(http.get("/api/v1/alerts/active", headers=live), "GET /api/v1/alerts/active")
        seen["alerts"] = active

        out_dir = home / "reports"
        out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in ("pdf", "xlsx"):
            path = _report(http, auth, fmt, out_dir)
            seen[fmt] = str(path)
            console.print(f"report sales_summary ({fmt}): {path} ({os.path.getsize(path):,} bytes)")
    return seen
