"""Live updates over WebSocket: `/ws?token=<access token>` (seed §4.2).

Messages are JSON objects `{type, channel, payload}`:

- client → server: `{"type": "subscribe", "channel": "sales.realtime"}`, `{"type":
  "unsubscribe", "channel": ...}`, `{"type": "ping"}`;
- server → client: `{"type": "data", "channel", "payload", "stores", "at"}` for every event of
  a subscribed channel of the caller's tenant (and, for store-scoped users, their stores);
  `{"type": "subscribed"|"unsubscribed", "channel", "channels"}`; `{"type": "error", "code",
  "message"}` for a message it cannot act on (the connection stays open); `{"type": "pong"}`;
  `{"type": "dropped", "count"}` when the client read too slowly and lost its oldest events.

Channels: `sales.realtime`, `inventory.updates`, `alerts.new`, `dashboard.metrics`.
Authentication: the JWT access token in the `token` query parameter (browsers cannot set
headers on a WebSocket). A missing or invalid token closes the connection with code 4401 when
authentication is required (or whenever a token is given and fails); with authentication off,
an anonymous connection watches the `tenant` query parameter's tenant (or the default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import anyio
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from core.bus import CHANNELS
from core.errors import RetailPulseError
from core.tenants import validate_tenant
from serving import auth
from serving.live import Client, LiveHub

router = APIRouter(tags=["live"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
MAX_MESSAGE_BYTES = 4096
READY_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def get_hub(websocket: WebSocket) -> LiveHub:
    """The application's hub, started on the first connection."""
    state = websocket.app.state
    hub = getattr(state, "live_hub", None)
    if hub is None:
        from core.services import get_endpoints

        hub = LiveHub(get_endpoints().kafka_bootstrap)
        state.live_hub = hub
    hub.start()
    return hub


async def _identify(websocket: WebSocket, token: str | None, tenant: str | None) -> Client:
    """The connection's tenant and store scope, from its token (or anonymous when allowed)."""
    rt = auth.runtime(websocket.app)  # the same settings snapshot as the HTTP routes
    if token:
        principal = await rt.verify_token(token)
        if tenant and tenant != principal.tenant and not principal.can("manage:tenants"):
            raise PermissionError(f"tenant {tenant!r} is not yours")
        return Client(tenant=tenant or principal.tenant, stores=principal.stores)
    if rt.auth_required:
        raise PermissionError("a token is required: connect to /ws?token=<access token>")
    backends = websocket.app.state.backends
    return Client(
        tenant=validate_tenant(tenant) if tenant else backends.default_tenant, stores=None
    )


def _reply(client: Client, message: dict[str, Any]) -> None:
    client.offer(message)


def _handle(client: Client, raw: str) -> None:
    """Act on one client message (subscribe / unsubscribe / ping); bad ones get an error."""
    if len(raw) > MAX_MESSAGE_BYTES:
        _reply(client, {"type": "error", "code": "MESSAGE_TOO_LARGE",
                        "message": f"messages are limited to {MAX_MESSAGE_BYTES} bytes"})  # fmt: skip
        return
    try:
        msg = json.loads(raw)
    except ValueError:
        _reply(client, {"type": "error", "code": "BAD_JSON", "message": "not a JSON object"})
        return
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "ping":
        _reply(client, {"type": "pong"})
        return
    if kind not in ("subscribe", "unsubscribe"):
        _reply(client, {"type": "error", "code": "BAD_TYPE",
                        "message": "type must be subscribe, unsubscribe or ping"})  # fmt: skip
        return
    channel = msg.get("channel")
    if channel not in CHANNELS:
        _reply(client, {"type": "error", "code": "UNKNOWN_CHANNEL",
                        "message": f"channel must be one of {', '.join(CHANNELS)}",
                        "channel": channel})  # fmt: skip
        return
    if kind == "subscribe":
        client.channels.add(channel)
    else:
        client.channels.discard(channel)
    _reply(client, {"type": f"{kind}d", "channel": channel, "channels": sorted(client.channels)})


async def _sender(websocket: WebSocket, client: Client) -> None:
    reported = 0
    while True:
        message = await client.queue.get()
        if client.dropped > reported:
            await websocket.send_json({"type": "dropped", "count": client.dropped - reported})
            reported = client.dropped
        await websocket.send_json(message)


@router.websocket("/ws")
async def live_updates(
    websocket: WebSocket,
    token: str | None = Query(default=None, description="JWT access token"),
    tenant: str | None = Query(default=None, description="Tenant (super admins; auth off)"),
) -> None:
    """Subscribe to live channels of your tenant (see the module docstring for messages)."""
    try:
        client = await _identify(websocket, token, tenant)
    except (PermissionError, RetailPulseError) as exc:
        code = CLOSE_FORBIDDEN if isinstance(exc, PermissionError) and token else CLOSE_UNAUTHORIZED
        reason = exc.message if isinstance(exc, RetailPulseError) else str(exc)
        await websocket.close(code=code, reason=reason[:120])
        return
    hub = get_hub(websocket)
    # Accept once the hub reads from the end of its topics: from then on nothing is missed.
    if not await anyio.to_thread.run_sync(hub.wait_ready, READY_TIMEOUT_S):
        log.warning("live hub not reading Kafka yet; accepting anyway")
    await websocket.accept()
    hub.register(client)
    sender = asyncio.create_task(_sender(websocket, client))
    try:
        while True:
            _handle(client, await websocket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        hub.unregister(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
