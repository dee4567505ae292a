"""The demand forecaster deployment: rebuilds each pair's weekly history from its online row
and runs the served model as a plain torch / numpy path; too little history → the fallback.

History rule (docs/forecast-features.md): a store × product row carries its own week's units
and the 15 weeks before it; weeks after the row's week without a row sold 0. The origin is the
store's latest week with sales, so a pair last sold k weeks before it has k zero weeks at the
end of its history.
"""

from __future__ import annotations

import math
import time
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
FRESHNESS_S = 1.0  # how often a replica re-reads the tenant's feature watermarks
KEEP_S = 60.0  # the longest a replica keeps covariates (the promotion plan moves no watermark)
MAX_KEPT_PAIRS = 100_000  # pairs' covariates + answers kept per tenant (~1 KB each); more: anew


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


class _Kept:
    """Covariates and model answers one replica keeps for one tenant: valid for one loaded
    model version and one state of the tenant's features (their watermark), for at most
    `KEEP_S`."""

    def __init__(self, loaded: Any, token: Any, now: float) -> None:
        self.loaded, self.token, self.created, self.read_at = loaded, token, now, now
        # (store, product, origin week) -> ([16, C] history, [8, G] plan) in the bundle's order
        self.pairs: dict[tuple[str, int, int], tuple[np.ndarray | None, np.ndarray | None]] = {}
        # (store, product, origin week, units history, attributes) -> [8, 3] model quantiles
        self.answers: dict[tuple[Any, ...], np.ndarray] = {}

    def usable(self, loaded: Any, now: float) -> bool:
        return self.loaded is loaded and now - self.read_at < FRESHNESS_S


class Forecaster(ModelDeployment):
    """One replica of the demand forecaster (all tenants; per-tenant registry versions).

    Units history comes from the online store (via the ingress). The promotion history and
    plan (display, mailer) and the discount depth of the last 16 weeks come from the warehouse
    (the online row holds only its own week's values): two indexed queries for the pairs the
    model answers (a fallback pair reads nothing) that a replica has not read yet. They are kept
    per (store, product, origin week) for the loaded version while the tenant's feature
    watermarks stay put (checked at most every `FRESHNESS_S`), and for at most `KEEP_S` (the
    promotion plan is written by the ingest, which moves no watermark). A request whose pairs are all kept runs on the event loop, without a query.
    The model's answer for a pair is kept with them, keyed by everything else it reads (the
    units history and the attributes from the online store, the origin week), so the same
    inputs are not run through the model twice; new sales change the key.
    """

    spec = FORECASTER

    def __init__(self, default_tenant: str = "default") -> None:
        super().__init__(default_tenant)
        self._kept: dict[str, _Kept] = {}

    def _needs_warehouse(self, tenant: str, request: dict[str, Any]) -> bool:
        """True unless the covariates of every pair the model answers are kept and fresh
        (then the call runs on the event loop)."""
        loaded = self._loaded.get(tenant)
        kept = self._kept.get(tenant)
        if loaded is None or kept is None or not kept.usable(loaded, time.monotonic()):
            return True
        if not (loaded.model.covariates or loaded.model.future_covariates):
            return False
        origin = _origin(request, loaded.model)
        store = request["storeId"]
        return any(
            (store, item["productId"], origin) not in kept.pairs
            and _active(history_of(item["weekly"], origin))  # a fallback pair reads nothing
            for item in request["items"]
        )

    def _kept_for(self, tenant: str, loaded: Any) -> _Kept:
        """What the replica keeps for the tenant, started afresh when the version or the
        watermark moved, after `KEEP_S`, or past `MAX_KEPT_PAIRS`."""
        now = time.monotonic()
        kept = self._kept.get(tenant)
        if kept is not None and kept.usable(loaded, now):
            return kept
        token = self._watermark(tenant)
        if (
            kept is None
            or kept.loaded is not loaded
            or kept.token != token
            or (now - kept.created > KEEP_S or len(kept.pairs) + len(kept.answers) > MAX_KEPT_PAIRS)
        ):
            kept = _Kept(loaded, token, now)
            self._kept = {**self._kept, tenant: kept}
        kept.read_at = now
        return kept

    def _predict(
        self,
        kept: _Kept,
        store_id: str,
        items: list[dict[str, Any]],
        histories: np.ndarray,
        origin: int,
        past: np.ndarray | None,
        future: np.ndarray | None,
    ) -> np.ndarray:
        """[n, 8, 3] model quantiles of `items`; a pair whose inputs (history, attributes;
        its covariates are kept with the answers) were answered before is not run again."""
        bundle = kept.loaded.model
        static = {
            n: [_static_value(n, store_id, item) for item in items] for n in bundle.static_names
        }
        keys = [
            (store_id, item["productId"], origin, histories[i].tobytes(),
             tuple(static[n][i] for n in bundle.static_names))
            for i, item in enumerate(items)
        ]  # fmt: skip
        found = [kept.answers.get(key) for key in keys]
        todo = [i for i, answer in enumerate(found) if answer is None]
        if todo:
            fresh = bundle.predict(
                histories[todo], {n: [static[n][i] for i in todo] for n in static}, origin,
                MODEL_HORIZON, None if past is None else past[todo],
                None if future is None else future[todo],
            )  # fmt: skip
            for i, answer in zip(todo, fresh, strict=True):
                found[i] = kept.answers[keys[i]] = answer
        return np.stack(found)

    def _covariates(
        self, tenant: str, kept: _Kept, store_id: str, product_ids: list[int], origin: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """([n, 16, C] history, [n, 8, G] plan) of the covariates the bundle reads."""
        bundle = kept.loaded.model
        past_names, future_names = bundle.covariates, bundle.future_covariates
        if not past_names and not future_names:
            return None, None
        missing = [p for p in dict.fromkeys(product_ids) if (store_id, p, origin) not in kept.pairs]
        if missing:
            past, future = self._read_covariates(tenant, store_id, missing, origin, bundle)
            for i, pid in enumerate(missing):
                kept.pairs[(store_id, pid, origin)] = (
                    None if past is None else past[i],
                    None if future is None else future[i],
                )
        rows = [kept.pairs[(store_id, pid, origin)] for pid in product_ids]
        past = np.stack([r[0] for r in rows]) if past_names else None
        future = np.stack([r[1] for r in rows]) if future_names else None
        return past, future

    def _read_covariates(
        self, tenant: str, store_id: str, product_ids: list[int], origin: int, bundle: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The covariates of `product_ids` from the warehouse (two indexed queries)."""
        past_names, future_names = bundle.covariates, bundle.future_covariates
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

    @blocking(when=_needs_warehouse)
    def forecast(self, tenant: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """Forecasts for the request the ingress assembled; None without a model."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        horizon = int(request["horizon"])
        items = request["items"]
        origin = _origin(request, bundle)
        histories = np.stack([history_of(item["weekly"], origin) for item in items])
        active = _active(histories)
        quantiles = np.zeros((len(items), horizon, 3))
        kept = self._kept_for(tenant, loaded)
        if active.any():
            rows = np.flatnonzero(active)
            picked = [items[i] for i in rows]
            past, future = self._covariates(
                tenant, kept, request["storeId"], [item["productId"] for item in picked], origin
            )
            quantiles[rows] = self._predict(
                kept, request["storeId"], picked, histories[rows], origin, past, future
            )[:, :horizon]
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


def _active(histories: np.ndarray) -> Any:
    """Whether a [16] history (or each row of [n, 16]) has enough weeks with sales for the
    model; the others get the fallback."""
    return (histories > 0).sum(axis=-1) >= MIN_SALES_WEEKS


def _origin(request: dict[str, Any], bundle: Any) -> int:
    """Forecasts start after the store's newest week, but never after the newest complete
    week the model was trained to (a partial week would read as a sales drop)."""
    return min(int(request["store"]["last_week"]), int(bundle.window.get("last_week", 10**9)))


def _static_value(name: str, store_id: str, item: dict[str, Any]) -> str:
    if name == "store_id":
        return store_id
    value = (item.get("attributes") or {}).get(name)
    return "" if _missing(value) else str(value)
