"""The product recommender deployment: precomputed candidates, business rules, reasons.

Per request it looks up the household's precomputed candidate set (hybrid scores of the
served version), drops products bought in the last `excludePurchasedDays` days of the data
(the data's clock: its newest transaction) unless the household buys them in at least half
of its baskets (a staple), and explains each product in one line. A customer the warehouse
knows but the model has no history for gets the most popular products of their usual store
(or of the whole catalog), flagged as a fallback; a customer the warehouse does not know is a
404.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.deployments.base import ModelDeployment, blocking
from training.specs import RECOMMENDER

STAPLE_SHARE = 0.5  # bought in at least half of the household's baskets: never excluded
DEFAULT_PER_CATEGORY = 3  # diversity: at most this many products of one category


class Recommender(ModelDeployment):
    """One replica of the recommender (all tenants; per-tenant registry versions)."""

    spec = RECOMMENDER

    def _customer(self, tenant: str, customer_id: int) -> tuple[bool, str | None]:
        """(known to the warehouse, the store of most of their transactions)."""
        conn = self._connection()
        known = conn.execute(
            "SELECT 1 FROM customers WHERE tenant_id = %s AND customer_id = %s",
            (tenant, customer_id),
        ).fetchone()
        row = conn.execute(
            "SELECT store_id FROM transactions WHERE tenant_id = %s AND customer_id = %s"
            " GROUP BY store_id ORDER BY count(*) DESC, store_id LIMIT 1",
            (tenant, customer_id),
        ).fetchone()
        return bool(known or row), (row[0] if row else None)

    def _recent(self, tenant: str, customer_id: int, days: int) -> tuple[set[int], str | None]:
        """Products the customer bought in the `days` days before the tenant's newest
        transaction, and that newest day (ISO)."""
        conn = self._connection()
        newest = conn.execute(
            "SELECT max(transaction_timestamp) FROM transactions WHERE tenant_id = %s", (tenant,)
        ).fetchone()[0]
        if newest is None:
            return set(), None
        rows = conn.execute(
            "SELECT DISTINCT i.product_id FROM transactions t JOIN transaction_items i"
            " ON i.tenant_id = t.tenant_id AND i.transaction_id = t.transaction_id"
            " WHERE t.tenant_id = %s AND t.customer_id = %s"
            " AND t.transaction_timestamp > %s - make_interval(days => %s)",
            (tenant, customer_id, newest, days),
        ).fetchall()
        return {int(r[0]) for r in rows}, newest.date().isoformat()

    def _needs_warehouse(
        self, tenant: str, customer_id: int, limit: int, exclude_days: int | None, *rest: Any
    ) -> bool:
        """Only recent purchases and customers the model does not know need a query."""
        loaded = self._loaded.get(tenant)
        if exclude_days or loaded is None:
            return True
        return int(loaded.model.scorer.data.user_index(customer_id)[0]) < 0

    @blocking(when=_needs_warehouse)
    def recommend(
        self,
        tenant: str,
        customer_id: int,
        limit: int,
        exclude_days: int | None,
        max_per_category: int | None = DEFAULT_PER_CATEGORY,
    ) -> dict[str, Any] | None:
        """Ranked products with reasons; None without a model; {"notFound": True} for a
        customer the warehouse does not know.

        The graph's business rules, in order, over the precomputed candidates (NCF + repeat +
        content scores): drop what was bought in the last `exclude_days` unless a staple; keep
        only products sold at the customer's usual store (in assortment); at most
        `max_per_category` per product category (diversity); then the top `limit`."""
        from training.recommending.candidates import reasons

        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        scorer = bundle.scorer
        user = int(scorer.data.user_index(customer_id)[0])
        answer: dict[str, Any] = {
            "customerId": customer_id,
            "model": loaded.name,
            "modelVersion": loaded.version,
            "fallback": False,
            "fallbackReason": None,
            "excludedPurchasedDays": exclude_days,
            "asOf": None,
        }
        recent: set[int] = set()
        if exclude_days:
            recent, answer["asOf"] = self._recent(tenant, customer_id, exclude_days)
        if user < 0:
            known, store = self._customer(tenant, customer_id)
            if not known:
                return {"notFound": True}
            items = bundle.popular(store)
            scores = np.linspace(1.0, 0.5, num=max(len(items), 1))[: len(items)]
            answer["fallback"] = True
            answer["fallbackReason"] = (
                f"no purchase history in the served model: most popular at store {store}"
                if store in bundle.store_popular
                else "no purchase history: most popular products of the whole catalog"
            )
            why = f"popular at store {store}" if store in bundle.store_popular else "popular"
            texts = [why] * len(items)
        else:
            items = list(bundle.candidate_items[user])
            scores = list(bundle.candidate_scores[user])
            texts = []
        pids = bundle.product_ids
        train = scorer.train
        baskets = float(scorer.n_baskets[user]) if user >= 0 else 1.0
        chosen: list[tuple[int, float]] = []
        offset = float(scorer.blend.bought_offset)
        info = bundle.product_info
        in_store = bundle.in_assortment(user, np.asarray(items, dtype=np.int64))
        per_category: dict[str | None, int] = {}
        dropped = {"recentlyBought": 0, "notInAssortment": 0, "categoryCap": 0}
        for i, (item, score) in enumerate(zip(items, scores, strict=True)):
            if user >= 0 and train[user, item] > 0:
                score -= offset  # the rank-only "bought first" offset is not part of the score
            if int(pids[item]) in recent:
                share = float(train[user, item]) / baskets if user >= 0 else 0.0
                if share < STAPLE_SHARE:
                    dropped["recentlyBought"] += 1
                    continue
            if in_store is not None and not in_store[i]:
                dropped["notInAssortment"] += 1
                continue
            category = info["product_category"][item]
            if max_per_category and per_category.get(category, 0) >= max_per_category:
                dropped["categoryCap"] += 1
                continue
            per_category[category] = per_category.get(category, 0) + 1
            chosen.append((int(item), float(score)))
            if len(chosen) == limit:
                break
        answer["rules"] = {
            "usualStore": bundle.home_store[user] if bundle.home_store and user >= 0 else None,
            "assortmentRule": in_store is not None,
            "maxPerCategory": max_per_category,
            "dropped": dropped,
        }
        picked = np.array([c[0] for c in chosen], dtype=np.int64)
        if user >= 0:
            texts = reasons(scorer, user, picked, bundle.names) if len(picked) else []
        answer["recommendations"] = [
            {
                "productId": int(pids[item]),
                "rank": rank + 1,
                "score": round(score, 4),
                "reason": texts[rank],
                "department": info["department"][item],
                "productCategory": info["product_category"][item],
                "brand": info["brand"][item],
            }
            for rank, (item, score) in enumerate(chosen)
        ]
        return answer
