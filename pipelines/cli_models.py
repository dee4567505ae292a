"""`retailpulse models {list,show,promote}`: what the registry holds, and live promotion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.console import console
from pipelines.options import TenantOpt

app = typer.Typer(help="Inspect registered model versions and promote one.", no_args_is_help=True)
ModelArg = Annotated[
    str, typer.Argument(help="Model: segmenter, forecaster, recommender, anomaly or churn.")
]


def _spec(model: str) -> Any:
    from training.specs import get_spec

    try:
        return get_spec(model)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="MODEL") from None


@app.command("list")
def list_versions(
    model: Annotated[str | None, typer.Argument(help="One model (default: every model).")] = None,
    tenant: TenantOpt = None,
) -> dict[str, list[dict[str, Any]]]:
    """Registered versions per model: metric, evaluation window, champion, promotion note."""
    from core.settings import get_settings
    from training import registry
    from training.specs import MODELS

    tenant = tenant or get_settings().tenant
    specs = [_spec(model)] if model else list(MODELS.values())
    out = {}
    for spec in specs:
        rows = registry.versions(spec, tenant)
        out[spec.key] = rows
        table = Table(title=f"{spec.registered_name(tenant)} ({spec.metric}, "
                      f"{'higher' if spec.higher_is_better else 'lower'} is better)")  # fmt: skip
        for col in ("version", "", spec.metric, "registered", "note"):
            table.add_column(col, justify="right" if col in ("version", spec.metric) else "left")
        for r in rows:
            when = datetime.fromtimestamp(r["created"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            table.add_row(
                r["version"],
                "[bold green]champion[/]" if r["champion"] else "",
                f"{float(r['metric']):.4f}" if r["metric"] else "—",
                when,
                r["note"] or "",
            )
        if not rows:
            table.add_row("—", "", "", "", f"not trained yet: `{spec.train_command}`")
        console.print(table)
    return out


@app.command("show")
def show(model: ModelArg, tenant: TenantOpt = None) -> dict[str, Any]:
    """One model: its champion (version, metric, window, run), every version, and what the
    running application serves."""
    import httpx

    from core.settings import get_settings
    from pipelines.jobs.serve import read_serving_record
    from training import registry

    spec = _spec(model)
    tenant = tenant or get_settings().tenant
    rows = registry.versions(spec, tenant)
    champion = next((r for r in rows if r["champion"]), None)
    served = None
    running = read_serving_record()
    if running is not None:
        try:
            health = httpx.get(
                f"{running['direct'] or running['proxy']}/healthz",
                headers={"X-Tenant-ID": tenant},
                timeout=5,
            ).json()["data"]
            served = next((m for m in health["models"] if m["model"] == spec.key), None)
        except (httpx.HTTPError, KeyError, ValueError):
            served = None
    console.print(f"[bold]{spec.registered_name(tenant)}[/] — {spec.title}")
    console.print(f"  metric: {spec.metric} ({'higher' if spec.higher_is_better else 'lower'} "
                  "is better)")  # fmt: skip
    if champion is None:
        console.print(f"  no champion yet: `{spec.train_command}`")
    else:
        for key in ("version", "metric", "window", "run_id", "note"):
            if champion.get(key):
                console.print(f"  champion {key}: {champion[key]}")
    if running is None:
        console.print("  serving: no application running from this home (`retailpulse serve`)")
    else:
        version = served.get("version") if served else None
        console.print(f"  serving: v{version} at {running['direct'] or running['proxy']}")
    list_versions(model, tenant)
    return {"champion": champion, "versions": rows, "served": served}


@app.command("promote")
def promote(
    model: ModelArg,
    version: Annotated[int, typer.Argument(help="Registered version to serve as champion.")],
    tenant: TenantOpt = None,
    reload: Annotated[
        bool,
        typer.Option(
            help="Switch the running application (`retailpulse serve`) to the new champion "
            "now, in place (Serve `reconfigure`, no dropped requests)."
        ),
    ] = True,
) -> dict[str, Any]:
    """Make VERSION the champion and switch the running application to it, live."""
    from core.settings import get_settings
    from pipelines.jobs.serve import reload_running
    from training import registry

    result = registry.promote(_spec(model), tenant or get_settings().tenant, version)
    console.print(
        f"{result['name']}: champion is now v{result['version']}"
        + (f" (was v{result['previous']})" if result["previous"] else "")
    )
    if reload:
        with console.status("switching the running application"):
            running = reload_running()
        if running is None:
            console.print("no running application from this home: the next `retailpulse "
                          "serve` serves the new champion")  # fmt: skip
        else:
            console.print(f"the application at {running['direct'] or running['proxy']} "
                          "now serves the new champion")  # fmt: skip
        result["reloaded"] = running is not None
    return result
