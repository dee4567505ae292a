"""Forecast accuracy: the forecaster's batch predictions against the units then sold.

Predictions are the `predictions` rows of model "forecaster" (pipelines/jobs/score.py): entity
"store:product", payload `{originWeek, method, fallback, weeks: [{week, weekStart, p10, p50,
p90}]}`. Actual units of a (store, product, week) are the sum of line quantities > 0 in the
warehouse, the same definition as `store_product_weekly.units` that the forecaster learns
from. A predicted week is checked only once the warehouse has sales (of any product, in any
store) in that week; a pair that sold nothing in such a week has actual 0.

Errors are p50 - actual: MAE is their mean absolute value; WAPE = sum |error| / sum actual;
MAPE is the mean of |error| / actual over rows with actual > 0; bias = sum error / sum actual
(positive: over-forecast); coverage is the share of actuals inside [p10, p90].
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

import psycopg

from reports.document import Chart, Column, Kpi, Section, Table
from reports.params import ForecastAccuracyParams, Period, resolve_period

Step = Callable[[str], None]
MODEL = "forecaster"
NO_PREDICTIONS = (
    "There are no forecaster predictions for tenant {tenant} yet: train a forecaster "
    "(`retailpulse train forecaster`) and score it (`retailpulse score forecasts`), then run "
    "this report again."
)


def versions(conn: psycopg.Connection, *, tenant: str) -> list[tuple[int, int, Any, str]]:
    """(version, rows, scored_at, run_id) of every stored forecaster version, newest last."""
    return conn.execute(
        "SELECT model_version, count(*), max(scored_at), max(run_id) FROM predictions"
        " WHERE tenant_id = %s AND model = %s GROUP BY model_version ORDER BY model_version",
        (tenant, MODEL),
    ).fetchall()


def predicted_weeks(conn: psycopg.Connection, *, tenant: str, version: int) -> list[dict]:
    """One row per series and predicted week of a version."""
    rows = conn.execute(
        "SELECT regexp_replace(p.entity, ':[^:]*$', ''), substring(p.entity FROM ':([^:]*)$'),"
        " (w->>'week')::int, w->>'weekStart', (w->>'p10')::float8, (w->>'p50')::float8,"
        " (w->>'p90')::float8, (p.payload->>'originWeek')::int,"
        " coalesce((p.payload->>'fallback')::boolean, false)"
        " FROM predictions p, jsonb_array_elements(p.payload->'weeks') w"
        " WHERE p.tenant_id = %s AND p.model = %s AND p.model_version = %s",
        (tenant, MODEL, version),
    ).fetchall()
    keys = ("store_id", "product_id", "week", "week_start", "p10", "p50", "p90", "origin",
            "fallback")  # fmt: skip
    out = []
    for r in rows:
        row = dict(zip(keys, r, strict=True))
        row["product_id"] = int(row["product_id"]) if str(row["product_id"]).isdigit() else None
        row["week_start"] = date.fromisoformat(row["week_start"]) if row["week_start"] else None
        out.append(row)
    return [r for r in out if r["product_id"] is not None]


def observed_weeks(conn: psycopg.Connection, *, tenant: str, weeks: Iterable[int]) -> set[int]:
    """The weeks among `weeks` in which the warehouse has any sale."""
    rows = conn.execute(
        "SELECT DISTINCT week FROM transactions WHERE tenant_id = %s AND week = ANY(%s)",
        (tenant, sorted(set(weeks))),
    ).fetchall()
    return {int(r[0]) for r in rows}


def actual_units(conn: psycopg.Connection, *, tenant: str, pairs: set[tuple[str, int]],
                 weeks: set[int]) -> dict[tuple[str, int, int], float]:  # fmt: skip
    """Units sold per (store, product, week) for the given pairs and weeks (absent: none)."""
    if not pairs or not weeks:
        return {}
    stores, products = zip(*sorted(pairs), strict=True)
    rows = conn.execute(
        "WITH pairs AS (SELECT * FROM unnest(%(stores)s::text[], %(products)s::bigint[])"
        " AS p(store_id, product_id))"
        " SELECT t.store_id, i.product_id, t.week, sum(i.quantity)"
        " FROM transaction_items i"
        " JOIN transactions t ON t.tenant_id = i.tenant_id AND t.transaction_id = i.transaction_id"
        " JOIN pairs p ON p.store_id = t.store_id AND p.product_id = i.product_id"
        " WHERE i.tenant_id = %(tenant)s AND t.tenant_id = %(tenant)s"
        " AND t.week = ANY(%(weeks)s) AND i.quantity > 0 GROUP BY 1, 2, 3",
        {
            "tenant": tenant,
            "stores": list(stores),
            "products": list(products),
            "weeks": sorted(weeks),
        },  # fmt: skip
    ).fetchall()
    return {(str(s), int(p), int(w)): float(u) for s, p, w, u in rows}


def metrics(rows: list[dict]) -> dict[str, float | None]:
    """MAE, WAPE, MAPE, bias and p10–p90 coverage of rows with `actual` and `p50`."""
    n = len(rows)
    if not n:
        return {"rows": 0, "actual": 0.0, "predicted": 0.0, "mae": None, "wape": None,
                "mape": None, "bias": None, "coverage": None}  # fmt: skip
    actual = sum(r["actual"] for r in rows)
    predicted = sum(r["p50"] for r in rows)
    abs_err = sum(abs(r["p50"] - r["actual"]) for r in rows)
    positive = [r for r in rows if r["actual"] > 0]
    inside = sum(1 for r in rows if r["p10"] <= r["actual"] <= r["p90"])
    return {
        "rows": n,
        "actual": actual,
        "predicted": predicted,
        "mae": abs_err / n,
        "wape": abs_err / actual if actual else None,
        "mape": (
            sum(abs(r["p50"] - r["actual"]) / r["actual"] for r in positive) / len(positive)
            if positive
            else None
        ),  # fmt: skip
        "bias": (predicted - actual) / actual if actual else None,
        "coverage": inside / n,
    }


def _grouped(rows: list[dict], key: Callable[[dict], Any]) -> list[tuple[Any, dict]]:
    groups: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return [(k, metrics(v)) for k, v in sorted(groups.items(), key=lambda kv: kv[0])]


_METRIC_COLUMNS = [
    Column(key="rows", label="Rows", kind="int"),
    Column(key="actual_units", label="Actual units", kind="float"),
    Column(key="predicted_units", label="Predicted units (p50)", kind="float"),
    Column(key="mae", label="MAE", kind="float"),
    Column(key="wape", label="WAPE", kind="pct"),
    Column(key="bias", label="Bias", kind="pct"),
    Column(key="coverage", label="p10–p90 coverage", kind="pct"),
]


def _metric_cells(m: dict) -> list[Any]:
    return [m["rows"], m["actual"], m["predicted"], m["mae"], m["wape"], m["bias"], m["coverage"]]


def forecast_accuracy(conn: psycopg.Connection, *, tenant: str, params: ForecastAccuracyParams,
                      step: Step) -> tuple[list[Section], Period | None]:  # fmt: skip
    """Sections of the forecast accuracy report and the period of predicted weeks checked."""
    step("forecaster predictions")
    stored = versions(conn, tenant=tenant)
    if not stored:
        return [
            Section(heading="Forecast accuracy", notes=[NO_PREDICTIONS.format(tenant=tenant)])
        ], None
    chosen = params.version or stored[-1][0]
    info = next((v for v in stored if v[0] == chosen), None)
    if info is None:
        have = ", ".join(str(v[0]) for v in stored)
        note = f"Forecaster version {chosen} has no stored predictions (stored: {have})."
        return [Section(heading="Forecast accuracy", notes=[note])], None
    rows = predicted_weeks(conn, tenant=tenant, version=chosen)
    starts = [r["week_start"] for r in rows if r["week_start"]]
    period = resolve_period(params, (min(starts), max(starts)) if starts else None)
    if period is not None:
        rows = [
            r for r in rows if r["week_start"] and period.start <= r["week_start"] <= period.end
        ]
    if params.stores:
        wanted = set(params.stores)
        rows = [r for r in rows if r["store_id"] in wanted]
    head = (
        f"Forecaster version {chosen} (run {str(info[3])[:8]}), scored "
        f"{info[2]:%Y-%m-%d %H:%M} UTC: {info[1]:,} series stored."
    )
    if not rows:
        note = "No predicted weeks fall in the period and stores asked for."
        return [Section(heading="Forecast accuracy", notes=[head, note])], period
    step("actual units")
    weeks = {r["week"] for r in rows}
    seen = observed_weeks(conn, tenant=tenant, weeks=weeks)
    pending = sorted(weeks - seen)
    checked = [r for r in rows if r["week"] in seen]
    sold = actual_units(conn, tenant=tenant, pairs={(r["store_id"], r["product_id"])
                                                   for r in checked}, weeks=seen)  # fmt: skip
    for r in checked:
        r["actual"] = sold.get((r["store_id"], r["product_id"], r["week"]), 0.0)
        r["horizon"] = r["week"] - r["origin"] if r["origin"] is not None else None
    notes = [head]
    if pending:
        notes.append(
            f"{len(pending)} predicted week(s) ({', '.join(map(str, pending))}) have no sales in "
            "the warehouse yet, so they cannot be checked"
            + (": there is nothing to compare yet." if not checked else "; they are left out.")
        )
    if not checked:
        return [Section(heading="Forecast accuracy", notes=notes)], period
    notes.append(
        "Errors are p50 minus actual units. MAE: mean absolute error; WAPE: sum of absolute "
        "errors / actual units; MAPE: mean absolute percentage error over rows that sold; "
        "bias: (predicted - actual) / actual, positive means over-forecast; coverage: share "
        "of actuals within p10–p90."
    )
    step("metrics")
    overall = metrics(checked)
    kpis = [
        Kpi(
            label="Series",
            value=len({(r["store_id"], r["product_id"]) for r in checked}),
            kind="int",
        ),  # fmt: skip
        Kpi(label="Series-weeks checked", value=overall["rows"], kind="int"),
        Kpi(label="MAE (units)", value=overall["mae"], kind="float"),
        Kpi(label="WAPE", value=overall["wape"], kind="pct"),
        Kpi(label="MAPE", value=overall["mape"], kind="pct"),
        Kpi(label="Bias", value=overall["bias"], kind="pct"),
        Kpi(label="p10–p90 coverage", value=overall["coverage"], kind="pct"),
        Kpi(
            label="Fallback series (mean of last 4 weeks)",
            value=len({(r["store_id"], r["product_id"]) for r in checked if r["fallback"]}),
            kind="int",
        ),  # fmt: skip
    ]
    by_week = _grouped(checked, lambda r: (r["week"], r["week_start"]))
    by_horizon = _grouped([r for r in checked if r["horizon"] is not None], lambda r: r["horizon"])
    by_store = _grouped(checked, lambda r: r["store_id"])
    detail = sorted(checked, key=lambda r: (-abs(r["p50"] - r["actual"]), r["store_id"],
                                            r["product_id"], r["week"]))  # fmt: skip
    tables = [
        Table(
            name="by_week",
            title="Accuracy by week",
            columns=[
                Column(key="week", label="Week", kind="int"),
                Column(key="week_start", label="Week starting", kind="date"),
                *_METRIC_COLUMNS,
            ],
            rows=[[k[0], k[1], *_metric_cells(m)] for k, m in by_week],
        ),  # fmt: skip
        Table(
            name="by_horizon",
            title="Accuracy by weeks ahead",
            columns=[Column(key="weeks_ahead", label="Weeks ahead", kind="int"), *_METRIC_COLUMNS],
            rows=[[k, *_metric_cells(m)] for k, m in by_horizon],
        ),  # fmt: skip
        Table(
            name="by_store",
            title="Accuracy by store",
            columns=[Column(key="store_id", label="Store"), *_METRIC_COLUMNS],
            rows=[[k, *_metric_cells(m)] for k, m in by_store],
        ),  # fmt: skip
        Table(
            name="series_weeks",
            title="Series-weeks, largest error first",
            main=True,
            columns=[
                Column(key="store_id", label="Store"),
                Column(key="product_id", label="Product"),
                Column(key="week", label="Week", kind="int"),
                Column(key="week_start", label="Week starting", kind="date"),
                Column(key="p10", label="p10", kind="float"),
                Column(key="p50", label="p50", kind="float"),
                Column(key="p90", label="p90", kind="float"),
                Column(key="actual", label="Actual", kind="float"),
                Column(key="error", label="Error", kind="float"),
                Column(key="fallback", label="Fallback"),
            ],
            rows=[
                [
                    r["store_id"],
                    r["product_id"],
                    r["week"],
                    r["week_start"],
                    r["p10"],
                    r["p50"],
                    r["p90"],
                    r["actual"],
                    r["p50"] - r["actual"],
                    "yes" if r["fallback"] else "no",
                ]
                for r in detail
            ],
        ),  # fmt: skip
    ]
    chart = Chart(
        title="Predicted (p50) and actual units by week, all series",
        kind="line",
        x=[f"{k[0]}" for k, _ in by_week],
        series={
            "Actual": [m["actual"] for _, m in by_week],
            "Predicted p50": [m["predicted"] for _, m in by_week],
        },  # fmt: skip
        x_label="week",
        y_label="units",
    )
    return [Section(heading="Forecast accuracy", notes=notes, kpis=kpis, charts=[chart],
                    tables=tables)], period  # fmt: skip
