"""Mixed load on the served platform: sign-ins, analytics, predictions and recommendations.

The application runs as `retailpulse serve` does (Ray Serve, the ingress's direct port) with
authentication required; every request but the sign-ins carries a bearer token of one of
`--users` analysts. The load is open-loop: requests are scheduled at a fixed rate and a
request's latency counts from its scheduled time (a server that falls behind shows it, no
coordinated omission), sent over keep-alive connections by a small asyncio HTTP/1.1 client
(cheap enough to leave the server most of the two cores). A ramp of short steps finds the
highest rate with 0 errors and the rate actually reached; that rate is then held for
`--seconds`. Errors are non-2xx answers and transport failures. Prints one JSON object (DESIGN
§5) with the rate and p50/p99 per route.

The bench raises the platform's abuse limits for its own run (per-IP sign-in throttle, per-user
and per-IP rate limits): it measures capacity, not throttling. Sign-ins use the default argon2id
cost (19 MiB, 2 passes, 1 lane). Needs the tenant's champions and warehouse (`make demo` first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "mixed-load bench password"
MIX = {"login": 0.02, "analytics": 0.38, "predictions": 0.30, "recommendations": 0.30}


class Connection:
    """One keep-alive HTTP/1.1 connection (Content-Length bodies only, as our app sends)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _raw(method: str, path: str, host: str, body: Any = None, token: str | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _requests(tenant: str, emails: list[str]) -> dict[str, list[tuple[str, str, Any]]]:
    """(name, method, path, body) per group: real entities of the tenant."""
    from bench.serve_latency import _routes
    from core.db import connect
    from core.services import get_endpoints

    model = {r["name"]: r for r in _routes(tenant)}
    with connect(get_endpoints().database_url) as conn:
        product = conn.execute(
            "SELECT product_id FROM product_weekly WHERE tenant_id = %s"
            " GROUP BY product_id ORDER BY sum(revenue) DESC LIMIT 1",
            (tenant,),
        ).fetchone()
    analytics = [
        ("realtime", "GET", "/api/v1/analytics/sales/realtime?by=store", None),
        ("comparison", "GET", "/api/v1/analytics/stores/comparison?limit=10", None),
        ("trends", "GET", "/api/v1/analytics/trends?interval=week", None),
    ]
    if product:
        analytics.append(("product", "GET",
                          f"/api/v1/analytics/products/{product[0]}/performance", None))  # fmt: skip
    return {
        "login": [
            ("login", "POST", "/api/v1/users/login", {"email": e, "password": PASSWORD})
            for e in emails
        ],  # fmt: skip
        "analytics": analytics,
        "predictions": [
            (n, model[n]["method"], model[n]["path"], model[n].get("body"))
            for n in ("segment", "churn", "forecast", "anomalies")
            if n in model
        ],
        "recommendations": [("recommendations", "GET", model["recommendations"]["path"], None)],
    }


def _users(tenant: str, n: int) -> list[str]:
    """`n` analysts of the tenant for this run (removed again by `_drop_users`)."""
    from accounts import passwords, repo
    from core.db import connect

    emails = []
    hashed = passwords.hash_password(PASSWORD)
    with connect(autocommit=True) as conn:
        for _ in range(n):
            email = f"bench-{uuid.uuid4().hex[:8]}@mixed-load.bench"
            repo.insert_user(conn, tenant=tenant, user_id=uuid.uuid4().hex, email=email,
                             name="mixed-load bench", role="analyst", store_ids=None,
                             hashed_password=hashed)  # fmt: skip
            emails.append(email)
    return emails


def _drop_users(tenant: str) -> None:
    from core.db import connect

    with connect(autocommit=True) as conn:
        conn.execute(
            "DELETE FROM users WHERE tenant_id = %s AND email LIKE %s",
            (tenant, "%@mixed-load.bench"),
        )


async def _tokens(base: str, tenant: str, emails: list[str]) -> list[str]:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        out = []
        for email in emails:
            r = await http.post("/api/v1/users/login", json={"email": email, "password": PASSWORD},
                                headers={"X-Tenant-ID": tenant})  # fmt: skip
            r.raise_for_status()
            out.append(r.json()["data"]["accessToken"])
        return out


async def _run(
    base: str,
    groups: dict[str, list],
    tokens: list[str],
    tenant: str,
    rate: float,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """Send `rate` req/s for `seconds`; per route latencies (ms, from the scheduled time)."""
    parts = urlsplit(base)
    host = f"{parts.hostname}:{parts.port}"
    rng = random.Random(7)
    names, weights = list(MIX), list(MIX.values())
    queue: asyncio.Queue = asyncio.Queue()
    lat: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    codes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def job() -> tuple[str, bytes]:
        group = rng.choices(names, weights)[0]
        name, method, path, body = rng.choice(groups[group])
        if group == "login":
            raw = _raw(method, path, host, body)
            raw = raw.replace(b"Connection:", f"X-Tenant-ID: {tenant}\r\nConnection:".encode())
        else:
            raw = _raw(method, path, host, body, rng.choice(tokens))
        return name, raw

    async def worker() -> None:
        conn = Connection(parts.hostname, parts.port)
        while True:
            item = await queue.get()
            if item is None:
                conn.close()
                return
            due, name, raw = item
            try:
                status = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                status = 0
            lat[name].append((time.perf_counter() - due) * 1000)
            codes[name][status] += 1
            if not 200 <= status < 300:
                errors[name] += 1

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - start < seconds:
        due_count = int((now - start) * rate) + 1
        while sent < due_count:
            name, raw = job()
            queue.put_nowait((start + sent / rate, name, raw))
            sent += 1
        await asyncio.sleep(0.002)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start

    import numpy as np

    per_route = {
        name: {
            "n": len(v),
            "p50_ms": round(float(np.percentile(v, 50)), 2),
            "p99_ms": round(float(np.percentile(v, 99)), 2),
            "errors": errors.get(name, 0),
            "statuses": dict(codes[name]),
        }
        for name, v in sorted(lat.items())
    }
    done = sum(len(v) for v in lat.values())
    every = [x for v in lat.values() for x in v]
    return {
        "target_rps": rate,
        "achieved_rps": round(done / elapsed, 1),
        "seconds": round(elapsed, 1),
        "requests": done,
        "errors": sum(errors.values()),
        "p99_ms": round(float(np.percentile(every, 99)), 2) if every else None,
        "routes": per_route,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="hold time at the found rate")
    parser.add_argument("--step-seconds", type=float, default=8, help="length of each ramp step")
    parser.add_argument("--rates", type=float, nargs="+",
                        default=[50, 100, 200, 300, 400, 600, 800, 1000])  # fmt: skip
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tenant", default=None)
    parser.add_argument(
        "--mix",
        nargs="*",
        metavar="GROUP=SHARE",
        help=f"override the mix (default {' '.join(f'{k}={v}' for k, v in MIX.items())})",
    )
    args = parser.parse_args(argv)
    for item in args.mix or []:
        group, _, share = item.partition("=")
        if group not in MIX:
            parser.error(f"--mix: unknown group {group!r}; one of {', '.join(MIX)}")
        MIX[group] = float(share)

    # measure capacity, not throttling; authentication as in production
    os.environ.update(
        RETAILPULSE_AUTH_REQUIRED="true",
        RETAILPULSE_LOGIN_IP_PER_MINUTE="1000000",
        RETAILPULSE_RATE_LIMIT_USER="100000000",
        RETAILPULSE_RATE_LIMIT_IP="100000000",
    )
    from core.services import free_port
    from core.settings import get_settings
    from pipelines.jobs.serve import deploy, use_serve_env
    from serving.config import load_serve_config

    get_settings.cache_clear()
    tenant = args.tenant or get_settings().tenant
    emails = _users(tenant, args.users)
    try:
        groups = _requests(tenant, emails)
        use_serve_env(load_serve_config().direct_port)
        served = deploy(port=free_port(), tenant=tenant)
        base = served.direct or served.proxy
        tokens = asyncio.run(_tokens(base, tenant, emails))
        ramp, best = [], None
        for rate in args.rates:
            step = asyncio.run(_run(base, groups, tokens, tenant, rate, args.step_seconds,
                                    args.connections))  # fmt: skip
            ramp.append({k: step[k] for k in ("target_rps", "achieved_rps", "errors", "p99_ms")})
            print(json.dumps(ramp[-1]), file=sys.stderr)
            if step["errors"] or step["achieved_rps"] < 0.95 * rate or step["p99_ms"] > 1000:
                break
            best = rate
        if best is None:
            raise SystemExit("even the lowest rate had errors or fell behind: see the ramp")
        held = asyncio.run(_run(base, groups, tokens, tenant, best, args.seconds,
                                args.connections))  # fmt: skip
    finally:
        _drop_users(tenant)
    print(
        json.dumps(
            {
                "figure": "mixed_load",
                "data": f"tenant {tenant}'s champions and warehouse (make demo); Ray Serve direct "
                f"ingress, auth required; mix {MIX}; open loop, {args.connections} keep-alive "
                "connections over loopback",
                "n": held["requests"],
                "value": held["achieved_rps"],
                "unit": f"req/s held for {args.seconds:.0f} s with {held['errors']} errors",
                "baseline": "the ramp (each step's rate, errors and p99)",
                "baseline_value": ramp,
                "ratio": None,
                "p99": held["p99_ms"],
                "held": held,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
