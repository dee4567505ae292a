"""In-process latency of `POST /api/v1/predictions/inventory/optimize` beside the demand
forecast route it builds on (baseline), same store, products and weeks, same process.

Both run through `create_api` with the forecaster hosted in-process (no Ray), real Redis
online features and the real warehouse, called over ASGI (httpx, no sockets), interleaved.
The ratio is forecast p50 / inventory p50 (1.0 = the policy costs nothing on top). Needs a
materialized store and a trained forecaster (`retailpulse train forecaster --quick`); exits 2
otherwise. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

# This figure is the model-serving path; the cost of authentication is measured by
# bench/mixed_load.py. The app this bench builds takes anonymous calls.
os.environ["RETAILPULSE_AUTH_REQUIRED"] = "false"


async def _run(n: int, products: int) -> dict:
    import httpx
    import psycopg

    from core.services import get_endpoints
    from core.settings import get_settings
    from serving.app import create_api
    from serving.deployments.ingress import OnlineConfig, host_models, local_backends

    settings = get_settings()
    endpoints = get_endpoints(start=False)
    with psycopg.connect(endpoints.database_url) as conn:
        store, last = conn.execute(
            "SELECT store_id, max(week) FROM store_product_weekly WHERE tenant_id = %s"
            " GROUP BY store_id ORDER BY sum(units) DESC LIMIT 1",
            (settings.tenant,),
        ).fetchone()
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT product_id FROM store_product_weekly WHERE tenant_id = %s"
                " AND store_id = %s AND week > %s GROUP BY product_id"
                " ORDER BY sum(units) DESC LIMIT %s",
                (settings.tenant, store, last - 16, products),
            )
        ]
    hosted = host_models(["forecaster"], settings.tenant)
    online = OnlineConfig(
        redis_url=endpoints.redis_url,
        base_project=settings.feast_project,
        default_tenant=settings.tenant,
        serve_tenant=settings.tenant,
    )
    app = create_api(local_backends(hosted, online))
    transport = httpx.ASGITransport(app=app)
    inventory = ("/api/v1/predictions/inventory/optimize", {"storeId": store, "productIds": pids})
    forecast = (
        "/api/v1/predictions/demand/forecast",
        {"storeId": store, "productIds": pids, "horizon": 2},  # lead 1 + review 1 (defaults)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        first = await client.post(inventory[0], json=inventory[1])
        if first.status_code != 200:
            print(f"inventory route answered {first.status_code}: {first.text}", file=sys.stderr)
            raise SystemExit(2)
        for _ in range(10):  # warm-up
            for path, body in (inventory, forecast):
                await client.post(path, json=body)
        samples: dict[str, list[float]] = {"inventory": [], "forecast": []}
        for _ in range(n):
            for name, (path, body) in (("inventory", inventory), ("forecast", forecast)):
                start = time.perf_counter()
                r = await client.post(path, json=body)
                samples[name].append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.text

    def p(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]

    inv_p50 = statistics.median(samples["inventory"])
    base_p50 = statistics.median(samples["forecast"])
    return {
        "figure": "inventory_route_in_process",
        "data": f"store {store}, {len(pids)} best sellers, lead 1 + review 1 weeks, "
        f"forecaster {first.json()['data']['modelKind']} v{first.json()['data']['modelVersion']}",
        "n": n,
        "value": round(inv_p50, 3),
        "unit": "ms (p50 per request, in-process ASGI)",
        "baseline": "POST /api/v1/predictions/demand/forecast, same products and weeks",
        "baseline_value": round(base_p50, 3),
        "ratio": round(base_p50 / inv_p50, 3),
        "p50": round(inv_p50, 3),
        "p99": round(p(samples["inventory"], 0.99), 3),
        "baseline_p99": round(p(samples["forecast"], 0.99), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200, help="calls per route")
    parser.add_argument("--products", type=int, default=10, help="products per request")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_run(args.n, args.products))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
