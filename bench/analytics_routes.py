"""Analytics routes on full Complete Journey: p50/p99 uncached and cached, beside the raw scan.

Needs an empty database and a Redis: `RETAILPULSE_DATABASE_URL=postgresql://…/fresh_db
RETAILPULSE_REDIS_URL=redis://…/10 RETAILPULSE_HOME=$(mktemp -d) python bench/analytics_routes.py`.
Loads all of Complete Journey (the ingest rebuilds the rollups inside its transaction: that
stage's time is the full rebuild), times an incremental refresh of one day, then calls each
route through the real app (httpx ASGI transport, in process; with a bearer token, as the
platform's default requires, unless `--anonymous`): uncached (the tenant's cache
generation is bumped before every call) and cached (the same request again), and times the
raw SQL scan each route replaces on the same connection (analytics/raw.py). Prints one JSON
object (DESIGN §5); `value` is the worst uncached p99 in ms, `baseline_value` the worst raw p50.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import gc
import json
import statistics
import time
from datetime import timedelta
from typing import Any

import httpx

from analytics import raw, rollups
from analytics.cache import invalidate
from core.db import connect
from core.events import Landed
from core.settings import get_settings


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50": _pct(samples, 0.5), "p99": _pct(samples, 0.99), "n": len(samples)}


def _ingest(tenant: str) -> dict[str, Any]:
    from core import migrate
    from pipelines.ingest import ingest_completejourney

    migrate.upgrade()
    summary = ingest_completejourney(tenant=tenant, force=True)
    with connect(autocommit=True) as conn:  # fresh partitions: no statistics, no visibility map
        conn.execute("VACUUM (ANALYZE)")  # (else autovacuum does it during the measurement)
        conn.execute("CHECKPOINT")
    return {k: round(v, 2) for k, v in summary.seconds.items()}


def _incremental(tenant: str, repeat: int = 3) -> float:
    with connect() as conn:
        last = conn.execute(
            "SELECT max(transaction_timestamp)::date FROM transactions WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()[0]
        stores = conn.execute(
            "SELECT array_agg(DISTINCT store_id) FROM transactions WHERE tenant_id = %s"
            " AND transaction_timestamp::date = %s",
            (tenant, last),
        ).fetchone()[0]
    times = []
    for _ in range(repeat):
        with connect() as conn:
            clock = time.perf_counter()
            rollups.refresh(
                conn,
                Landed(tenant=tenant, source="stream", first_day=last, last_day=last,
                       stores=frozenset(stores)),
            )  # fmt: skip
            times.append(time.perf_counter() - clock)
    return round(statistics.median(times), 3)


def _routes(last_day: Any) -> dict[str, tuple[str, str, dict | None]]:
    return {
        "realtime": ("GET", "/api/v1/analytics/sales/realtime", None),
        "product": ("GET", "/api/v1/analytics/products/1082185/performance", None),
        "comparison": ("GET", "/api/v1/analytics/stores/comparison?sort=growth&limit=20", None),
        "trends": ("GET", "/api/v1/analytics/trends?interval=day", None),
        "trends_department": ("GET", "/api/v1/analytics/trends?department=PRODUCE", None),
        "basket": ("POST", "/api/v1/analytics/basket/analysis", {"maxRules": 20}),
    }


def _raw_calls(tenant: str, last: Any) -> dict[str, Any]:
    start28, start91 = last - timedelta(days=27), last - timedelta(days=90)
    return {
        "realtime": lambda c: raw.realtime(c, tenant=tenant, day=last, stores=None),
        "product": lambda c: raw.product_weeks(
            c,
            tenant=tenant,
            product_id=1082185,
            first_week=last - timedelta(weeks=13),
            last_week=last,
            stores=None,
        ),  # fmt: skip
        "comparison": lambda c: raw.store_totals(
            c, tenant=tenant, start=start28, end=last, stores=None
        ),  # fmt: skip
        "trends": lambda c: raw.daily_totals(
            c, tenant=tenant, start=start91, end=last, stores=None
        ),  # fmt: skip
        "trends_department": lambda c: raw.category_days(
            c,
            tenant=tenant,
            start=start91,
            end=last,
            stores=None,
            department="PRODUCE",
            category=None,
        ),  # fmt: skip
        "basket": lambda c: raw.category_pairs(
            c, tenant=tenant, start=start28, end=last, min_count=118
        ),  # fmt: skip
    }


def _token(tenant: str) -> str:
    """An analyst's access token (the account is created for this run)."""
    import uuid

    from accounts import jobs

    email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", uuid.uuid4().hex
    jobs.create_admin(email=email, password=password, tenant=tenant, name="analytics bench")
    return jobs.issue_token(email=email, password=password, tenant=tenant).access_token


async def _measure(tenant: str, n: int, cached_n: int, anonymous: bool) -> dict[str, dict]:
    import os

    from serving.app import create_api
    from serving.deps import Backends

    os.environ["RETAILPULSE_AUTH_REQUIRED"] = "false" if anonymous else "true"
    os.environ.setdefault("RETAILPULSE_RATE_LIMIT_USER", "1000000")  # capacity, not throttling
    os.environ.setdefault("RETAILPULSE_RATE_LIMIT_IP", "1000000")
    get_settings.cache_clear()
    headers = {} if anonymous else {"Authorization": f"Bearer {_token(tenant)}"}
    app = create_api(Backends(default_tenant=tenant))
    landed = Landed(tenant=tenant, source="bench")
    out: dict[str, dict] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers
    ) as client:
        for method, url, body in _routes(None).values():  # every route's code paths warm
            for _ in range(3):
                invalidate(landed)
                await client.request(method, url, json=body)
        # As a Serve replica in steady state (Serve freezes the heap after start-up): what
        # start-up and the first calls left behind leaves the GC's scans. Without this, young
        # collections kept re-scanning it and a cached call measured 3-5 ms instead of ~1.6.
        gc.collect()
        gc.freeze()
        for name, (method, url, body) in _routes(None).items():
            uncached, cached = [], []
            for _ in range(n):
                invalidate(landed)
                clock = time.perf_counter()
                r = await client.request(method, url, json=body)
                uncached.append((time.perf_counter() - clock) * 1000)
                assert r.status_code == 200 and r.headers["x-cache"] == "MISS", r.text[:300]
            for _ in range(cached_n):
                clock = time.perf_counter()
                r = await client.request(method, url, json=body)
                cached.append((time.perf_counter() - clock) * 1000)
                assert r.headers["x-cache"] == "HIT"
            out[name] = {"uncached_ms": _stats(uncached), "cached_ms": _stats(cached)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="uncached calls per route")
    parser.add_argument("--cached", type=int, default=300, help="cached calls per route")
    parser.add_argument("--raw", type=int, default=5, help="raw scans per route")
    parser.add_argument("--skip-ingest", action="store_true", help="data already loaded")
    parser.add_argument(
        "--anonymous", action="store_true", help="no bearer token (RETAILPULSE_AUTH_REQUIRED=false)"
    )
    args = parser.parse_args()
    tenant = get_settings().tenant
    stages = {} if args.skip_ingest else _ingest(tenant)
    incremental = _incremental(tenant)
    routes = asyncio.run(_measure(tenant, args.n, args.cached, args.anonymous))
    with connect(autocommit=True) as conn:
        last = conn.execute(
            "SELECT max(day) FROM sales_daily WHERE tenant_id = %s", (tenant,)
        ).fetchone()[0]
        for name, call in _raw_calls(tenant, last).items():
            call(conn)  # warm
            times = []
            for _ in range(args.raw):
                clock = time.perf_counter()
                call(conn)
                times.append((time.perf_counter() - clock) * 1000)
            raw_stats = _stats(times)
            routes[name]["raw_scan_ms"] = raw_stats
            routes[name]["ratio_p50"] = round(
                raw_stats["p50"] / max(routes[name]["uncached_ms"]["p50"], 1e-6), 1
            )
    worst = max(r["uncached_ms"]["p99"] for r in routes.values())
    worst_raw = max(r["raw_scan_ms"]["p50"] for r in routes.values())
    print(json.dumps({
        "figure": "analytics_routes",
        "data": "completejourney (2,469 households, 1.47M line items)",
        "n": args.n,
        "value": worst,
        "unit": "ms (worst uncached p99 over routes)",
        "baseline": "raw SQL scan of the base tables (analytics/raw.py), same run",
        "baseline_value": worst_raw,
        "ratio": round(worst_raw / worst, 1) if worst else None,
        "p50": max(r["uncached_ms"]["p50"] for r in routes.values()),
        "p99": worst,
        "cached_p99_worst": max(r["cached_ms"]["p99"] for r in routes.values()),
        "authenticated": not args.anonymous,
        "rollup_full_rebuild_s": stages.get("rollups"),
        "rollup_incremental_one_day_s": incremental,
        "ingest_stages_s": stages,
        "routes": routes,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
