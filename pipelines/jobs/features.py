"""Feature jobs: compute feature tables in PostgreSQL (incrementally from their watermarks, see
features/refresh.py), register them in Feast, load Redis."""

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
    full: bool = False,
    on_step: Any = None,
) -> dict[str, Any]:
    """Compute the tenant's feature tables (unless `compute` is False) — incrementally from
    their watermarks, or everything with `full` — apply the Feast definitions if they changed,
    and materialize every view into Redis up to `end` (Feast's incremental materialization:
    only rows newer than the view's last run).

    `on_step(text)` is called before each step (a CLI shows it as a spinner).
    """
    from core.db import connect
    from features import store as feature_store
    from features.catalog import CUSTOMER_RFM, FEATURE_VIEWS
    from features.refresh import refresh_features

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    if end is not None and end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    counts: dict[str, Any] = {"tenant": tenant}
    database_url, _ = feature_store.service_urls()
    if compute:
        weekly = {
            "forecast": lambda: _compute_forecast_features(database_url, tenant, step),
            "customer_churn_features": lambda: _compute_model_features(database_url, tenant, step),
        }
        with connect(database_url) as conn:
            refresh = refresh_features(
                conn, tenant=tenant, full=full, weekly_jobs=weekly, step=step
            )
        counts["refresh"] = refresh
        rfm = refresh["customer_rfm"]
        counts["rfm_rows"] = rfm["rows"]
        counts["snapshots"] = len(rfm.get("snapshots", []))
        for table in ("forecast", "customer_churn_features"):
            counts.update(refresh[table].get("result") or {})
        counts["store_days"] = refresh["store_daily_sales"]["rows"]
    step("checking the Feast registry")
    if feature_store.needs_apply(tenant):
        step(f"feast apply (project {feature_store.project_for(tenant)})")
        counts["applied"] = apply(tenant)
    ends: dict[str, str | None] = {}
    untouched = _untouched_tables(counts.get("refresh"))
    for spec in FEATURE_VIEWS.values():
        step(f"materializing {spec.name} into Redis")
        until = feature_store.materialize_view(
            spec, end, tenant=tenant, unchanged=spec.table in untouched
        )
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


# Feature tables written by each weekly job (features/refresh.py WEEKLY_TABLES).
_WEEKLY_JOB_TABLES = {
    "forecast": ("store_product_weekly", "product_attributes", "store_attributes"),
    "customer_churn_features": ("customer_churn_features",),
}


def _untouched_tables(refresh: dict[str, Any] | None) -> set[str]:
    """Feature tables this run did not write (their Feast views need no new materialization)."""
    if not refresh:
        return set()
    out = set()
    for name, done in refresh.items():
        if isinstance(done, dict) and done.get("mode") in ("current", "kept"):
            out.update(_WEEKLY_JOB_TABLES.get(name, (name,)))
    return out


def _compute_forecast_features(database_url: str, tenant: str, step: Any) -> dict[str, Any]:
    """The store x product weekly tables of the forecaster (features/forecast.py)."""
    from core.db import connect
    from features.forecast import compute_forecast_features

    step(f"computing store x product weekly features for tenant {tenant}")
    with connect(database_url) as conn:
        return {"forecast": compute_forecast_features(conn, tenant=tenant)}


def _compute_model_features(database_url: str, tenant: str, step: Any) -> dict[str, Any]:
    """Churn snapshots (churn model): the training cutoff and "now"."""
    from core.db import connect
    from features.churn import churn_feature_set
    from features.churn_store import write_churn_snapshots
    from training.churn_run import snapshot_times
    from training.datasets import warehouse_line_items

    counts: dict[str, Any] = {}
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
