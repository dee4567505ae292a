"""The demo's platform tour against a served application (uvicorn, real services): an admin
signs in, reads analytics, a stream batch raises an alert that arrives over the WebSocket, and
the PDF and Excel reports download and open."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

# ~25 s each: in `make test-all` (the default run stays under 20 minutes on 2 cores)
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def served(sample_warehouse, monkeypatch):
    import uvicorn

    from core.settings import get_settings
    from serving.app import create_api
    from serving.deps import Backends

    monkeypatch.delenv("RETAILPULSE_AUTH_REQUIRED")  # the shipped default: tokens required
    get_settings.cache_clear()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_api(Backends()), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_tour_signs_in_alerts_live_and_writes_reports(served, monkeypatch):
    from openpyxl import load_workbook
    from pypdf import PdfReader

    from core.settings import get_settings
    from pipelines.demo_platform import platform_tour

    monkeypatch.setenv("RETAILPULSE_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("RETAILPULSE_ARGON2_MEMORY_KIB", "64")
    get_settings.cache_clear()
    seen = platform_tour(served, tenant="default", stream_tenant="tour-stream")
    assert httpx.get(f"{served}/api/v1/analytics/trends").status_code == 401  # tokens required
    alert = seen["alerts.new"]
    assert alert is not None, "no alert reached the WebSocket"
    assert alert["payload"]["tenant"] == "tour-stream" and alert["stores"] == ["demo-1"]
    assert seen["sales.realtime"]["payload"]["baskets"] >= 10
    assert any(a["subject"] == {"store_id": "demo-1"} for a in seen["alerts"]["items"])
    text = "".join(page.extract_text() for page in PdfReader(seen["pdf"]).pages)
    assert "Sales summary" in text
    book = load_workbook(seen["xlsx"])
    assert book.sheetnames and book[book.sheetnames[0]].max_row > 1
    # a second tour signs in with the kept password and raises a fresh alert (a new rule)
    again = platform_tour(served, tenant="default", stream_tenant="tour-stream")
    assert again["alerts.new"] is not None
