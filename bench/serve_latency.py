"""Route latency under load: Ray Serve (the ingress's direct port) vs plain uvicorn, same run.

Every model route is driven by `wrk` (a C load generator; `apt install wrk`) over loopback at
concurrency 1 and 8 for `--seconds` each: req/s, p50, p99 and errors. The baseline is the same
`create_api` with the same champions hosted in-process, served by plain uvicorn (uvloop,
httptools, `gc.freeze()` after start-up as Serve does) in a subprocess; the two targets are
measured interleaved, route by route, so the ratio survives a noisy machine. Routes repeat
one request, which a replica answers from what it keeps per model version and state of the
data (serving/deployments/forecaster.py, anomaly.py); `forecast_new_pairs` sends every request
once, over the recently sold store x product pairs that have no batch score: the on-the-fly
path (a warehouse read and the model for every pair); `forecast_scored_pairs` sends the pairs
batch-scored by the champion (`retailpulse score forecasts`), which the route answers from
their scores in Redis (each answer's `source` is checked before the runs; the row says what
share of the pairs came from the scores). Uses the
configured services and the tenant's champions (`make demo` first); exits 2 otherwise.
Prints one JSON object (DESIGN §5) with a row per route × concurrency.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# This figure is the model-serving path; the cost of authentication is measured by
# bench/mixed_load.py. The servers this bench starts (Ray workers inherit it) take anonymous calls.
os.environ["RETAILPULSE_AUTH_REQUIRED"] = "false"

from bench.wrk_runner import WRK_SCRIPT, run_wrk, wrk_failures  # noqa: E402  (after ROOT)

LOOKUP, GRAPH = "lookup", "graph"
GOALS = {LOOKUP: 2.0, GRAPH: 5.0}  # p50 at concurrency 1, ms (issue 7)


def _routes(tenant: str) -> list[dict[str, Any]]:
    """One real request per model route, on entities of the tenant's warehouse."""
    from core.db import connect
    from core.services import get_endpoints

    with connect(get_endpoints().database_url) as conn:
        customer = conn.execute(
            "SELECT customer_id FROM customer_rfm WHERE tenant_id=%s"
            " ORDER BY event_timestamp DESC, frequency DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        store = conn.execute(
            "SELECT store_id, array_agg(product_id ORDER BY units DESC) FROM ("
            " SELECT store_id, product_id, sum(units) AS units FROM store_product_weekly"
            " WHERE tenant_id = %s AND week >= (SELECT max(week) - 8 FROM store_product_weekly"
            " WHERE tenant_id = %s) GROUP BY store_id, product_id) t"
            " GROUP BY store_id ORDER BY sum(units) DESC LIMIT 1",
            (tenant, tenant),
        ).fetchone()
        span = conn.execute(
            "SELECT max(business_date) FROM store_daily_sales WHERE tenant_id = %s", (tenant,)
        ).fetchone()
        recent = conn.execute(
            "SELECT DISTINCT store_id, product_id FROM store_product_weekly WHERE tenant_id = %s"
            " AND week >= (SELECT max(week) - 8 FROM store_product_weekly WHERE tenant_id = %s)"
            " ORDER BY 1, 2",
            (tenant, tenant),
        ).fetchall()
    if customer is None or store is None:
        raise SystemExit("no features in the warehouse: run `make demo` first")
    scored = _scored_pairs(tenant)
    cid = int(customer[0])
    routes = [
        {"name": "segment", "kind": LOOKUP, "method": "GET",
         "path": f"/api/v1/customers/{cid}/segment"},
        {"name": "churn", "kind": LOOKUP, "method": "POST",
         "path": "/api/v1/predictions/churn/analyze", "body": {"customerIds": [cid]}},
        {"name": "recommendations", "kind": GRAPH, "method": "GET",
         "path": f"/api/v1/recommendations/products/{cid}?limit=10"},
        {"name": "forecast", "kind": GRAPH, "method": "POST",
         "path": "/api/v1/predictions/demand/forecast",
         "body": {"storeId": store[0], "productIds": [int(p) for p in store[1][:5]],
                  "horizon": 4}},
        {"name": "forecast_new_pairs", "kind": GRAPH, "method": "POST", "source": "live",
         "path": "/api/v1/predictions/demand/forecast",
         "bodies": _new_pair_bodies([p for p in recent if p not in scored])},
    ]  # fmt: skip
    if scored:
        routes.append(
            {"name": "forecast_scored_pairs", "kind": GRAPH, "method": "POST", "source": "batch",
             "path": "/api/v1/predictions/demand/forecast",
             "bodies": _store_bodies(sorted(scored))}
        )  # fmt: skip
    if span and span[0]:
        day = span[0].isoformat()
        routes.append(
            {"name": "anomalies", "kind": GRAPH, "method": "POST",
             "path": "/api/v1/predictions/anomalies/detect",
             "body": {"storeIds": [store[0]], "from": day, "to": day}}
        )  # fmt: skip
    return routes


def _scored_pairs(tenant: str) -> set[tuple[str, int]]:
    """The store x product pairs with a batch-scored forecast in Redis (the newest scoring)."""
    import redis

    from core.predictions import redis_key
    from core.services import get_endpoints

    client = redis.Redis.from_url(get_endpoints().redis_url)
    prefix = redis_key(tenant, "forecaster", "")
    try:
        keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    finally:
        client.close()
    pairs = (key[len(prefix) :].rsplit(":", 1) for key in keys)
    return {(store, int(product)) for store, product in pairs}


def _new_pair_bodies(pairs: list[tuple[str, int]], size: int = 5) -> list[dict[str, Any]]:
    """Forecast requests over every recently sold store x product pair, `size` a request, in
    a shuffled order: what a replica has not answered yet (the on-the-fly path)."""
    import random

    bodies = []
    for start in range(0, len(pairs) - size + 1, size):
        chunk = pairs[start : start + size]
        if len({store for store, _ in chunk}) == 1:
            bodies.append({"storeId": chunk[0][0], "productIds": [int(p) for _, p in chunk],
                           "horizon": 4})  # fmt: skip
    random.Random(7).shuffle(bodies)
    return bodies


def _store_bodies(pairs: list[tuple[str, int]], size: int = 5) -> list[dict[str, Any]]:
    """Forecast requests over `pairs`, up to `size` products of one store a request."""
    by_store: dict[str, list[int]] = {}
    for store, product in pairs:
        by_store.setdefault(store, []).append(int(product))
    return [
        {"storeId": store, "productIds": products[i : i + size], "horizon": 4}
        for store, products in sorted(by_store.items())
        for i in range(0, len(products), size)
    ]


def _check(url: str, route: dict[str, Any]) -> None:
    """One request must answer 200 (a 503 right after start-up, e.g. a first Redis call over
    its 50 ms timeout on a loaded machine, is retried a few times), from the path the route
    names (`source`: live or batch-scored forecasts)."""
    body = route["bodies"][-1] if route.get("bodies") else route.get("body")
    for _ in range(5):
        reply = httpx.request(route["method"], url + route["path"], json=body, timeout=60)
        if reply.status_code != 503:
            break
        time.sleep(1)
    if reply.status_code != 200:
        raise SystemExit(f"{route['name']}: {reply.status_code} {reply.text[:300]}")
    if route.get("source") == "live":
        sources = {f["source"] for f in reply.json()["data"]["forecasts"]}
        if sources != {"live"}:
            raise SystemExit(f"{route['name']}: answered from {sources}, not live")


def _batch_share(url: str, route: dict[str, Any]) -> float:
    """Share of the route's pairs answered from their batch scores (every body sent once)."""
    answered = batch = 0
    for body in route["bodies"]:
        reply = httpx.request(route["method"], url + route["path"], json=body, timeout=60)
        sources = [f["source"] for f in reply.json()["data"]["forecasts"]]
        answered, batch = answered + len(sources), batch + sources.count("batch")
    if batch == 0:
        raise SystemExit(
            f"{route['name']}: no pair was answered from its batch score (scored by another "
            "version, or the data moved since): run `retailpulse score forecasts` first"
        )
    return round(batch / answered, 3)


def uvicorn_main(port: int, tenant: str) -> None:
    """The baseline server: `create_api` with the champions in-process, plain uvicorn."""
    import gc

    import uvicorn

    from core.services import get_endpoints
    from core.settings import get_settings
    from serving.app import create_api
    from serving.config import load_serve_config
    from serving.deployments.ingress import (
        OnlineConfig,
        host_models,
        local_backends,
        reconfigure_hosted,
    )

    cfg = load_serve_config()
    keys = [k for k, o in cfg.models.items() if o.enabled]
    hosted = host_models(keys, tenant)
    reconfigure_hosted(hosted, {"models": {k: cfg.models[k].user_config() for k in keys}})
    settings = get_settings()
    online = OnlineConfig(
        redis_url=get_endpoints().redis_url,
        base_project=settings.feast_project,
        default_tenant=settings.tenant,
        serve_tenant=tenant,
        timeout_ms=cfg.online_timeout_ms,
    )
    app = create_api(local_backends(hosted, online))
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _promote_under_load(served: Any, route: dict[str, Any], tenant: str) -> dict[str, Any]:
    """wrk at 8 connections for 8 s while the app is redeployed with a new generation (what
    `retailpulse models promote` does): Serve calls `reconfigure`, models reload in place."""
    from pipelines.jobs.serve import deploy

    proxy_port = int(served.proxy.rsplit(":", 1)[1])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(method=route["method"], body=""))
    cmd = ["wrk", "-t", "2", "-c", "8", "-d", "8s", "-s", script.name,
           served.url + route["path"]]  # fmt: skip
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    started = time.perf_counter()
    deploy(port=proxy_port, tenant=tenant, generation=time.time_ns())
    reload_s = time.perf_counter() - started
    out, _ = load.communicate(timeout=60)
    os.unlink(script.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    failed = wrk_failures(out)
    return {"route": route["name"], "requests": total, "failed": failed,
            "reload_seconds": round(reload_s, 2), "goal_failed": 0}  # fmt: skip


def _wait(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--routes", nargs="*", help="only these routes (default: all)")
    parser.add_argument("--tenant", default=None)
    parser.add_argument("--proxy", action="store_true", help="also measure Serve's :8000 proxy")
    parser.add_argument(
        "--promote",
        action="store_true",
        help="also count failed requests while the running app reloads its models in place",
    )
    parser.add_argument("--uvicorn", type=int, help=argparse.SUPPRESS)  # the baseline's port
    args = parser.parse_args(argv)

    from core.services import free_port
    from core.settings import get_settings

    tenant = args.tenant or get_settings().tenant
    if args.uvicorn:
        uvicorn_main(args.uvicorn, tenant)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    routes = _routes(tenant)
    if args.routes:
        routes = [r for r in routes if r["name"] in args.routes]

    from pipelines.jobs.serve import deploy, use_serve_env
    from serving.config import load_serve_config

    port = free_port()
    baseline = subprocess.Popen(
        [sys.executable, __file__, "--uvicorn", str(port), "--tenant", tenant],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        use_serve_env(load_serve_config().direct_port)
        served = deploy(port=free_port(), tenant=tenant)
        if served.direct is None:
            raise SystemExit("Serve's direct ingress port did not answer")
        base = f"http://127.0.0.1:{port}"
        _wait(base)
        targets = {"uvicorn": base, "serve": served.direct}
        if args.proxy:
            targets["serve_proxy"] = served.proxy
        rows = []
        runs = 1 + len(args.concurrency)  # a warm-up and one run per concurrency, per target
        for route in routes:
            share = None
            for url in targets.values():
                _check(url, route)
                if route.get("source") == "batch":
                    share = _batch_share(url, route)
                run_wrk(url, route, 1, 2, (0, runs))  # warm-up
            for run, c in enumerate(args.concurrency, start=1):
                row = {"route": route["name"], "kind": route["kind"], "concurrency": c}
                if share is not None:
                    row["batch_share"] = share
                for name, url in targets.items():
                    row[name] = run_wrk(url, route, c, args.seconds, (run, runs))
                row["ratio"] = round(row["serve"]["rps"] / row["uvicorn"]["rps"], 3)
                if c == 1:
                    row["p50_goal_ms"] = GOALS[route["kind"]]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
        promotion = _promote_under_load(served, routes[0], tenant) if args.promote else None
    finally:
        baseline.terminate()
        baseline.wait(30)
    ratios = [r["ratio"] for r in rows]
    print(
        json.dumps(
            {
                "figure": "serve_latency",
                "data": f"tenant {tenant}'s champions and warehouse; wrk over loopback, "
                f"{args.seconds} s per run, concurrency {args.concurrency}",
                "n": len(rows),
                "value": min(ratios) if ratios else None,
                "unit": "worst req/s ratio Serve direct ingress / uvicorn",
                "baseline": "the same create_api + models in-process under plain uvicorn",
                "baseline_value": None,
                "ratio": min(ratios) if ratios else None,
                "goal": "ratio >= 0.6; p50 at c=1 <= 2 ms (lookup) / 5 ms (graph); "
                "p99 at c=8 <= 20 ms; 0 errors",
                "rows": rows,
                "promotion_under_load": promotion,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
