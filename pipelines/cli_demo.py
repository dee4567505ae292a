"""`retailpulse demo`: the whole platform end to end, printing only the product's own output."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import httpx
import typer

from core.errors import RetailPulseError
from core.settings import get_settings
from pipelines.console import console
from pipelines.logs import log_to_file

T = TypeVar("T")


class StepFailed(Exception):
    pass


def _step(n: int | str, text: str, log_path: Any, fn: Callable[[], T]) -> T:
    """Run one demo step; a failure prints one line and where the full log is."""
    import logging

    console.rule(f"[bold]{n}. {text}")
    try:
        return fn()
    except (typer.Exit, KeyboardInterrupt):
        raise
    except RetailPulseError as exc:
        logging.getLogger("retailpulse.demo").exception("step %s failed", n)
        console.print(f"[bold red]error:[/] step {n} ({text}): {exc.message}")
    except Exception as exc:
        logging.getLogger("retailpulse.demo").exception("step %s failed", n)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        console.print(
            f"[bold red]error:[/] step {n} ({text}) failed: {type(exc).__name__}: {reason}"
        )
    console.print(f"full log: {log_path}")
    raise typer.Exit(1)


SAMPLE_EXPORT_TENANT = "online-retail-sample"
STREAM_TENANT = "live-stream-sample"  # the replayed baskets get a warehouse of their own


def demo(
    households: Annotated[
        int | None, typer.Option(min=1, help="Only the first N households (default: all).")
    ] = None,
    retrain: Annotated[bool, typer.Option(help="Train again even if champions exist.")] = False,
    keep_serving: Annotated[
        bool | None,
        typer.Option(help="Keep serving after the demo (default: only in a terminal)."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port of the API.")] = None,
) -> None:
    """The whole platform end to end: services, warehouse, features, training, serving."""
    from core import migrate
    from core.services import get_endpoints
    from features.store import rfm_time_range
    from pipelines import cli_features, cli_ingest, cli_services, cli_train
    from pipelines.cli_serve import wait_forever, where
    from pipelines.import_report import demo_file_import
    from pipelines.jobs.serve import deploy, write_serving_record
    from training import registry
    from training.specs import MODELS

    started = time.perf_counter()
    tenant = get_settings().tenant
    log_path = log_to_file("demo")  # main() already captured stderr into it
    console.print(f"RetailPulse demo (tenant {tenant}); full log: {log_path}")

    def services() -> Any:
        ep = get_endpoints()
        cli_services.services_status()
        return ep

    ep = _step(1, "services", log_path, services)

    def schema() -> None:
        migrate.upgrade()
        console.print(f"schema at revision {migrate.current()}")

    _step(2, "warehouse schema", log_path, schema)
    # A second demo (every champion already registered) starts Ray and deploys the serving
    # graph now, in the background, while the data steps run: Serve's start-up (replicas
    # loading seven models) is the longest step of a second run and needs none of them.
    early = None if retrain else _serve_early(tenant, port)
    ingested = _step(
        3,
        "ingest Complete Journey",
        log_path,
        lambda: cli_ingest.ingest_completejourney(
            households=households, tenant=tenant, force=False
        ),
    )
    # A retailer's own export: an online shop's invoice lines with the usual defects, through
    # configs/mappings/online_retail.yaml and the quality checks, into a tenant of its own.
    _step(
        "3b",
        "import a retailer's export (CSV + mapping) with its quality report",
        log_path,
        lambda: demo_file_import(tenant=SAMPLE_EXPORT_TENANT),
    )
    # New transactions mean new feature rows; after a skipped ingest the tables are current.
    has_features = rfm_time_range(tenant)[1] is not None
    _step(
        4,
        "features (SQL in Postgres → Feast → Redis)",
        log_path,
        lambda: cli_features.materialize(
            tenant=tenant, compute=not (ingested.skipped and has_features)
        ),
    )

    def live_stream() -> None:
        from pipelines.jobs.stream import live_stream_demo

        r = live_stream_demo(baskets=300, rate=200, tenant=STREAM_TENANT)
        produced, consumed = r["produced"], r["consumed"]
        console.print(
            f"live stream (Kafka {ep.kafka_bootstrap}): {produced.baskets} baskets and "
            f"{produced.inventory} inventory updates sent; {consumed.baskets} new baskets "
            f"written, {consumed.duplicates} duplicates skipped, {consumed.rejected} rejected"
        )
        console.print(f"customer {r['customer_id']} online RFM before: {r['before']}")
        console.print(f"customer {r['customer_id']} online RFM after:  {r['after']}")

    _step("4b", "live stream: Kafka → warehouse → online store", log_path, live_stream)
    dashboard = early.dashboard if early is not None else _start_ray()

    def train(key: str) -> None:
        spec = MODELS[key]
        if registry.has_champion(spec, tenant) and not retrain:
            console.print(
                f"{spec.registered_name(tenant)} has a champion; skipping (--retrain trains again)"
            )
            return
        cli_train.COMMANDS[key](tenant=tenant, quick=True)

    for n, key in enumerate(cli_train.COMMANDS, start=5):
        _step(
            n, f"train the {MODELS[key].title} (Ray + MLflow)", log_path, lambda key=key: train(key)
        )
    n_serve = 5 + len(cli_train.COMMANDS)

    def serve_now() -> Any:
        if early is None:
            return deploy(port=port, tenant=tenant)
        with console.status("waiting for the serving graph started at step 2"):
            return early.deployed.result()

    served = _step(n_serve, "serve (Ray Serve + FastAPI)", log_path, serve_now)
    base = served.url

    def call_api() -> None:
        from pipelines.demo_platform import sign_in

        customer = _sample_customer(ep.database_url, tenant)
        with httpx.Client(base_url=base, timeout=60) as http:
            http.headers["Authorization"] = f"Bearer {sign_in(http, tenant)}"
            for path in (
                "/healthz",
                "/api/v1/analytics/customers/segments",
                f"/api/v1/customers/{customer}/segment",
                f"/api/v1/recommendations/products/{customer}?limit=5",
                "/api/v1/recommendations/promotions?limit=3",
            ):
                reply = http.get(path)
                console.print(f"[bold]GET {path}[/] → {reply.status_code}")
                console.print_json(reply.text)
            posts = _sample_posts(ep.database_url, tenant, customer)
            for path, body in posts:
                reply = http.post(path, json=body)
                console.print(f"[bold]POST {path}[/] {body} → {reply.status_code}")
                console.print_json(reply.text)
            store = next((b["storeId"] for _, b in posts if "storeId" in b), None)
            if store is not None:  # next best actions for an associate of the busiest store
                path = f"/api/v1/recommendations/actions/demo-associate?storeId={store}&limit=3"
                reply = http.get(path)
                console.print(f"[bold]GET {path}[/] → {reply.status_code}")
                console.print_json(reply.text)

    _step(n_serve + 1, "call the API", log_path, call_api)

    def tour() -> None:
        from pipelines.demo_platform import platform_tour

        platform_tour(base, tenant=tenant, stream_tenant=STREAM_TENANT)

    _step(
        n_serve + 2,
        "platform API: sign in, analytics, a live alert over WebSocket, PDF and Excel reports",
        log_path,
        tour,
    )
    console.print(f"demo finished in {time.perf_counter() - started:.0f}s")
    where(served, dashboard)
    write_serving_record(served, tenant=tenant, dashboard=dashboard)
    if keep_serving if keep_serving is not None else sys.stdin.isatty():
        wait_forever()


@dataclass
class _EarlyServe:
    dashboard: str | None
    deployed: Future  # of pipelines.jobs.serve.Served


def _start_ray() -> str | None:
    """Start (or join) Ray with the serving fast path's environment; the dashboard URL."""
    from core.ray_runtime import ensure_ray
    from pipelines.jobs.serve import use_serve_env
    from serving.config import load_serve_config

    with console.status("starting Ray"):
        use_serve_env(load_serve_config().direct_port)  # before Ray starts (the fast path)
        return ensure_ray(dashboard=True)


def _serve_early(tenant: str, port: int | None) -> _EarlyServe | None:
    """Start Ray and deploy the serving graph in a background thread when every model
    already has a champion (a second demo run); None when something must be trained first."""
    from pipelines.cli_train import COMMANDS
    from pipelines.jobs.serve import deploy
    from training import registry
    from training.specs import MODELS

    if not all(registry.has_champion(MODELS[key], tenant) for key in COMMANDS):
        return None
    url = _start_ray()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-serve")
    deployed = pool.submit(deploy, port=port, tenant=tenant)
    pool.shutdown(wait=False)  # the thread ends with the deployment
    console.print("every model has a champion: the serving graph is starting in the background")
    return _EarlyServe(dashboard=url, deployed=deployed)


def _sample_customer(database_url: str, tenant: str) -> int:
    """A real household with features: the most frequent shopper of the latest snapshot."""
    from core.db import connect

    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT customer_id FROM customer_rfm WHERE tenant_id=%s"
            " ORDER BY event_timestamp DESC, frequency DESC LIMIT 1",
            (tenant,),
        ).fetchone()
    if row is None:
        raise RetailPulseError(f"tenant {tenant} has no customer features to show")
    return int(row[0])


def _sample_posts(
    database_url: str, tenant: str, customer: int
) -> list[tuple[str, dict[str, Any]]]:
    """POST requests to show: churn risk of the sample customer and two others, the sales
    anomalies of the data's last four weeks, and a demand forecast for the busiest store's best
    sellers plus a product it rarely sells (answered by the flagged fallback)."""
    from datetime import timedelta

    from core.db import connect
    from features.store_daily import date_range

    posts: list[tuple[str, dict[str, Any]]] = []
    with connect(database_url) as conn:
        others = conn.execute(
            "SELECT customer_id FROM customers WHERE tenant_id = %s AND customer_id <> %s"
            " ORDER BY customer_id LIMIT 2",
            (tenant, customer),
        ).fetchall()
        posts.append(
            ("/api/v1/predictions/churn/analyze",
             {"customerIds": [customer, *(int(r[0]) for r in others)]})
        )  # fmt: skip
        span = date_range(conn, tenant=tenant)
        if span is not None:
            start = max(span[0], span[1] - timedelta(days=27))
            posts.append(
                ("/api/v1/predictions/anomalies/detect",
                 {"from": start.isoformat(), "to": span[1].isoformat()})
            )  # fmt: skip
        store = conn.execute(
            "SELECT store_id FROM store_product_weekly WHERE tenant_id = %s"
            " AND week >= (SELECT max(week) - 8 FROM store_product_weekly WHERE tenant_id = %s)"
            " GROUP BY store_id ORDER BY sum(units) DESC LIMIT 1",
            (tenant, tenant),
        ).fetchone()
        if store is None:
            return posts
        products = conn.execute(
            "SELECT product_id, count(*) FROM store_product_weekly WHERE tenant_id = %s"
            " AND store_id = %s AND week >= (SELECT max(week) - 16 FROM store_product_weekly"
            " WHERE tenant_id = %s) GROUP BY product_id ORDER BY sum(units) DESC",
            (tenant, store[0], tenant),
        ).fetchall()
        row = conn.execute(
            "SELECT campaign_id FROM campaign_households WHERE tenant_id = %s"
            " GROUP BY campaign_id ORDER BY count(*) DESC, campaign_id LIMIT 1",
            (tenant,),
        ).fetchone()
    campaign = int(row[0]) if row else None
    best = [int(p) for p, _ in products[:3]]
    rare = [int(p) for p, weeks in products if weeks == 1][:1]
    sid = str(store[0])
    body = {"storeId": sid, "productIds": best + rare, "horizon": 4}
    return [
        *posts,
        ("/api/v1/predictions/demand/forecast", body),
        ("/api/v1/predictions/inventory/optimize",
         {"storeId": sid, "productIds": best + rare, "leadTimeWeeks": 1, "reviewPeriodWeeks": 1}),
        ("/api/v1/recommendations/reorder", {"storeId": sid, "limit": 5}),
        ("/api/v1/predictions/pricing/elasticity", {"productIds": best}),
        ("/api/v1/recommendations/pricing",
         {"productIds": best, "objective": "revenue", "maxChangePct": 10}),
        *([("/api/v1/predictions/promotions/impact", {"campaignId": campaign})]
          if campaign is not None else []),
    ]  # fmt: skip
