"""`retailpulse features …`: register the Feast definitions and refresh the online store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from core.settings import get_settings
from pipelines.options import TenantOpt

console = Console()
app = typer.Typer(
    help="Feature store: compute customer RFM snapshots, feast apply, materialize to Redis.",
    no_args_is_help=True,
)


@app.command("apply")
def apply(tenant: TenantOpt = None) -> list[str]:
    """Register the entity, source, feature view and feature service in the Feast registry."""
    from features.store import apply_definitions, project_for

    tenant = tenant or get_settings().tenant
    with console.status(f"feast apply (project {project_for(tenant)}) …"):
        names = apply_definitions(tenant)
    console.print(f"applied {len(names)} objects to project {project_for(tenant)}: "
                  f"{', '.join(names)}")  # fmt: skip
    return names


@app.command("materialize")
def materialize(
    tenant: TenantOpt = None,
    end: Annotated[
        datetime | None,
        typer.Option(
            help="Materialize snapshots up to this time (UTC if no zone; default: newest)."
        ),
    ] = None,
    compute: Annotated[
        bool, typer.Option(help="Recompute the customer_rfm snapshots from transactions first.")
    ] = True,
) -> dict[str, int | str]:
    """Compute customer RFM snapshots, apply the definitions if needed, load Redis."""
    from core.db import connect
    from features import store as feature_store
    from features.rfm import compute_customer_rfm, default_as_of

    tenant = tenant or get_settings().tenant
    if end is not None and end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    counts: dict[str, int | str] = {"tenant": tenant}
    database_url, _ = feature_store.service_urls()
    if compute:
        with console.status(f"computing customer RFM snapshots for tenant {tenant} …"):
            with connect(database_url) as conn:
                cutoffs = default_as_of(conn, tenant=tenant)
                counts["rfm_rows"] = compute_customer_rfm(conn, tenant=tenant, as_of=cutoffs)
        counts["snapshots"] = len(cutoffs)
        console.print(f"customer_rfm: {counts['rfm_rows']} rows in {len(cutoffs)} snapshots")
    with console.status("checking the Feast registry …"):
        stale = feature_store.needs_apply(tenant)
    if stale:
        apply(tenant)
    with console.status("materializing customer_rfm_fv into Redis …"):
        until = feature_store.materialize(end, tenant=tenant)
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM customer_rfm"
            " WHERE tenant_id = %s AND event_timestamp <= %s",
            (tenant, until),
        ).fetchone()
    counts["online_customers"] = row[0] if row else 0
    counts["end"] = until.isoformat()
    console.print(f"online store: {counts['online_customers']} customers up to {counts['end']} "
                  f"(project {feature_store.project_for(tenant)})")  # fmt: skip
    return counts
