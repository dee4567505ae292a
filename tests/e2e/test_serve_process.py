"""`retailpulse serve` as an operator runs it: up, answering, then SIGTERM → a clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_serve_shuts_down_cleanly_on_sigterm(service_env, tmp_path) -> None:
    port, direct = free_port(), free_port()
    env = {
        **os.environ,
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(direct),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(direct + 20),
        "RETAILPULSE_HOME": str(tmp_path),  # its own serving.json and logs
    }
    cli = Path(sys.executable).parent / "retailpulse"
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        record = tmp_path / "serving.json"  # written once the app is up and its URL known
        while time.monotonic() < deadline and proc.poll() is None and not record.exists():
            time.sleep(1)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200, "serve did not come up"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert "Traceback" not in out
    assert not (tmp_path / "serving.json").exists()
