"""The pricing deployment: per-category elasticities and price suggestions, all lookups.

Everything is precomputed at training (training/pricing.py); a request reads rows of the
bundle's two small tables, so it answers in well under a millisecond inside the ingress.
"""

from __future__ import annotations

from typing import Any

from serving.deployments.base import ModelDeployment
from training.specs import PRICING


class Pricing(ModelDeployment):
    """One replica of the pricing model (all tenants; per-tenant registry versions)."""

    spec = PRICING

    def elasticity(
        self, tenant: str, categories: list[str], product_ids: list[int]
    ) -> dict[str, Any] | None:
        """Per category (named, or of the named products): the elasticity row. None without a
        model; {"unknownCategories"|"unknownProducts": [...]} when a name is not known."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        b = loaded.model
        if unknown := b.unknown_categories(categories):
            return {"unknownCategories": unknown}
        if unknown := b.unknown_products(product_ids):
            return {"unknownProducts": unknown}
        wanted: dict[str, list[int]] = {c: [] for c in categories}
        for pid in product_ids:
            wanted.setdefault(b.category_of(pid), []).append(pid)
        rows = [{**b.category(c), "productIds": ids} for c, ids in wanted.items()]
        return {"model": loaded.name, "modelVersion": loaded.version, "window": b.window,
                "categories": rows}  # fmt: skip

    def recommend(
        self,
        tenant: str,
        product_ids: list[int] | None,
        category: str | None,
        objective: str,
        max_change_pct: float,
        limit: int,
    ) -> dict[str, Any] | None:
        """A price move per product (the named ones, or the category's best sellers)."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        b = loaded.model
        if category is not None:
            if b.unknown_categories([category]):
                return {"unknownCategories": [category]}
            in_cat = b.products[b.products["category"] == category]
            product_ids = in_cat.sort_values("weeks_sold", ascending=False).index[:limit].tolist()
        elif unknown := b.unknown_products(product_ids or []):
            return {"unknownProducts": unknown}
        recs = [
            b.recommend(int(p), objective=objective, max_change_pct=max_change_pct)
            for p in product_ids or []
        ]
        return {"model": loaded.name, "modelVersion": loaded.version, "objective": objective,
                "maxChangePct": max_change_pct, "recommendations": recs}  # fmt: skip
