"""The promotions deployment: measured campaign uplift, looked up; campaigns to run again.

Uplifts, CIs and balance are computed at training (training/promotions.py); requests read the
bundle's records. `top_promotions` is also what the next-best-actions route asks for.
"""

from __future__ import annotations

from typing import Any

from serving.deployments.base import ModelDeployment
from training.models.promotions import top_promotions
from training.specs import PROMOTIONS


class Promotions(ModelDeployment):
    """One replica of the promotion-impact model (all tenants; per-tenant versions)."""

    spec = PROMOTIONS

    def impact(self, tenant: str, campaign_ids: list[int]) -> dict[str, Any] | None:
        """Each campaign's record; None without a model; {"unknownCampaigns": [...]}."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        b = loaded.model
        if unknown := b.unknown(campaign_ids):
            return {"unknownCampaigns": unknown, "known": sorted(b.campaigns)}
        return {"model": loaded.name, "modelVersion": loaded.version,
                "campaigns": [b.impact(c) for c in campaign_ids]}  # fmt: skip

    def top_promotions(
        self, tenant: str, limit: int, store_id: str | None = None
    ) -> dict[str, Any] | None:
        """Campaigns ranked by measured uplift (see training.models.promotions)."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        b = loaded.model
        known = b.window.get("stores")
        if store_id is not None and known is not None and str(store_id) not in known:
            return {"unknownStore": str(store_id)}
        return {"model": loaded.name, "modelVersion": loaded.version, "storeId": store_id,
                "promotions": top_promotions(b, limit=limit, store_id=store_id)}  # fmt: skip
