"""Feature jobs: compute feature tables in PostgreSQL, register them in Feast, load Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.settings import get_settings


def apply(tenant: str | None = None) -> list[str]:
    """`feast apply` of every feature view and service of the catalog; returns object names."""
    from features.store import apply_definitions

    return apply_definitions(tenant or get_settings().tenant)


def materialize(
    *,
    tenant: str | None = None,
    end: datetime | None = None,
    compute: bool = True,
    on_step: Any = None,
) -> dict[str, Any]:
    """Compute the tenant's feature tables (unless `compute` is False), apply the Feast
    definitions if they changed, and materialize every view into Redis up to `end`.

    `on_step(text)` is called before each step (a CLI shows it as a spinner).
    """
    from core.db import connect
    from features import store as feature_store
    from features.catalog import CUSTOMER_RFM, FEATURE_VIEWS
    from features.rfm import compute_customer_rfm, default_as_of

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    if end is not None and end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    counts: dict[str, Any] = {"tenant": tenant}
    database_url, _ = feature_store.service_urls()
    if compute:
        step(f"computing customer RFM snapshots for tenant {tenant}")
        with connect(database_url) as conn:
            cutoffs = default_as_of(conn, tenant=tenant)
            counts["rfm_rows"] = compute_customer_rfm(conn, tenant=tenant, as_of=cutoffs)
        counts["snapshots"] = len(cutoffs)
        counts.update(_compute_forecast_features(database_url, tenant, step))
        counts.update(_compute_model_features(database_url, tenant, step))
    step("checking the Feast registry")
    if feature_store.needs_apply(tenant):
        step(f"feast apply (project {feature_store.project_for(tenant)})")
        counts["applied"] = apply(tenant)
    ends: dict[str, str | None] = {}
    for spec in FEATURE_VIEWS.values():
        step(f"materializing {spec.name} into Redis")
        until = feature_store.materialize_view(spec, end, tenant=tenant)
        ends[spec.name] = until.isoformat() if until else None
    counts["materialized"] = ends
    until = ends.get(CUSTOMER_RFM.name)
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM customer_rfm"
            " WHERE tenant_id = %s AND event_timestamp <= %s",
            (tenant, until or datetime.now(UTC)),
        ).fetchone()
    counts["online_customers"] = row[0] if row else 0
    counts["end"] = until
    counts["project"] = feature_store.project_for(tenant)
    return counts


def _compute_forecast_features(database_url: str, tenant: str, step: Any) -> dict[str, Any]:
    """The store x product weekly tables of the forecaster (features/forecast.py)."""
    from core.db import connect
    from features.forecast import compute_forecast_features

    step(f"computing store x product weekly features for tenant {tenant}")
    with connect(database_url) as conn:
        return {"forecast": compute_forecast_features(conn, tenant=tenant)}


def _compute_model_features(database_url: str, tenant: str, step: Any) -> dict[str, Any]:
    """Store x day sales (anomaly detector) and churn snapshots (churn model)."""
    from core.db import connect
    from features.churn import churn_feature_set
    from features.churn_store import write_churn_snapshots
    from features.store_daily import compute_store_daily
    from training.churn_run import snapshot_times
    from training.datasets import warehouse_line_items

    step(f"computing store x day sales for tenant {tenant}")
    with connect(database_url) as conn:
        counts: dict[str, Any] = {"store_days": compute_store_daily(conn, tenant=tenant)}
    step(f"computing churn feature snapshots for tenant {tenant}")
    items, _ = warehouse_line_items(tenant, database_url)
    if items.empty:
        return counts
    snapshots, churn = [], {}
    for name, (week, as_of) in snapshot_times(items).items():
        built = churn_feature_set(items, feature_end_week=week)
        snapshots.append((as_of, built.frame))
        churn[name] = {"week": week, "as_of": as_of.isoformat(), "customers": len(built.frame),
                       "skipped_rows": built.skipped_rows, "filled": built.filled}  # fmt: skip
    with connect(database_url) as conn:
        churn["rows"] = write_churn_snapshots(conn, tenant=tenant, snapshots=snapshots)
    counts["churn"] = churn
    return counts
