"""The served pricing model: per-category elasticities precomputed at training, looked up here.

A `PricingBundle` holds one row per product category (elasticity, clustered CI, counts, fit
quality, or the status "insufficient variation") and one row per product (its category and its
recent shelf price). Serving only looks rows up; a price recommendation follows from the
constant-elasticity demand curve units ~ price^e: revenue ~ price^(1+e) is monotone in price,
so within +/- maxChangePct the revenue-maximising move is the bound on the side where 1+e
points, and the unit-maximising move is the cut when e < 0. When the elasticity is not
significant (p >= the configured level), or its CI leaves the direction of the objective open
(for revenue: the CI spans -1), the answer is "keep price" and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ESTIMATED = "estimated"
INSUFFICIENT = "insufficient variation"


def _clean(value: Any) -> Any:
    """JSON-friendly: NaN → None, numpy scalars → Python."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class PricingBundle:
    """Per-category elasticities and per-product prices of one training run."""

    categories: pd.DataFrame  # index: category
    products: pd.DataFrame  # index: product_id; columns category, department, price, last_week
    window: dict[str, Any] = field(default_factory=dict)
    significance: float = 0.05

    KIND = "pricing"

    # -- lookups --------------------------------------------------------------------------
    def unknown_categories(self, names: list[str]) -> list[str]:
        return [n for n in names if n not in self.categories.index]

    def unknown_products(self, ids: list[int]) -> list[int]:
        return [i for i in ids if i not in self.products.index]

    def category_of(self, product_id: int) -> str:
        return str(self.products.at[product_id, "category"])

    def category(self, name: str) -> dict[str, Any]:
        """One category's answer (route shape, camelCase)."""
        row = self.categories.loc[name]
        estimated = row["status"] == ESTIMATED
        p = _clean(row.get("p_value"))
        out = {
            "category": name,
            "department": _clean(row.get("department")),
            "status": row["status"],
            "elasticity": _clean(row["elasticity"]) if estimated else None,
            "ciLow": _clean(row["ci_low"]) if estimated else None,
            "ciHigh": _clean(row["ci_high"]) if estimated else None,
            "standardError": _clean(row["se"]) if estimated else None,
            "pValue": p if estimated else None,
            "significant": bool(estimated and p is not None and p < self.significance),
            "nObservations": int(row["n_obs"]),
            "nProducts": int(row["n_products"]),
            "nPriceChanges": int(row["n_price_changes"]),
            "r2Within": _clean(row["r2_within"]) if estimated else None,
        }
        return out

    # -- recommendations ------------------------------------------------------------------
    def recommend(self, product_id: int, *, objective: str, max_change_pct: float) -> dict:
        """A price move for one product from its category's elasticity (see module doc)."""
        cat = self.category(self.category_of(product_id))
        price = _clean(self.products.at[product_id, "price"])
        e, lo, hi = cat["elasticity"], cat["ciLow"], cat["ciHigh"]
        change, reason = 0.0, ""
        step = max_change_pct / 100.0
        if cat["status"] != ESTIMATED:
            reason = "keep price: the category's prices moved too little to measure an elasticity"
        elif not cat["significant"]:
            reason = (
                f"keep price: elasticity {e:.2f} is not significant (p={cat['pValue']:.3f} >= "
                f"{self.significance})"
            )
        elif e > 0:
            reason = (
                f"keep price: a positive elasticity ({e:.2f}) is implausible for demand; "
                "likely confounded (promotion timing, assortment), not a reason to raise prices"
            )
        elif objective == "units":
            change = -step
            reason = f"units rise as price falls (elasticity {e:.2f}): cut to the limit"
        elif lo < -1.0 < hi:
            reason = (
                f"keep price: the elasticity's CI [{lo:.2f}, {hi:.2f}] spans -1, so whether a "
                "price change raises or lowers revenue is uncertain"
            )
        elif e < -1.0:
            change = -step
            reason = f"elastic demand ({e:.2f} < -1): a lower price raises revenue"
        else:
            change = step
            reason = f"inelastic demand (-1 < {e:.2f} < 0): a higher price raises revenue"

        def effect(elasticity: float | None, exponent_shift: float) -> float | None:
            if elasticity is None:
                return None
            return round(((1 + change) ** (elasticity + exponent_shift) - 1) * 100, 2)

        bounds = [b for b in (lo, hi) if b is not None]
        units = sorted(effect(b, 0.0) for b in bounds) if bounds and change else []
        revenue = sorted(effect(b, 1.0) for b in bounds) if bounds and change else []
        return {
            "productId": int(product_id),
            "category": cat["category"],
            "action": "keep price"
            if change == 0
            else ("raise price" if change > 0 else "cut price"),
            "changePct": round(change * 100, 2),
            "currentPrice": None if price is None else round(price, 2),
            "suggestedPrice": None if price is None else round(price * (1 + change), 2),
            "elasticity": e,
            "ciLow": lo,
            "ciHigh": hi,
            "significant": cat["significant"],
            "expectedUnitsChangePct": effect(e, 0.0) if change else 0.0,
            "expectedUnitsChangePctRange": units or None,
            "expectedRevenueChangePct": effect(e, 1.0) if change else 0.0,
            "expectedRevenueChangePctRange": revenue or None,
            "reason": reason,
        }

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        from training.bundles import write_meta

        folder.mkdir(parents=True, exist_ok=True)
        self.categories.reset_index().to_parquet(folder / "categories.parquet", index=False)
        self.products.reset_index().to_parquet(folder / "products.parquet", index=False)
        write_meta(
            folder, kind=self.KIND, loader="training.models.pricing:PricingBundle",
            window=self.window, significance=self.significance,
        )  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> PricingBundle:
        from training.bundles import read_meta

        meta = read_meta(folder)
        cats = pd.read_parquet(folder / "categories.parquet").set_index("category")
        prods = pd.read_parquet(folder / "products.parquet").set_index("product_id")
        return cls(cats, prods, meta.get("window", {}), float(meta.get("significance", 0.05)))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """pyfunc: a `category` column → the category's elasticity row (NaN when unknown)."""
        cols = ["status", "elasticity", "ci_low", "ci_high", "p_value", "n_obs"]
        return self.categories.reindex(frame["category"].astype(str))[cols].reset_index()
