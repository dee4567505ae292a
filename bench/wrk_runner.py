"""Driving `wrk` (a C HTTP load generator) from the benches: one route's request (or a slice of
many request bodies, each sent once) at a concurrency, parsed into req/s, p50/p99 and failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from typing import Any

# Each run of a route with "bodies" sends its own slice of them once (each wrk thread every
# `stride`-th one), so no request repeats what the server answered before in this bench.
ROTATING_SCRIPT = """
local bodies = {{{bodies}}}
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local i = 0
function request()
  local k = (id or 0) + i * {stride}
  i = i + 1
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}},
                    bodies[(k % #bodies) + 1])
end
"""

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
"""


def run_wrk(
    url: str, route: dict[str, Any], connections: int, seconds: int, run: tuple[int, int] = (0, 1)
) -> dict[str, Any]:
    """Run wrk against one route; req/s, p50/p99 (ms) and errors. A route with "bodies" sends
    slice `run[0]` of `run[1]` of them, each body once."""
    threads = min(connections, 2)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if route.get("bodies"):
            part = len(route["bodies"]) // run[1]
            mine = route["bodies"][run[0] * part : (run[0] + 1) * part]
            quoted = ",".join("[[" + json.dumps(b) + "]]" for b in mine)
            script.write(ROTATING_SCRIPT.format(bodies=quoted, stride=threads))
        else:
            body = json.dumps(route.get("body", "")) if route.get("body") else ""
            script.write(WRK_SCRIPT.format(method=route["method"], body=body))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--latency", "-s", script.name, url + route["path"]]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {m.group(1): _ms(m.group(2), m.group(3)) for m in
           re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}  # fmt: skip
    kinds = wrk_failure_kinds(out)
    row = {"rps": round(rps, 1), "p50_ms": pct.get("50"), "p99_ms": pct.get("99"),
           "errors": sum(kinds.values())}  # fmt: skip
    if kinds:
        row["error_kinds"] = kinds  # which: a non-2xx answer or a socket error (and its kind)
    return row


def wrk_failure_kinds(out: str) -> dict[str, int]:
    """Failed requests in wrk's report by kind (non_2xx, connect, read, write, timeout);
    kinds that did not happen are left out."""
    kinds: dict[str, int] = {}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        kinds["non_2xx"] = int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        for name, count in zip(("connect", "read", "write", "timeout"), sock.groups(), strict=True):
            if int(count):
                kinds[name] = int(count)
    return kinds


def wrk_failures(out: str) -> int:
    """Failed requests in wrk's report: non-2xx answers plus socket errors."""
    return sum(wrk_failure_kinds(out).values())


def _ms(value: str, unit: str) -> float:
    return round(float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)
