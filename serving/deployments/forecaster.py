"""The demand forecaster deployment: rebuilds each pair's weekly history from its online row
and runs the served model as a plain torch / numpy path; too little history → the fallback.

History rule (docs/forecast-features.md): a store × product row carries its own week's units
and the 15 weeks before it; weeks after the row's week without a row sold 0. The origin is the
store's latest week with sales, so a pair last sold k weeks before it has k zero weeks at the
end of its history.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from features.catalog import HISTORY_WEEKS, LAG_FEATURES
from serving.deployments.base import ModelDeployment, blocking
from training.specs import FORECASTER

# Fewer weeks with sales than this in the last 16 → the mean of the last 4 weeks, flagged.
MIN_SALES_WEEKS = 4
MODEL_HORIZON = 8
FALLBACK = "mean of the last 4 weeks"


def history_of(row: dict[str, Any] | None, origin_week: int) -> np.ndarray:
    """The 16 weekly units ending at `origin_week` (oldest first) from one online row.

    The row holds lags 0..15 at its own week; lag j at the origin is lag j - (origin - week)
    at the row. Weeks the row does not cover after it sold 0; before it, nothing is known
    beyond its 16 weeks (0 as well, like the offline zero-fill rule).
    """
    history = np.zeros(HISTORY_WEEKS)
    if row is None or _missing(row.get("week")):
        return history
    gap = origin_week - int(row["week"])
    at_row = [row["units"], *(row[name] for name in LAG_FEATURES)]  # lag 0..15 at the row
    for j in range(HISTORY_WEEKS):
        k = j - gap
        if 0 <= k < HISTORY_WEEKS and not _missing(at_row[k]):
            history[HISTORY_WEEKS - 1 - j] = float(at_row[k])
    return history


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Forecaster(ModelDeployment):
    """One replica of the demand forecaster (all tenants; per-tenant registry versions).

    Units history comes from the online store (via the ingress). The promotion history and
    plan (display, mailer) and the discount depth of the last 16 weeks come from the warehouse
    in two indexed queries per request: the online row holds only its own week's values.
    """

    spec = FORECASTER

    def _covariates(
        self, tenant: str, store_id: str, product_ids: list[int], origin: int, bundle: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """([n, 16, C] history, [n, 8, G] plan) of the covariates the bundle reads."""
        past_names, future_names = bundle.covariates, bundle.future_covariates
        if not past_names and not future_names:
            return None, None
        first, last = origin - HISTORY_WEEKS + 1, origin + MODEL_HORIZON
        index = {pid: i for i, pid in enumerate(product_ids)}
        weeks = np.arange(first, last + 1)
        cube = {
            name: np.zeros((len(product_ids), len(weeks))) for name in {*past_names, *future_names}
        }
        conn = self._connection()
        placements = conn.execute(
            "SELECT product_id, week, (display_location <> '0')::int, (mailer_location <> '0')::int"
            " FROM promotion_placements WHERE tenant_id = %s AND store_id = %s"
            " AND product_id = ANY(%s) AND week BETWEEN %s AND %s",
            (tenant, store_id, product_ids, first, last),
        ).fetchall()
        for pid, week, display, mailer in placements:
            for name, value in (("display", display), ("mailer", mailer)):
                if name in cube:
                    cube[name][index[pid], week - first] = value
        weekly = [n for n in cube if n not in ("display", "mailer")]
        if weekly:
            cols = ", ".join(f"{n}::float8" for n in weekly)
            rows = conn.execute(
                f"SELECT product_id, week, {cols} FROM store_product_weekly"
                " WHERE tenant_id = %s AND store_id = %s AND product_id = ANY(%s)"
                " AND week BETWEEN %s AND %s",
                (tenant, store_id, product_ids, first, origin),
            ).fetchall()
            for pid, week, *values in rows:
                for name, value in zip(weekly, values, strict=True):
                    cube[name][index[pid], week - first] = value or 0.0
        h = HISTORY_WEEKS
        past = np.stack([cube[n][:, :h] for n in past_names], axis=-1) if past_names else None
        future = np.stack([cube[n][:, h:] for n in future_names], axis=-1) if future_names else None
        return past, future

    @blocking
    def forecast(self, tenant: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """Forecasts for the request the ingress assembled; None without a model."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        horizon = int(request["horizon"])
        items = request["items"]
        store = request["store"]
        # Forecasts start after the store's newest week, but never after the newest complete
        # week the model was trained to (a partial week would read as a sales drop).
        origin = min(int(store["last_week"]), int(bundle.window.get("last_week", 10**9)))
        histories = np.stack([history_of(item["weekly"], origin) for item in items])
        active = (histories > 0).sum(axis=1) >= MIN_SALES_WEEKS
        quantiles = np.zeros((len(items), horizon, 3))
        if active.any():
            rows = np.flatnonzero(active)
            static = {
                name: [_static_value(name, request["storeId"], items[i]) for i in rows]
                for name in bundle.static_names
            }
            past, future = self._covariates(
                tenant, request["storeId"], [items[i]["productId"] for i in rows], origin, bundle
            )
            full = bundle.predict(histories[active], static, origin, MODEL_HORIZON, past, future)
            quantiles[active] = full[:, :horizon]
        fallback = histories[:, -4:].mean(axis=1)
        weeks = [origin + h for h in range(1, horizon + 1)]
        starts = bundle.week_starts(weeks)
        forecasts = []
        for i, item in enumerate(items):
            weekly = item["weekly"]
            stamp = weekly.get("_event_timestamp") if weekly else None
            if active[i]:
                values = quantiles[i]
                method, reason = bundle.kind, None
            else:
                values = np.repeat(fallback[i], 3 * horizon).reshape(horizon, 3)
                sold = int((histories[i] > 0).sum())
                method = FALLBACK
                reason = (
                    f"{sold} week(s) with sales in the last {HISTORY_WEEKS} "
                    f"(the model needs {MIN_SALES_WEEKS})"
                )
            forecasts.append(
                {
                    "productId": item["productId"],
                    "method": method,
                    "fallback": not active[i],
                    "reason": reason,
                    "featureTimestamp": (
                        datetime.fromtimestamp(stamp, UTC).isoformat() if stamp else None
                    ),
                    "weeks": [
                        {
                            "week": week,
                            "weekStart": start,
                            "p10": round(float(values[h, 0]), 3),
                            "p50": round(float(values[h, 1]), 3),
                            "p90": round(float(values[h, 2]), 3),
                        }
                        for h, (week, start) in enumerate(zip(weeks, starts, strict=True))
                    ],
                }
            )
        return {
            "storeId": request["storeId"],
            "model": loaded.name,
            "modelVersion": loaded.version,
            "modelKind": bundle.kind,
            "originWeek": origin,
            "horizon": horizon,
            "forecasts": forecasts,
        }


def _static_value(name: str, store_id: str, item: dict[str, Any]) -> str:
    if name == "store_id":
        return store_id
    value = (item.get("attributes") or {}).get(name)
    return "" if _missing(value) else str(value)
