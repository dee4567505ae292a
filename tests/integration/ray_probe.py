"""Run a Python snippet that starts its own Ray in a subprocess (the test session already has
one, `ray_session`) and read back the JSON it prints on a line starting with `PROBE `."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_probe(code: str, *, drop_env: tuple[str, ...] = (), timeout: int = 240) -> Any:
    """The `PROBE ` line's JSON of `code` run from the repo root, without RAY_ADDRESS and the
    variables starting with any of `drop_env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, proc.stderr[-3000:]
    return json.loads(line[len("PROBE ") :])
