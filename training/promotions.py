"""Promotion impact per campaign, trained on a tenant's warehouse; `top_promotions` for callers.

For campaign c (start s, end e from `promotions`, households from `campaign_households`):
- window = [s, e + 1 day) cut at the data's last day; pre-period = the `pre_days` days before s
  (fewer if the data starts later; under `min_pre_days` → "insufficient pre-period");
- eligible households: at least one basket before s; treated = eligible and exposed to c;
  controls = eligible, not exposed to c and (with `exclude_overlapping`) to no campaign whose
  dates overlap c's pre-period or window;
- outcome per household: spend (and baskets) per week in the window minus per week in the
  pre-period; features to match on, all known at s: log1p of pre-period spend/week,
  baskets/week, average basket, days since the last basket, and spend/week before the
  pre-period (`FEATURES`);
- `training.models.uplift.matched_did`: propensity nearest-neighbour matching, DiD, percentile
  bootstrap CI, standardized mean differences before/after.
A placebo estimate re-runs the same design on a fake campaign of `pre_days` days ending at the
pre-period's start (its CI should cover 0). The run's metric is the mean over estimated
campaigns of the largest |SMD| after matching (lower is better: the matched groups look alike).
Spend is the basket total (`transactions.total_sales`), fuel included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.models.promotions import ESTIMATED, PromotionsBundle, top_promotions
from training.models.uplift import matched_did

__all__ = ["PromotionsConfig", "load_promotions_config", "run_promotions", "top_promotions"]

PROMOTIONS_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "promotions.yaml"
FEATURES = [
    "pre_spend_week",
    "pre_baskets_week",
    "pre_avg_basket",
    "recency_days",
    "history_spend_week",
]
DAY = np.timedelta64(1, "D")


class PromotionsConfig(BaseModel):
    """Design settings (configs/promotions.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pre_days: int = Field(56, ge=7)
    min_pre_days: int = Field(28, ge=7)
    min_window_days: int = Field(7, ge=1)
    exclude_overlapping: bool = True
    min_treated: int = Field(10, ge=2)
    min_controls: int = Field(20, ge=2)
    neighbours: int = Field(1, ge=1, le=10)
    caliper_sd: float = Field(0.2, gt=0)
    logistic_c: float = Field(1.0, gt=0)
    bootstrap: int = Field(500, ge=50)
    level: float = Field(0.95, gt=0.5, lt=1.0)
    min_store_households: int = Field(5, ge=2)
    placebo: bool = True
    seed: int = 0


def load_promotions_config(path: str | Path | None = None, **overrides: Any) -> PromotionsConfig:
    path = Path(path) if path is not None else PROMOTIONS_CONFIG
    raw = yaml.safe_load(path.read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return PromotionsConfig.model_validate(raw)


@dataclass
class Data:
    """Baskets as arrays (household code, store, time, spend) and the campaigns."""

    households: np.ndarray  # customer ids; codes index into it
    cust: np.ndarray
    store: np.ndarray
    ts: np.ndarray  # datetime64[ns], UTC
    spend: np.ndarray
    campaigns: pd.DataFrame  # campaign_id, campaign_type, start, end, coupons
    exposure: dict[int, np.ndarray]  # campaign → household codes

    @property
    def first_day(self) -> np.datetime64:
        return self.ts.min().astype("datetime64[D]")

    @property
    def end_day(self) -> np.datetime64:  # exclusive
        return self.ts.max().astype("datetime64[D]") + 1


def read_warehouse(tenant: str, url: str | None = None) -> Data:
    from core.db import connect
    from training.datasets import _copy_frame

    with connect(url) as conn:
        baskets = _copy_frame(
            conn,
            "SELECT customer_id, store_id, (transaction_timestamp AT TIME ZONE 'UTC') AS ts,"
            " total_sales FROM transactions WHERE tenant_id = %s",
            (tenant,),
        )
        exposure = _copy_frame(
            conn,
            "SELECT campaign_id, customer_id FROM campaign_households WHERE tenant_id = %s",
            (tenant,),
        )
        campaigns = _copy_frame(
            conn,
            "SELECT c.campaign_id, c.campaign_type, (c.start_date AT TIME ZONE 'UTC') AS start,"
            " (c.end_date AT TIME ZONE 'UTC') AS end, count(DISTINCT k.coupon_upc) AS coupons"
            " FROM promotions c LEFT JOIN promotions k ON k.tenant_id = c.tenant_id"
            " AND k.kind = 'coupon' AND k.campaign_id = c.campaign_id"
            " WHERE c.tenant_id = %s AND c.kind = 'campaign'"
            " GROUP BY c.campaign_id, c.campaign_type, c.start_date, c.end_date",
            (tenant,),
        )
    return build_data(baskets, exposure, campaigns)


def build_data(baskets: pd.DataFrame, exposure: pd.DataFrame, campaigns: pd.DataFrame) -> Data:
    households, cust = np.unique(baskets["customer_id"].to_numpy(np.int64), return_inverse=True)
    lookup = pd.Index(households)
    exp = {}
    for cid, g in exposure.groupby("campaign_id"):
        codes = lookup.get_indexer(g["customer_id"].to_numpy(np.int64))
        exp[int(cid)] = np.unique(codes[codes >= 0])
    campaigns = campaigns.assign(
        start=pd.to_datetime(campaigns["start"]).dt.tz_localize(None).dt.normalize(),
        end=pd.to_datetime(campaigns["end"]).dt.tz_localize(None).dt.normalize(),
    )
    return Data(
        households, cust.ravel(), baskets["store_id"].astype(str).to_numpy(),
        pd.to_datetime(baskets["ts"]).dt.tz_localize(None).to_numpy("datetime64[ns]"),
        baskets["total_sales"].to_numpy(np.float64), campaigns.reset_index(drop=True), exp,
    )  # fmt: skip


def _window_sums(
    d: Data, start: np.datetime64, end: np.datetime64
) -> tuple[np.ndarray, np.ndarray]:
    m = (d.ts >= start) & (d.ts < end)
    n = len(d.households)
    spend = np.bincount(d.cust[m], weights=d.spend[m], minlength=n)
    return spend, np.bincount(d.cust[m], minlength=n).astype(np.float64)


def _features(d: Data, pre_start: np.datetime64, pre_end: np.datetime64) -> np.ndarray:
    pre_spend, pre_baskets = _window_sums(d, pre_start, pre_end)
    weeks = (pre_end - pre_start) / DAY / 7
    hist_spend, _ = _window_sums(d, d.first_day, pre_start)
    hist_weeks = max((pre_start - d.first_day) / DAY / 7, 1.0)
    before = d.ts < pre_end
    last = np.full(len(d.households), d.first_day.astype("datetime64[ns]"))
    np.maximum.at(last, d.cust[before], d.ts[before])
    recency = (pre_end.astype("datetime64[ns]") - last) / DAY
    avg = np.divide(pre_spend, pre_baskets, out=np.zeros_like(pre_spend), where=pre_baskets > 0)
    cols = [pre_spend / weeks, pre_baskets / weeks, avg, recency, hist_spend / hist_weeks]
    return np.log1p(np.clip(np.column_stack(cols), 0, None))


def estimate(
    d: Data, cid: int, pre_start: np.datetime64, start: np.datetime64, end: np.datetime64,
    cfg: PromotionsConfig, *, stores: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The matched DiD of campaign `cid` for window [start, end) against [pre_start, start)."""
    eligible = np.bincount(d.cust[d.ts < start], minlength=len(d.households)) > 0
    exposed = np.zeros(len(d.households), bool)
    exposed[d.exposure.get(cid, [])] = True
    blocked = exposed.copy()
    if cfg.exclude_overlapping:
        c = d.campaigns
        overlap = c[(c["start"] < pd.Timestamp(end)) & (c["end"] >= pd.Timestamp(pre_start))]
        for other in overlap["campaign_id"]:
            blocked[d.exposure.get(int(other), [])] = True
    treated = eligible & exposed
    control = eligible & ~blocked
    out: dict[str, Any] = {
        "treatedEligible": int(treated.sum()),
        "controlsPool": int(control.sum()),
    }
    if treated.sum() < cfg.min_treated or control.sum() < cfg.min_controls:
        out["status"] = "too few households"
        return out
    rows = np.flatnonzero(treated | control)
    X = _features(d, pre_start, start)[rows]
    weeks_pre, weeks_win = (start - pre_start) / DAY / 7, (end - start) / DAY / 7
    pre = _window_sums(d, pre_start, start)
    win = _window_sums(d, start, end)
    kw = dict(k=cfg.neighbours, caliper_sd=cfg.caliper_sd, bootstrap=cfg.bootstrap,
              level=cfg.level, seed=cfg.seed, c=cfg.logistic_c)  # fmt: skip
    results = {}
    for i, name in enumerate(("spend", "baskets")):
        delta = (win[i] / weeks_win - pre[i] / weeks_pre)[rows]
        results[name] = matched_did(delta, treated[rows], X, FEATURES, **kw)
    r = results["spend"]
    out.update(status=ESTIMATED, result=results, weeks=weeks_win)
    if stores and r.effects is not None and len(r.effects):
        out["stores"] = _store_uplift(d, rows[r.matched], r.effects, start, weeks_win, cfg)
    return out


def _store_uplift(
    d: Data, treated_codes: np.ndarray, effects: np.ndarray, start: np.datetime64,
    weeks: float, cfg: PromotionsConfig,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per home store (most baskets before the campaign): mean effect with a bootstrap CI."""
    before = d.ts < start
    visits = pd.DataFrame({"cust": d.cust[before], "store": d.store[before]})
    home = visits.value_counts().reset_index().drop_duplicates("cust").set_index("cust")["store"]
    frame = pd.DataFrame({"store": home.reindex(treated_codes).to_numpy(), "effect": effects})
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for store, g in frame.dropna().groupby("store"):
        if len(g) < cfg.min_store_households:
            continue
        e = g["effect"].to_numpy()
        draws = e[rng.integers(0, len(e), (cfg.bootstrap, len(e)))].mean(axis=1)
        lo, hi = np.quantile(draws, [(1 - cfg.level) / 2, (1 + cfg.level) / 2])
        rows.append({"store_id": str(store), "households": len(e), "uplift_spend_week": e.mean(),
                     "per_household": e.mean() * weeks, "ci_low": lo * weeks, "ci_high": hi * weeks})  # fmt: skip
    return rows


def _record(d: Data, row: pd.Series, cfg: PromotionsConfig) -> tuple[dict[str, Any], list[dict]]:
    """One campaign's record for the bundle (route shape) and its per-store rows."""
    cid = int(row["campaign_id"])
    start = np.datetime64(row["start"], "D")
    end = min(np.datetime64(row["end"], "D") + 1, d.end_day)
    pre_days = int(min(cfg.pre_days, (start - d.first_day) / DAY))
    rec: dict[str, Any] = {
        "campaignId": cid, "campaignType": row.get("campaign_type"),
        "start": str(row["start"].date()), "end": str(row["end"].date()),
        "windowStart": str(start), "windowEnd": str(end - 1), "windowDays": int((end - start) / DAY),
        "preDays": max(pre_days, 0), "exposedHouseholds": int(len(d.exposure.get(cid, []))),
        "coupons": int(row.get("coupons") or 0),
    }  # fmt: skip
    if pre_days < cfg.min_pre_days:
        rec.update(status="insufficient pre-period",
                   reason=f"the data starts {max(pre_days, 0)} days before the campaign (needs {cfg.min_pre_days})")  # fmt: skip
        return rec, []
    if rec["windowDays"] < cfg.min_window_days:
        rec.update(
            status="window outside the data",
            reason=f"{rec['windowDays']} campaign days in the data",
        )
        return rec, []
    pre_start = start - pre_days
    rec["preStart"] = str(pre_start)
    est = estimate(d, cid, pre_start, start, end, cfg)
    rec["status"] = est["status"]
    if est["status"] != ESTIMATED:
        rec["reason"] = (
            f"{est['treatedEligible']} treated / {est['controlsPool']} control households"
        )
        rec["matched"] = {
            "treatedEligible": est["treatedEligible"],
            "controlsPool": est["controlsPool"],
        }
        return rec, []
    s, b, weeks = est["result"]["spend"], est["result"]["baskets"], est["weeks"]
    rec["matched"] = {"treated": s.n_matched, "treatedEligible": s.n_treated,
                      "controlsPool": s.n_controls_pool, "controlsUsed": s.n_controls_used}  # fmt: skip
    rec["spend"] = {"perHouseholdWeek": s.att, "ciLow": s.ci_low, "ciHigh": s.ci_high,
                    "perHousehold": s.att * weeks, "total": s.att * weeks * s.n_matched,
                    "naivePerHouseholdWeek": s.naive}  # fmt: skip
    rec["baskets"] = {"perHouseholdWeek": b.att, "ciLow": b.ci_low, "ciHigh": b.ci_high,
                      "naivePerHouseholdWeek": b.naive}  # fmt: skip
    feats = [
        {"feature": f, "smdBefore": s.smd_before[f], "smdAfter": s.smd_after[f]} for f in FEATURES
    ]
    rec["balance"] = {"features": feats,
                      "maxAbsSmdBefore": max(abs(x["smdBefore"]) for x in feats),
                      "maxAbsSmdAfter": max(abs(x["smdAfter"]) for x in feats)}  # fmt: skip
    rec["placebo"] = None
    if cfg.placebo and pre_start - pre_days >= d.first_day:
        fake = estimate(d, cid, pre_start - pre_days, pre_start, start, cfg, stores=False)
        if fake["status"] == ESTIMATED:
            p = fake["result"]["spend"]
            rec["placebo"] = {"perHouseholdWeek": p.att, "ciLow": p.ci_low, "ciHigh": p.ci_high,
                              "coversZero": bool(p.ci_low <= 0 <= p.ci_high)}  # fmt: skip
    stores = [{"campaign_id": cid, **x} for x in est.get("stores", [])]
    return rec, stores


@dataclass
class PromotionsRun:
    bundle: PromotionsBundle
    table: dict[str, Any]
    window: dict[str, Any]
    metric: float
    run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_promotions(
    *, tenant: str, cfg: PromotionsConfig, on_step: Callable[[str], None] | None = None,
    data: Data | None = None,
) -> PromotionsRun:  # fmt: skip
    """Measure every campaign of the tenant (see the module docstring)."""
    from core.errors import ValidationFailed

    step = on_step or (lambda text: None)
    started = time.perf_counter()
    step(f"loading baskets and campaign exposure of tenant {tenant!r}")
    d = data or read_warehouse(tenant)
    if len(d.ts) == 0 or d.campaigns.empty or not d.exposure:
        raise ValidationFailed(
            f"tenant {tenant!r} has no baskets, campaigns or campaign households: run "
            "`retailpulse ingest completejourney` (it loads campaign_households)",
            details={"tenant": tenant},
        )
    records, stores = {}, []
    for _, row in d.campaigns.sort_values("campaign_id").iterrows():
        step(f"campaign {int(row['campaign_id'])}: matching and difference-in-differences")
        rec, srows = _record(d, row, cfg)
        records[rec["campaignId"]] = rec
        stores.extend(srows)
    done = [r for r in records.values() if r["status"] == ESTIMATED]
    if not done:
        raise ValidationFailed(
            f"tenant {tenant!r}: no campaign could be estimated "
            f"({sorted({r['status'] for r in records.values()})})",
            details={"tenant": tenant},
        )
    placebos = [r["placebo"] for r in done if r.get("placebo")]
    table = {
        "campaigns": len(records),
        "estimated": len(done),
        "significant_positive": sum(r["spend"]["ciLow"] > 0 for r in done),
        "mean_max_abs_smd_before": float(np.mean([r["balance"]["maxAbsSmdBefore"] for r in done])),
        "mean_max_abs_smd_after": float(np.mean([r["balance"]["maxAbsSmdAfter"] for r in done])),
        "mean_abs_naive_minus_matched": float(
            np.mean([abs(r["spend"]["naivePerHouseholdWeek"] - r["spend"]["perHouseholdWeek"]) for r in done])
        ),
        "placebos": len(placebos),
        "placebo_ci_covers_zero": sum(p["coversZero"] for p in placebos),
        "mean_abs_placebo": float(np.mean([abs(p["perHouseholdWeek"]) for p in placebos])) if placebos else None,
    }  # fmt: skip
    window = {
        "days": [str(d.first_day), str(d.end_day - 1)],
        "households": int(len(d.households)),
        "stores": sorted(set(d.store.tolist())),
        "pre_days": cfg.pre_days,
        "controls": "unexposed to overlapping campaigns" if cfg.exclude_overlapping else "not in the campaign",
    }  # fmt: skip
    store_frame = pd.DataFrame(
        stores, columns=["campaign_id", "store_id", "households", "uplift_spend_week",
                         "per_household", "ci_low", "ci_high"],
    )  # fmt: skip
    bundle = PromotionsBundle(
        records, store_frame, {**window, "min_store_households": cfg.min_store_households}
    )
    seconds = {"total": round(time.perf_counter() - started, 1)}
    return PromotionsRun(bundle, table, window, table["mean_max_abs_smd_after"], seconds=seconds)
