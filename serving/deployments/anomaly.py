"""The sales-anomaly deployment: scores the requested store-days with the champion ensemble.

It reads from the warehouse rollup (`store_daily_sales`) the requested days plus the
`LOOKBACK_DAYS` before them that the detectors look back on. Days after the tenant's newest
business day are not scored (a missing future day would read as a drop), nor are days a
store has too little history for; both are counted in `skipped`.

The tenant's store list and date span change only when data lands; they are cached for
`FACTS_TTL_S` (two scans of the rollup per request cost more than the detectors do).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import numpy as np

from serving.deployments.base import ModelDeployment, blocking
from training.specs import ANOMALY

FACTS_TTL_S = 60.0


class Anomaly(ModelDeployment):
    """One replica of the anomaly detector (all tenants; per-tenant registry versions)."""

    spec = ANOMALY

    def _facts(self, tenant: str) -> tuple[list[str], tuple[date, date] | None]:
        """(stores with sales, first and last business day) of the tenant, cached briefly."""
        from features.store_daily import date_range, known_stores

        cache = self.__dict__.setdefault("_facts_cache", {})
        hit = cache.get(tenant)
        if hit is not None and time.monotonic() - hit[0] < FACTS_TTL_S:
            return hit[1], hit[2]
        conn = self._connection()
        stores, span = known_stores(conn, tenant=tenant), date_range(conn, tenant=tenant)
        cache[tenant] = (time.monotonic(), stores, span)
        return stores, span

    @blocking
    def detect(
        self, tenant: str, store_ids: list[str] | None, start: str, end: str
    ) -> dict[str, Any] | None:
        """Flagged store-days between `start` and `end` (ISO dates, inclusive); None without a
        model; {"unknownStores": [...]} when some requested stores have no sales at all."""
        from features.store_daily import load_store_daily
        from training.anomaly_run import LOOKBACK_DAYS, panel_from_rollup

        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        known, span = self._facts(tenant)
        if store_ids is not None:
            unknown = sorted(set(store_ids) - set(known))
            if unknown:
                return {"unknownStores": unknown}
            stores = sorted(store_ids)
        else:
            stores = known
        skipped = {"after_newest_data": 0, "too_little_history": 0}
        newest = span[1] if span else first - timedelta(days=1)
        scored_last = min(last, newest)
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
        if scored_last < first or not stores:
            if scored_last < first:
                skipped["after_newest_data"] = len(stores) * ((last - first).days + 1)
            return report
        lookback = first - timedelta(days=LOOKBACK_DAYS)
        frame = load_store_daily(
            self._connection(), tenant=tenant, start=lookback, end=scored_last, store_ids=stores
        )
        panel = panel_from_rollup(frame, start=lookback, end=scored_last, store_ids=stores)
        days = np.arange(LOOKBACK_DAYS, len(panel.dates))
        scores = bundle.ensemble.score(panel, days).score
        skipped["too_little_history"] = int((~np.isfinite(scores)).sum())
        report["daysScanned"] = len(days)
        report["anomalies"] = bundle.detect(panel, days)
        return report
