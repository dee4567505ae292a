"""`retailpulse serve`, `retailpulse mlflow-ui` and `retailpulse demo`."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.panel import Panel

from core.ray_runtime import ensure_ray
from core.settings import get_settings
from pipelines.options import TenantOpt

console = Console()


def deploy(
    *, port: int | None = None, tenant: str | None = None, model_version: str | None = None
) -> str:
    """Deploy the Serve graph (blocks until healthy) and return the API base URL."""
    from ray import serve

    from features.store import project_for
    from serving.config import load_serve_config
    from serving.deployments import AppArgs, build_app

    cfg = load_serve_config(http_port=port)
    serve.start(
        http_options={"host": cfg.http_host, "port": cfg.http_port},
        logging_config={"log_level": "WARNING"},  # request logs stay in the Ray dashboard
    )
    app = build_app(AppArgs(feast_project=project_for(tenant), model_version=model_version))
    serve.run(
        app,
        name="retailpulse",
        route_prefix=cfg.route_prefix,
        logging_config={"log_level": "WARNING"},
    )
    return f"http://{cfg.http_host}:{cfg.http_port}"


def register(app: typer.Typer) -> None:
    """Mount serve / mlflow-ui / demo on the root app."""
    app.command("serve")(serve_cmd)
    app.command("mlflow-ui")(mlflow_ui)
    app.command("demo")(demo)


def serve_cmd(
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default from configs/serve.yaml).")
    ] = None,
    tenant: TenantOpt = None,
    model_version: Annotated[
        str | None,
        typer.Option(help="'champion' (default, from configs/serve.yaml) or a version number."),
    ] = None,
) -> None:
    """Start Ray Serve: the FastAPI ingress and the segmenter, until Ctrl-C.

    Another --model-version redeploys the segmenter with new replicas (a rolling update).
    """
    dashboard = ensure_ray(dashboard=True)
    base = deploy(port=port, tenant=tenant, model_version=model_version)
    _where(base, dashboard)
    _wait_forever()


def mlflow_ui(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Open the MLflow tracking UI and model registry on the warehouse's tracking store."""
    from training.registry import configure_mlflow

    uri = configure_mlflow()
    artifacts = get_settings().home_dir / "mlartifacts"
    console.print(f"MLflow UI on http://127.0.0.1:{port} (store {uri.split('@')[-1]})")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    raise typer.Exit(subprocess.call(cmd))


def _where(base: str, dashboard: str | None) -> None:
    lines = [
        f"API docs (OpenAPI):  {base}/docs",
        f"Segments:            {base}/api/v1/analytics/customers/segments",
        f"One customer:        {base}/api/v1/customers/<id>/segment",
        f"Ray dashboard:       {dashboard or 'see `ray status` on the cluster'}",
        "MLflow UI:           run `retailpulse mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    console.print(Panel("\n".join(lines), title="RetailPulse is serving"))


def _wait_forever() -> None:
    console.print("serving; press Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")


def _step(n: int, text: str) -> None:
    console.rule(f"[bold]{n}. {text}")


def demo(
    households: Annotated[
        int | None, typer.Option(min=1, help="Only the first N households (default: all).")
    ] = None,
    retrain: Annotated[
        bool, typer.Option(help="Tune and train even if a champion exists.")
    ] = False,
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
    from pipelines import cli, cli_features, cli_train
    from training.registry import load_champion

    started = time.perf_counter()
    tenant = get_settings().tenant

    _step(1, "services")
    ep = get_endpoints()
    cli.services_status()

    _step(2, "warehouse schema")
    migrate.upgrade()
    console.print(f"schema at revision {migrate.current()}")

    _step(3, "ingest Complete Journey")
    ingested = cli.ingest_completejourney(households=households, tenant=tenant, force=False)

    _step(4, "features (RFM in Postgres → Feast → Redis)")
    # New transactions mean new snapshots; after a skipped ingest the snapshots are current.
    has_rfm = rfm_time_range(tenant)[1] is not None
    cli_features.materialize(tenant=tenant, compute=not (ingested.skipped and has_rfm))

    _step(5, "train the segmenter (Ray Tune + MLflow)")
    with console.status("starting Ray"):
        dashboard = ensure_ray(dashboard=True)
    if load_champion() is not None and not retrain:
        console.print("a champion segmenter exists; skipping (use --retrain to tune again)")
    else:
        cli_train.segmenter(tenant=tenant)

    _step(6, "serve (Ray Serve + FastAPI)")
    with console.status("starting Serve"):
        base = deploy(port=port, tenant=tenant)
    customer = _sample_customer(ep.database_url, tenant)
    with httpx.Client(base_url=base, timeout=30) as http:
        for path in (
            "/api/v1/analytics/customers/segments",
            f"/api/v1/customers/{customer}/segment",
        ):
            reply = http.get(path)
            console.print(f"[bold]GET {path}[/] → {reply.status_code}")
            console.print_json(reply.text)
    console.print(f"demo finished in {time.perf_counter() - started:.0f}s")
    _where(base, dashboard)
    if keep_serving if keep_serving is not None else sys.stdin.isatty():
        _wait_forever()


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
        console.print(f"[bold red]error:[/] tenant {tenant} has no customer features to show")
        raise typer.Exit(1)
    return int(row[0])
