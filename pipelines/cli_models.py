"""`retailpulse models {list,promote}`: what the registry holds, and an operator's promotion."""

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


@app.command("promote")
def promote(
    model: ModelArg,
    version: Annotated[int, typer.Argument(help="Registered version to serve as champion.")],
    tenant: TenantOpt = None,
) -> dict[str, Any]:
    """Make VERSION the champion (served versions that follow the alias switch within seconds)."""
    from core.settings import get_settings
    from training import registry

    result = registry.promote(_spec(model), tenant or get_settings().tenant, version)
    console.print(
        f"{result['name']}: champion is now v{result['version']}"
        + (f" (was v{result['previous']})" if result["previous"] else "")
    )
    return result
