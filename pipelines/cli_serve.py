"""`retailpulse serve` and `retailpulse mlflow-ui`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.panel import Panel

from core.ray_runtime import ensure_ray
from core.settings import get_settings
from pipelines.console import console
from pipelines.jobs.serve import (
    Served,
    deploy,
    serving_record_path,
    use_serve_env,
    write_serving_record,
)
from pipelines.options import TenantOpt
from serving.config import load_serve_config


def serve_cmd(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="HTTP port (default from configs/serve.yaml)."),
    ] = None,
    tenant: TenantOpt = None,
    model_version: Annotated[
        list[str] | None,
        typer.Option(
            help="Pin a model version, MODEL=VERSION (e.g. segmenter=3); repeatable. "
            "Default: each model's champion (configs/serve.yaml)."
        ),
    ] = None,
) -> None:
    """Start Ray Serve: the FastAPI ingress and the model deployments, until Ctrl-C."""
    config = load_serve_config()
    pins: dict[str, str] = {}
    for item in model_version or []:
        model, sep, version = (part.strip() for part in item.partition("="))
        if not sep or not model or not version:
            raise typer.BadParameter(
                f"expected MODEL=VERSION, got {item!r}", param_hint="--model-version"
            )
        # checked before Ray starts: a pin of a model not served was ignored without a word
        if model not in config.models:
            raise typer.BadParameter(
                f"{item!r}: unknown model {model!r}; served: {', '.join(config.models)}",
                param_hint="--model-version",
            )
        if version != "champion" and not (version.isdigit() and int(version) >= 1):
            raise typer.BadParameter(
                f"{item!r}: the version is a registered version number (>= 1) or 'champion'",
                param_hint="--model-version",
            )
        pins[model] = version
    use_serve_env(config.direct_port)  # before Ray starts (the fast path)
    dashboard = ensure_ray(dashboard=True)
    served = deploy(port=port, tenant=tenant, model_versions=pins)
    write_serving_record(served, tenant=tenant, model_versions=pins, dashboard=dashboard)
    where(served, dashboard)
    wait_forever()


def mlflow_ui(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Open the MLflow tracking UI and model registry on the warehouse's tracking store."""
    from training.tracking import configure_mlflow

    uri = configure_mlflow()
    artifacts = get_settings().home_dir / "mlartifacts"
    console.print(f"MLflow UI on http://127.0.0.1:{port} (store {uri.split('@')[-1]})")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    raise typer.Exit(subprocess.call(cmd))


def where(served: Served, dashboard: str | None) -> None:
    base = served.url
    lines = [
        f"API (fast path):     {served.direct or 'off (RAY_SERVE_THROUGHPUT_OPTIMIZED unset)'}",
        f"API (Serve proxy):   {served.proxy}",
        f"API docs (OpenAPI):  {base}/docs",
        f"Segments:            {base}/api/v1/analytics/customers/segments",
        f"One customer:        {base}/api/v1/customers/<id>/segment",
        f"Demand forecast:     POST {base}/api/v1/predictions/demand/forecast",
        f"Recommendations:     {base}/api/v1/recommendations/products/<id>?limit=10",
        f"Churn risk:          POST {base}/api/v1/predictions/churn/analyze",
        f"Sales anomalies:     POST {base}/api/v1/predictions/anomalies/detect",
        f"Health:              {base}/healthz",
        "Sign in:             POST /api/v1/users/login (or `retailpulse users token`), then "
        "send `Authorization: Bearer <token>`"
        if get_settings().auth_required
        else "Authentication:      OFF (RETAILPULSE_AUTH_REQUIRED=false): anonymous calls accepted",
        f"Ray dashboard:       {dashboard or 'see `ray status` on the cluster'}",
        "MLflow UI:           run `retailpulse mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    console.print(Panel("\n".join(lines), title="RetailPulse is serving"))


def _stop_on_sigterm() -> None:
    """Turn SIGTERM (systemd, a container runtime, a supervisor) into the Ctrl-C path."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def wait_forever() -> None:
    """Block until Ctrl-C or SIGTERM, then shut Serve and Ray down cleanly (exit 0)."""
    _stop_on_sigterm()
    console.print("serving; press Ctrl-C (or send SIGTERM) to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping: draining Serve and shutting Ray down")
        shutdown()


def shutdown() -> None:
    """Stop the Serve application and this process's Ray (idempotent)."""
    import ray
    from ray import serve

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if ray.is_initialized():
            serve.shutdown()
    finally:
        ray.shutdown()
        serving_record_path().unlink(missing_ok=True)
    console.print("stopped")
