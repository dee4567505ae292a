"""Signed webhook deliveries (core/webhooks.py) against a real local HTTP receiver."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from core import webhooks

SECRET = "s3cret-key-of-the-receiver"


class Receiver:
    """A local HTTP server answering the queued statuses in turn (then 200), keeping what came."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.extra = headers or {}
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                for k, v in outer.extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.close()


def test_signature_covers_timestamp_and_body() -> None:
    body = b'{"a":1}'
    sig = webhooks.sign(SECRET, 1_700_000_000, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert webhooks.verify(SECRET, "1700000000", body, sig, now=1_700_000_100)
    assert not webhooks.verify(SECRET, "1700000000", b'{"a":2}', sig, now=1_700_000_100)
    assert not webhooks.verify(SECRET, "1700000001", body, sig, now=1_700_000_100)
    assert not webhooks.verify("other", "1700000000", body, sig, now=1_700_000_100)
    # a replay long after the timestamp is refused even with a good signature
    assert not webhooks.verify(SECRET, "1700000000", body, sig, now=1_700_001_000)
    assert not webhooks.verify(SECRET, "not-a-time", body, sig)


def test_delivered_signed_on_first_try(receiver: Receiver) -> None:
    attempts = webhooks.deliver(receiver.url, {"event": "x", "n": 1}, SECRET, headers={"X-E": "x"})
    assert [(a.number, a.status, a.response_code) for a in attempts] == [(1, "sent", 200)]
    headers, body = receiver.got[0]
    assert json.loads(body) == {"event": "x", "n": 1}
    assert headers["x-e"] == "x" and headers["content-type"] == "application/json"
    ts, sig = headers["x-retailpulse-timestamp"], headers["x-retailpulse-signature"]
    assert webhooks.verify(SECRET, ts, body, sig)


def test_5xx_and_429_are_retried_with_growing_backoff() -> None:
    receiver = Receiver([500, 429, 200])
    waits: list[float] = []
    try:
        attempts = webhooks.deliver(receiver.url, {"n": 1}, SECRET, attempts=4, backoff=0.5,
                                    sleep=waits.append)  # fmt: skip
    finally:
        receiver.close()
    assert [(a.status, a.response_code) for a in attempts] == [
        ("failed", 500), ("failed", 429), ("sent", 200)
    ]  # fmt: skip
    assert waits == [0.5, 1.0]
    assert "HTTP 500" in (attempts[0].error or "")
    # every attempt is signed afresh and verifies
    assert all(webhooks.verify(SECRET, h["x-retailpulse-timestamp"], b,
                               h["x-retailpulse-signature"]) for h, b in receiver.got)  # fmt: skip


def test_retry_after_is_honoured() -> None:
    receiver = Receiver([503], headers={"Retry-After": "3"})
    waits: list[float] = []
    try:
        attempts = webhooks.deliver(receiver.url, b"{}", SECRET, backoff=0.1, sleep=waits.append)
    finally:
        receiver.close()
    assert [a.status for a in attempts] == ["failed", "sent"] and waits == [3.0]


def test_a_4xx_is_final_and_attempts_run_out() -> None:
    receiver = Receiver([404, 500, 500, 500])
    try:
        refused = webhooks.deliver(receiver.url, {}, SECRET, sleep=lambda s: None)
        failing = webhooks.deliver(receiver.url, {}, SECRET, attempts=3, sleep=lambda s: None)
    finally:
        receiver.close()
    assert [(a.response_code, a.retryable) for a in refused] == [(404, False)]
    assert [a.response_code for a in failing] == [500, 500, 500]
    assert all(a.status == "failed" for a in failing)


def test_unreachable_or_malformed_receivers_never_raise() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = webhooks.deliver(f"http://127.0.0.1:{port}/", {}, SECRET, attempts=2, timeout=1,
                            sleep=lambda s: None)  # fmt: skip
    assert [a.status for a in down] == ["failed", "failed"]
    assert all(a.retryable and a.response_code is None for a in down)
    assert "ConnectError" in (down[0].error or "")
    bad = webhooks.deliver("ftp://example.invalid/x", {}, SECRET, sleep=lambda s: None)
    assert len(bad) == 1 and bad[0].status == "failed" and not bad[0].retryable
