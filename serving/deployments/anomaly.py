"""The sales-anomaly deployment: scores the requested store-days with the champion ensemble.

A store-day's score depends on the model version and on the warehouse rollup
(`store_daily_sales`) only: the store's own series up to that day and, through the
cross-sectional day effect, every fitted store's residual on that day. So the replica scores
whole days for every fitted store at once (the days asked for that it has not scored yet,
plus the `LOOKBACK_DAYS` before them the detectors look back on) and keeps the result per
(tenant, model version, rollup state); a request then only gathers its stores and days.
Scoring every fitted store is also what makes a one-store answer the same as that store's
line of an all-store answer (scoring only the stores asked for would take the day effect
from them alone: for one store it cancels the residual, and nothing is ever flagged).

The rollup state is the `store_daily_sales` watermark (`feature_watermarks.computed_at`,
moved by every `retailpulse features materialize` that writes the rollup), read at most every
`FRESHNESS_S`; a tenant without a watermark row re-reads after `FACTS_TTL_S`. The tenant's
store list and date span are read once per state. Days after the tenant's newest business
day are not scored (a missing future day would read as a drop), nor are days a store has too
little history for; both are counted in `skipped`. A request the kept days answer runs on the
event loop; one that needs the warehouse runs in a worker thread (`blocking(when=...)`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from serving.deployments.base import ModelDeployment, blocking
from training.specs import ANOMALY

FRESHNESS_S = 1.0  # how stale a replica's view of the rollup may be
FACTS_TTL_S = 60.0  # without a watermark row: how long a state is trusted
MAX_KEPT_DAYS = 800  # scored days kept per tenant (more: start again)


@dataclass
class _Day:
    """One scored business day of every fitted store (arrays over `_State.fitted`)."""

    score: np.ndarray  # NaN: too little history
    expected: np.ndarray
    spike: np.ndarray  # bool
    flagged: np.ndarray  # bool
    voted: np.ndarray  # [K, S] bool, detectors with a weight that voted
    sales: np.ndarray


@dataclass
class _State:
    """What one replica knows of one tenant's rollup under one loaded model version."""

    loaded: Any  # registry.Loaded the days were scored with
    token: Any  # the rollup's watermark (None: no watermark row)
    read_at: float  # monotonic time the token was read
    stores: list[str]  # stores with sales
    span: tuple[date, date] | None  # first and last business day with sales
    fitted: dict[str, int] = field(default_factory=dict)  # store id -> row of the ensemble
    days: dict[date, _Day] = field(default_factory=dict)

    def fresh(self, loaded: Any, now: float) -> bool:
        ttl = FRESHNESS_S if self.token is not None else FACTS_TTL_S
        return self.loaded is loaded and now - self.read_at < ttl


def _scored_range(span: tuple[date, date] | None, start: str, end: str) -> list[date]:
    """The requested days up to the tenant's newest business day."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if span is not None:
        last = min(last, span[1])
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class Anomaly(ModelDeployment):
    """One replica of the anomaly detector (all tenants; per-tenant registry versions)."""

    spec = ANOMALY

    def __init__(self, default_tenant: str = "default") -> None:
        super().__init__(default_tenant)
        self._states: dict[str, _State] = {}

    def _state(self, tenant: str, loaded: Any) -> _State:
        """The tenant's state, re-read when due; a new token or version starts it afresh."""
        from features.store_daily import date_range, known_stores

        now = time.monotonic()
        state = self._states.get(tenant)
        if state is not None and state.fresh(loaded, now):
            return state
        token = self._watermark(tenant, "store_daily_sales")  # before the data
        if state is not None and state.loaded is loaded and token is not None:
            if token == state.token:
                state.read_at = now
                return state
        conn = self._connection()
        ensemble = loaded.model.ensemble
        state = _State(
            loaded=loaded,
            token=token,
            read_at=now,
            stores=known_stores(conn, tenant=tenant),
            span=date_range(conn, tenant=tenant),
            fitted={str(s): i for i, s in enumerate(ensemble.store_ids)},
        )
        self._states = {**self._states, tenant: state}
        return state

    def _needs_warehouse(
        self, tenant: str, store_ids: list[str] | None, start: str, end: str
    ) -> bool:
        """True unless the kept state answers the request (it then runs on the event loop)."""
        state = self._states.get(tenant)
        loaded = self._loaded.get(tenant)
        if state is None or loaded is None or not state.fresh(loaded, time.monotonic()):
            return True
        return any(day not in state.days for day in _scored_range(state.span, start, end))

    def _score_days(self, tenant: str, state: _State, missing: list[date]) -> None:
        """Score the days `missing` (and those between them) for every fitted store."""
        from features.store_daily import load_store_daily
        from training.anomaly_run import LOOKBACK_DAYS, panel_from_rollup

        bundle = state.loaded.model
        fitted = list(state.fitted)
        first, last = min(missing), max(missing)
        lookback = first - timedelta(days=LOOKBACK_DAYS)
        frame = load_store_daily(
            self._connection(), tenant=tenant, start=lookback, end=last, store_ids=fitted
        )
        panel = panel_from_rollup(frame, start=lookback, end=last, store_ids=fitted)
        res = bundle.ensemble.score(panel, np.arange(LOOKBACK_DAYS, len(panel.dates)))
        flagged, voted = bundle.flags(res)
        rows = np.array([state.fitted[s] for s in panel.store_ids.tolist()], dtype=np.int64)
        order = np.argsort(rows)  # panel rows (sorted ids) -> ensemble rows
        days = {}
        for t, col in enumerate(res.days):
            days[first + timedelta(days=int(col) - LOOKBACK_DAYS)] = _Day(
                score=res.score[order, t],
                expected=res.expected[order, t],
                spike=res.direction[order, t] >= 0,
                flagged=flagged[order, t],
                voted=voted[:, order, t],
                sales=panel.sales[order, col],
            )
        kept = state.days if len(state.days) + len(days) <= MAX_KEPT_DAYS else {}
        state.days = {**kept, **days}  # one assignment: readers see the old or the new map

    @blocking(when=_needs_warehouse)
    def detect(
        self, tenant: str, store_ids: list[str] | None, start: str, end: str
    ) -> dict[str, Any] | None:
        """Flagged store-days between `start` and `end` (ISO dates, inclusive); None without a
        model; {"unknownStores": [...]} when some requested stores have no sales at all."""
        from training.anomaly_run import flagged_day

        loaded = self._get(tenant)
        if loaded is None:
            return None
        state = self._state(tenant, loaded)
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        if store_ids is not None:
            unknown = sorted(set(store_ids) - set(state.stores))
            if unknown:
                return {"unknownStores": unknown}
            stores = sorted(store_ids)
        else:
            stores = state.stores
        skipped = {"after_newest_data": 0, "too_little_history": 0}
        newest = state.span[1] if state.span else first - timedelta(days=1)
        report = {
            "model": loaded.name,
            "modelVersion": loaded.version,
            "from_": start,
            "to": end,
            "storesScanned": len(stores),
            "daysScanned": 0,
            "skipped": skipped,
            "anomalies": [],
        }
        skipped["after_newest_data"] = len(stores) * max(0, (last - max(first, newest)).days)
        if min(last, newest) < first or not stores:
            if min(last, newest) < first:
                skipped["after_newest_data"] = len(stores) * ((last - first).days + 1)
            return report
        days = _scored_range(state.span, start, end)
        missing = [d for d in days if d not in state.days]
        if missing and state.fitted:
            self._score_days(tenant, state, missing)
        rows = [state.fitted.get(s, -1) for s in stores]
        fitted = [(s, r) for s, r in zip(stores, rows, strict=True) if r >= 0]
        unscored = (len(stores) - len(fitted)) * len(days)  # stores the model was not fitted on
        found = []
        for day in days:
            scored = state.days.get(day)
            if scored is None:  # no fitted store at all
                unscored += len(fitted)
                continue
            for store, r in fitted:
                if not np.isfinite(scored.score[r]):
                    unscored += 1
                elif scored.flagged[r]:
                    found.append(
                        flagged_day(
                            store, day.isoformat(), scored.sales[r], scored.expected[r],
                            scored.score[r], scored.spike[r], scored.voted[:, r],
                        )
                    )  # fmt: skip
        skipped["too_little_history"] = unscored
        report["daysScanned"] = len(days)
        report["anomalies"] = sorted(found, key=lambda a: -a["score"])
        return report
