"""The served promotion-impact model: per-campaign uplift measured at training, looked up here.

A `PromotionsBundle` holds one record per campaign (status, windows, matched counts, uplift of
spend and baskets per household-week with CIs, the per-household and total effect over the
campaign window, balance before/after matching, the naive unmatched DiD, a placebo estimate)
and per-store uplifts (treated households by their most-visited store before the campaign).
`top_promotions` ranks campaigns by the lower end of the CI of spend uplift per household: a
campaign is worth running again when even the pessimistic end of its effect is good.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ESTIMATED = "estimated"


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class PromotionsBundle:
    """Campaign records keyed by campaign id, plus per-store uplift rows."""

    campaigns: dict[int, dict[str, Any]]
    stores: pd.DataFrame  # campaign_id, store_id, households, uplift_spend_week, per_household
    window: dict[str, Any] = field(default_factory=dict)

    KIND = "promotions"

    def unknown(self, ids: list[int]) -> list[int]:
        return [i for i in ids if i not in self.campaigns]

    def impact(self, campaign_id: int) -> dict[str, Any]:
        return self.campaigns[campaign_id]

    def save(self, folder: Path) -> None:
        from training.bundles import write_meta

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "campaigns.json").write_text(
            json.dumps([self.campaigns[k] for k in sorted(self.campaigns)], indent=1)
        )
        self.stores.to_parquet(folder / "stores.parquet", index=False)
        write_meta(
            folder, kind=self.KIND, loader="training.models.promotions:PromotionsBundle",
            window=self.window,
        )  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> PromotionsBundle:
        from training.bundles import read_meta

        rows = json.loads((folder / "campaigns.json").read_text())
        stores = pd.read_parquet(folder / "stores.parquet")
        stores["store_id"] = stores["store_id"].astype(str)
        return cls(
            {int(r["campaignId"]): r for r in rows}, stores, read_meta(folder).get("window", {})
        )

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """pyfunc: a `campaign_id` column → uplift per household-week and its CI."""
        out = []
        for cid in frame["campaign_id"].astype(int):
            r = self.campaigns.get(cid, {})
            s = r.get("spend") or {}
            out.append({"campaign_id": cid, "status": r.get("status"), "uplift": s.get("perHouseholdWeek"),
                        "ci_low": s.get("ciLow"), "ci_high": s.get("ciHigh")})  # fmt: skip
        return pd.DataFrame(out)


def top_promotions(
    bundle: PromotionsBundle, *, limit: int, store_id: str | None = None
) -> list[dict[str, Any]]:
    """Campaigns worth running again, best first, with the evidence.

    Ranked by the CI's lower end of the spend uplift per household over the campaign window.
    With `store_id`, a campaign's uplift among that store's households is used when at least
    the bundle's minimum of them were matched (`scope: "store"`); otherwise the all-store
    estimate (`scope: "all stores"`). Campaigns without an estimate are left out.
    """
    store = None if store_id is None else str(store_id)
    local = bundle.stores[bundle.stores["store_id"] == store] if store is not None else None
    ranked = []
    for cid, rec in bundle.campaigns.items():
        if rec.get("status") != ESTIMATED:
            continue
        spend = rec["spend"]
        weeks = rec["windowDays"] / 7.0
        item = {
            "campaignId": cid,
            "campaignType": rec.get("campaignType"),
            "scope": "all stores",
            "upliftPerHousehold": spend["perHousehold"],
            "ciLow": spend["ciLow"] * weeks,
            "ciHigh": spend["ciHigh"] * weeks,
            "upliftPerHouseholdWeek": spend["perHouseholdWeek"],
            "significant": spend["ciLow"] > 0 or spend["ciHigh"] < 0,
            "matchedHouseholds": rec["matched"]["treated"],
            "totalUplift": spend["total"],
            "coupons": rec.get("coupons"),
            "windowDays": rec["windowDays"],
            "maxAbsSmdAfter": rec["balance"]["maxAbsSmdAfter"],
        }
        if local is not None:
            row = local[local["campaign_id"] == cid]
            if len(row):
                r = row.iloc[0]
                item.update(
                    scope="store",
                    storeId=store,
                    upliftPerHousehold=_finite(r["per_household"]),
                    ciLow=_finite(r["ci_low"]),
                    ciHigh=_finite(r["ci_high"]),
                    upliftPerHouseholdWeek=_finite(r["uplift_spend_week"]),
                    significant=bool(r["ci_low"] > 0 or r["ci_high"] < 0),
                    matchedHouseholds=int(r["households"]),
                    totalUplift=_finite(r["per_household"] * r["households"]),
                )
        verdict = (
            "run again"
            if item["ciLow"] > 0
            else ("no measurable gain" if item["ciHigh"] >= 0 else "lost spend: do not repeat")
        )
        item["recommendation"] = verdict
        item["reason"] = (
            f"{item['scope']}: {item['upliftPerHousehold']:+.2f} spend per household over "
            f"{rec['windowDays']} days (95% CI {item['ciLow']:+.2f}..{item['ciHigh']:+.2f}) vs "
            f"{item['matchedHouseholds']} matched households"
        )
        ranked.append(item)
    ranked.sort(
        key=lambda r: (-(r["ciLow"] if r["ciLow"] is not None else -math.inf), r["campaignId"])
    )
    return ranked[:limit]
