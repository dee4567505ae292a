"""`retailpulse features …`: compute feature tables, feast apply, materialize to Redis, and the
environment for Feast's own CLI on feature_repo/ (`features env`)."""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Annotated, Any

import typer

from core.settings import get_settings
from pipelines.console import console
from pipelines.jobs import features as jobs
from pipelines.options import TenantOpt

app = typer.Typer(
    help="Feature store: compute feature tables in PostgreSQL, feast apply, materialize to Redis.",
    no_args_is_help=True,
)


@app.command("apply")
def apply(tenant: TenantOpt = None) -> list[str]:
    """Register every entity, source, feature view and feature service in the Feast registry."""
    from features.store import project_for

    tenant = tenant or get_settings().tenant
    with console.status(f"feast apply (project {project_for(tenant)}) …"):
        names = jobs.apply(tenant)
    console.print(f"applied {len(names)} objects to project {project_for(tenant)}: "
                  f"{', '.join(names)}")  # fmt: skip
    return names


@app.command("materialize")
def materialize(
    tenant: TenantOpt = None,
    end: Annotated[
        datetime | None,
        typer.Option(help="Materialize rows up to this time (UTC if no zone; default: newest)."),
    ] = None,
    compute: Annotated[
        bool, typer.Option(help="Recompute the feature tables from transactions first.")
    ] = True,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Recompute every feature table from scratch (default: incremental)."
        ),
    ] = False,
) -> dict[str, Any]:
    """Compute the feature tables (incrementally: only what new data changed), apply, load
    Redis (only rows newer than the last run)."""
    with console.status("features …") as status:
        counts = jobs.materialize(
            tenant=tenant,
            end=end,
            compute=compute,
            full=full,
            on_step=lambda t: status.update(f"{t} …"),
        )
    if "rfm_rows" in counts:
        console.print(
            f"customer_rfm: {counts['rfm_rows']:,} rows in {counts['snapshots']} snapshots"
        )
    for table, rows in (counts.get("forecast") or {}).items():
        console.print(f"{table}: {rows:,} rows")
    for table, done in (counts.get("refresh") or {}).items():
        if isinstance(done, dict):
            console.print(f"{table}: {done['mode']} ({done.get('reason', '')})")
    for view, until in counts["materialized"].items():
        console.print(f"online store: {view} up to {until or '— (no rows)'}")
    console.print(f"{counts['online_customers']:,} customers online (project {counts['project']})")
    return counts


@app.command("env")
def env() -> dict[str, str]:
    """Print `export` lines that point Feast's own CLI at the running platform (default tenant).

    Use: eval "$(retailpulse features env)" && cd feature_repo && feast plan

    Then `feast feature-views list` and `feast ui -h 127.0.0.1` work too.

    Values: the live service endpoints and RETAILPULSE_* settings, as the platform uses them.
    """
    from features.store import feast_cli_env

    values = feast_cli_env()
    if any(c in values["RETAILPULSE_FEAST_PG_PASSWORD"] for c in '"\\'):
        # Feast substitutes the text into a double-quoted YAML string before parsing it
        typer.echo(
            'warning: the database password contains " or \\, which feature_store.yaml '
            "cannot carry: Feast's CLI would fail to log in with it",
            err=True,
        )
    # plain stdout (no rich markup or wrapping): the output is meant for `eval`
    typer.echo("\n".join(f"export {key}={shlex.quote(value)}" for key, value in values.items()))
    return values
