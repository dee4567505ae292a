"""The request-body limit (serving/limits.py): 413 in the envelope for a body past the limit,
whether its length is declared, understated or not sent at all (chunked); smaller bodies and
the integration API's larger limit pass (no services)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from core.settings import Settings, get_settings
from serving import envelope
from serving.app import create_api
from serving.deps import Backends
from serving.limits import BodyLimitMiddleware, Limit

LIMIT = 2048
BASKETS = "/api/v1/analytics/basket/analysis"
SYNC = "/api/v1/integrations/pos/sync"


def _app() -> tuple[FastAPI, list[int]]:
    """A bare app behind the envelope and the limit; `seen` records the body sizes it read."""
    app = FastAPI()
    seen: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        body = await request.body()
        seen.append(len(body))
        return envelope.ok(request, {"bytes": len(body)})

    app.add_middleware(
        BodyLimitMiddleware,
        default=Limit(LIMIT, "RETAILPULSE_MAX_BODY_BYTES"),
        by_prefix={"/big/": Limit(4 * LIMIT, "BIG")},
    )
    envelope.install(app)
    return app, seen


def _refused(resp, what: str, limit: int = LIMIT, setting: str = "RETAILPULSE_MAX_BODY_BYTES"):
    assert resp.status_code == 413, resp.text
    body = resp.json()
    assert body["success"] is False
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert what in body["error"]["message"]
    assert f"the limit is {limit:,} bytes ({setting})" in body["error"]["message"]
    assert body["error"]["details"] == {"limitBytes": limit}
    assert body["metadata"]["requestId"] == resp.headers["x-request-id"]


def test_a_body_within_the_limit_reaches_the_route() -> None:
    app, seen = _app()
    resp = TestClient(app).post("/echo", content=b"x" * LIMIT)
    assert resp.status_code == 200 and resp.json()["data"] == {"bytes": LIMIT}
    assert seen == [LIMIT]


def test_a_declared_length_past_the_limit_is_413_before_the_route_runs() -> None:
    app, seen = _app()
    resp = TestClient(app).post("/echo", content=b"x" * (LIMIT + 1))
    _refused(resp, f"{LIMIT + 1:,} bytes declared")
    assert seen == []


def test_a_chunked_body_past_the_limit_is_413() -> None:
    app, seen = _app()

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    resp = TestClient(app).post("/echo", content=chunks())
    _refused(resp, f"more than {LIMIT:,} bytes sent")
    assert seen == []  # the route never got the body


def test_an_understated_content_length_does_not_get_past_the_limit() -> None:
    app, seen = _app()
    resp = TestClient(app).post("/echo", content=b"z" * 5000, headers={"content-length": "10"})
    _refused(resp, f"more than {LIMIT:,} bytes sent")
    assert seen == []


def test_a_prefix_with_a_larger_limit_takes_it() -> None:
    app, _ = _app()

    @app.post("/big/echo")
    async def big(request: Request) -> dict:
        return envelope.ok(request, {"bytes": len(await request.body())})

    client = TestClient(app)
    assert client.post("/big/echo", content=b"x" * (3 * LIMIT)).json()["data"]["bytes"] == 3 * LIMIT
    _refused(
        client.post("/big/echo", content=b"x" * (5 * LIMIT)), "bytes declared", 4 * LIMIT, "BIG"
    )


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RETAILPULSE_MAX_BODY_BYTES", str(LIMIT))
    monkeypatch.setenv("RETAILPULSE_INTEGRATION_MAX_BYTES", str(4 * LIMIT))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_api_refuses_an_oversized_body_on_any_route(small_limits: None) -> None:
    client = TestClient(create_api(Backends(default_tenant="default")))
    # within the limit the route answers as usual (here: a body of the wrong shape)
    assert client.post(BASKETS, content=b"[]", headers={"content-type": "application/json"}).status_code == 422  # fmt: skip
    big = b"[" + b"0," * LIMIT + b"0]"
    _refused(client.post(BASKETS, content=big, headers={"content-type": "application/json"}),
             "bytes declared")  # fmt: skip


def test_integration_sync_routes_keep_their_larger_limit(small_limits: None) -> None:
    client = TestClient(create_api(Backends(default_tenant="default")))
    # past the general limit, within the integration one: the route validates it (no records)
    body = b'{"records": [], "batchId": "' + b"x" * (2 * LIMIT) + b'"}'
    resp = client.post(SYNC, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    resp = client.post(
        SYNC, content=b"x" * (5 * LIMIT), headers={"content-type": "application/json"}
    )
    _refused(resp, "bytes declared", 4 * LIMIT, "RETAILPULSE_INTEGRATION_MAX_BYTES")


def test_the_default_limit_is_one_mebibyte() -> None:
    assert Settings.model_fields["max_body_bytes"].default == 1024 * 1024
