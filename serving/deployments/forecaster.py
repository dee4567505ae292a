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
from features.watermarks import FORECAST_STATE, state_token
from serving.deployments.base import ModelDeployment
from serving.deployments.forecast_batch import BATCH, LIVE, ScoredMeta, batch_answers, usable_meta
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
    model version and one state of the forecaster's inputs (`forecast_state`: the feature
    tables' watermark and the newest ingest), for at most `KEEP_S`."""

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

    A pair batch-scored by the served version on the inputs the replica reads now is answered
    from its score (serving/deployments/forecast_batch.py says when exactly), without the
    warehouse or the model. The others run live: units history comes from the online store
    (via the ingress); the promotion history and plan (display, mailer) and the discount depth
    of the model's look-back come from the warehouse (the online row holds only its own week's
    values): one indexed query for the pairs the model answers (a fallback pair reads nothing)
    that a replica has not read yet. They are kept per (store, product, origin week) for the
    loaded version while the state of the forecaster's inputs stays put (checked at most every
    `FRESHNESS_S`), and for at most `KEEP_S`. Requests run on the event loop and await their
    queries (a worker thread per request cost more than the query: the hop, and the GIL
    contended with the loop); a request whose pairs are all kept or batch-scored makes none.
    The model's answer for a pair is kept with them, keyed by everything else it reads (the
    units history and the attributes from the online store, the origin week), so the same
    inputs are not run through the model twice; new sales change the key.
    """

    spec = FORECASTER

    def __init__(self, default_tenant: str = "default") -> None:
        super().__init__(default_tenant)
        self._kept: dict[str, _Kept] = {}
        self._scored_meta: dict[str, ScoredMeta] = {}

    def _plan(self, tenant: str, kept: _Kept, request: dict[str, Any]) -> _Plan:
        """How each pair of the request is answered."""
        bundle = kept.loaded.model
        items = request["items"]
        origin = _origin(request, bundle)
        histories = np.stack([history_of(item["weekly"], origin) for item in items])
        names = bundle.static_names
        labels = [[_static_value(n, request["storeId"], item) for n in names] for item in items]
        scored: list[dict[str, Any] | None] = [None] * len(items)
        raws = request.get("scored")
        if raws:
            decoder = self._scored_meta.setdefault(tenant, ScoredMeta())
            meta = decoder.decode(raws[0])
            if usable_meta(meta, kept.loaded, kept.token, origin, int(request["horizon"])):
                active = _active(histories)
                scored = batch_answers(meta, raws[1:], histories, labels, active, _lookback(bundle))
        return _Plan(origin, histories, labels, scored)

    async def _kept_for(self, tenant: str, loaded: Any) -> _Kept:
        """What the replica keeps for the tenant, started afresh when the version or the
        state of the inputs moved, after `KEEP_S`, or past `MAX_KEPT_PAIRS`."""
        now = time.monotonic()
        kept = self._kept.get(tenant)
        if kept is not None and kept.usable(loaded, now):
            return kept
        token = state_token(await self._aquery(FORECAST_STATE, {"tenant": tenant}))
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
        labels: list[list[str]],
        origin: int,
        past: np.ndarray | None,
        future: np.ndarray | None,
    ) -> np.ndarray:
        """[n, 8, 3] model quantiles of `items` (static values `labels`, in the bundle's
        order); a pair whose inputs (history, attributes; its covariates are kept with the
        answers) were answered before is not run again."""
        bundle = kept.loaded.model
        keys = [
            (store_id, item["productId"], origin, histories[i].tobytes(), tuple(labels[i]))
            for i, item in enumerate(items)
        ]
        found = [kept.answers.get(key) for key in keys]
        todo = [i for i, answer in enumerate(found) if answer is None]
        if todo:
            static = {n: [labels[i][j] for i in todo] for j, n in enumerate(bundle.static_names)}
            fresh = bundle.predict(
                histories[todo], static, origin, MODEL_HORIZON,
                None if past is None else past[todo], None if future is None else future[todo],
            )  # fmt: skip
            for i, answer in zip(todo, fresh, strict=True):
                found[i] = kept.answers[keys[i]] = answer
        return np.stack(found)

    async def _covariates(
        self, tenant: str, kept: _Kept, store_id: str, product_ids: list[int], origin: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """([n, 16, C] history, [n, 8, G] plan) of the covariates the bundle reads."""
        bundle = kept.loaded.model
        past_names, future_names = bundle.covariates, bundle.future_covariates
        if not past_names and not future_names:
            return None, None
        missing = [p for p in dict.fromkeys(product_ids) if (store_id, p, origin) not in kept.pairs]
        if missing:
            past, future = await self._read_covariates(tenant, store_id, missing, origin, bundle)
            for i, pid in enumerate(missing):
                kept.pairs[(store_id, pid, origin)] = (
                    None if past is None else past[i],
                    None if future is None else future[i],
                )
        rows = [kept.pairs[(store_id, pid, origin)] for pid in product_ids]
        past = np.stack([r[0] for r in rows]) if past_names else None
        future = np.stack([r[1] for r in rows]) if future_names else None
        return past, future

    async def _read_covariates(
        self, tenant: str, store_id: str, product_ids: list[int], origin: int, bundle: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The covariates of `product_ids` from the warehouse, in one indexed query: the
        placements (display, mailer) of the model's look-back and plan weeks and the weekly
        columns (discount depth …) of its look-back; older weeks, which the model does not
        read, stay 0."""
        past_names, future_names = bundle.covariates, bundle.future_covariates
        lookback = _lookback(bundle)
        first, last = origin - HISTORY_WEEKS + 1, origin + MODEL_HORIZON
        names = {*past_names, *future_names}
        placed = [n for n in ("display", "mailer") if n in names]
        weekly = [n for n in names if n not in ("display", "mailer")]
        cube = {n: np.zeros((len(product_ids), last - first + 1)) for n in names}
        index = {pid: i for i, pid in enumerate(product_ids)}
        params = {"tenant": tenant, "store": store_id, "products": product_ids,
                  "first": origin - lookback + 1, "origin": origin,
                  "last": last if future_names else origin}  # fmt: skip
        parts = []
        if placed:  # placement rows carry display / mailer, their weekly columns are NULL
            nulls = "".join(", NULL::float8" for _ in weekly)
            parts.append(
                "SELECT product_id, week, (display_location <> '0')::int,"
                f" (mailer_location <> '0')::int{nulls} FROM promotion_placements"
                " WHERE tenant_id = %(tenant)s AND store_id = %(store)s"
                " AND product_id = ANY(%(products)s) AND week BETWEEN %(first)s AND %(last)s"
            )
        if weekly:
            cols = "".join(f", {n}::float8" for n in weekly)
            parts.append(
                f"SELECT product_id, week, NULL::int, NULL::int{cols} FROM store_product_weekly"
                " WHERE tenant_id = %(tenant)s AND store_id = %(store)s"
                " AND product_id = ANY(%(products)s) AND week BETWEEN %(first)s AND %(origin)s"
            )
        for pid, week, display, mailer, *values in await self._aquery(
            " UNION ALL ".join(parts), params
        ):
            at = (index[pid], week - first)
            if display is not None:
                for name, value in zip(("display", "mailer"), (display, mailer), strict=True):
                    if name in cube:
                        cube[name][at] = value
            else:
                for name, value in zip(weekly, values, strict=True):
                    cube[name][at] = value or 0.0
        h = HISTORY_WEEKS
        past = np.stack([cube[n][:, :h] for n in past_names], axis=-1) if past_names else None
        future = np.stack([cube[n][:, h:] for n in future_names], axis=-1) if future_names else None
        return past, future

    async def forecast(self, tenant: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """Forecasts for the request the ingress assembled; None without a model. Runs on
        the event loop: its warehouse reads (a pair's covariates the first time, the state of
        the inputs at most every `FRESHNESS_S`) are awaited, not run in a worker thread."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        horizon = int(request["horizon"])
        items = request["items"]
        kept = await self._kept_for(tenant, loaded)
        plan = self._plan(tenant, kept, request)
        origin, histories = plan.origin, plan.histories
        quantiles = np.zeros((len(items), horizon, 3))
        if plan.live.any():
            rows = np.flatnonzero(plan.live)
            picked = [items[i] for i in rows]
            past, future = await self._covariates(
                tenant, kept, request["storeId"], [item["productId"] for item in picked], origin
            )
            quantiles[rows] = self._predict(
                kept, request["storeId"], picked, histories[rows],
                [plan.labels[i] for i in rows], origin, past, future,
            )[:, :horizon]  # fmt: skip
        fallback = histories[:, -4:].mean(axis=1)
        weeks = [origin + h for h in range(1, horizon + 1)]
        starts = bundle.week_starts(weeks)
        forecasts = []
        for i, item in enumerate(items):
            weekly = item["weekly"]
            stamp = weekly.get("_event_timestamp") if weekly else None
            scored = plan.scored[i]
            if scored is not None:
                method, is_fallback = scored["method"], bool(scored["fallback"])
                answer = [{k: w[k] for k in _WEEK_KEYS} for w in scored["weeks"][:horizon]]
            else:
                is_fallback = not plan.active[i]
                values = quantiles[i] if not is_fallback else np.full((horizon, 3), fallback[i])
                method = FALLBACK if is_fallback else bundle.kind
                answer = [
                    {"week": week, "weekStart": start, "p10": round(float(values[h, 0]), 3),
                     "p50": round(float(values[h, 1]), 3), "p90": round(float(values[h, 2]), 3)}
                    for h, (week, start) in enumerate(zip(weeks, starts, strict=True))
                ]  # fmt: skip
            forecasts.append(
                {
                    "productId": item["productId"],
                    "method": method,
                    "fallback": is_fallback,
                    "reason": _fallback_reason(histories[i]) if is_fallback else None,
                    "featureTimestamp": (
                        datetime.fromtimestamp(stamp, UTC).isoformat() if stamp else None
                    ),
                    "source": LIVE if scored is None else BATCH,
                    "scoredAt": None if scored is None else scored["scoredAt"],
                    "weeks": answer,
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


_WEEK_KEYS = ("week", "weekStart", "p10", "p50", "p90")


class _Plan:
    """How a request's pairs are answered: batch scores (`scored`, None where not usable), the
    fallback (too little history: not `active`), or the model live (`live`)."""

    def __init__(
        self,
        origin: int,
        histories: np.ndarray,
        labels: list[list[str]],
        scored: list[dict[str, Any] | None],
    ) -> None:
        self.origin, self.histories, self.labels, self.scored = origin, histories, labels, scored
        self.active = _active(histories)
        self.live = self.active & np.array([s is None for s in scored], dtype=bool)


def _lookback(bundle: Any) -> int:
    """Weeks of history the model reads (the LSTM's look-back; a model without one: all)."""
    cfg = getattr(bundle.model, "cfg", None)
    return min(HISTORY_WEEKS, int(getattr(cfg, "lookback", HISTORY_WEEKS)))


def _fallback_reason(history: np.ndarray) -> str:
    sold = int((history > 0).sum())
    return (
        f"{sold} week(s) with sales in the last {HISTORY_WEEKS} (the model needs {MIN_SALES_WEEKS})"
    )


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
