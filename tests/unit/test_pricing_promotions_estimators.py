"""The pricing and promotion estimators recover known answers on synthetic data."""

from __future__ import annotations

import numpy as np

from training.models.elasticity import fit_elasticity, price_changes, within
from training.models.uplift import matched_did


def _panel(seed: int, beta: float = -1.5, products: int = 60, weeks: int = 40):
    """Units with product and week effects, where dearer products sell *more* (so a pooled
    regression across products gets the sign wrong) and prices move within products."""
    rng = np.random.default_rng(seed)
    base_price = rng.uniform(1, 10, products)
    appeal = 2.0 * np.log(base_price) + rng.normal(0, 0.3, products)
    week_fx = rng.normal(0, 0.2, weeks)
    p, w = np.meshgrid(np.arange(products), np.arange(weeks), indexing="ij")
    p, w = p.ravel(), w.ravel()
    log_price = np.log(base_price[p]) + rng.choice([0.0, -0.1, -0.2, 0.05], len(p))
    shock = rng.normal(0, 0.15, products)[p]  # product-level serial correlation
    log_units = appeal[p] + week_fx[w] + beta * log_price + shock * rng.normal(1, 0.1, len(p))
    log_units += rng.normal(0, 0.3, len(p))
    return log_units, log_price, p, w


def test_fixed_effects_recover_the_elasticity_inside_the_ci() -> None:
    covered = 0
    for seed in range(20):
        y, x, p, w = _panel(seed)
        fit = fit_elasticity(y, x, p, w, p)
        covered += fit.ci_low <= -1.5 <= fit.ci_high
        assert abs(fit.elasticity + 1.5) < 0.25
        assert fit.n_clusters == 60 and fit.n_obs == len(y)
    assert covered >= 17  # nominal 95 %: about 19 of 20
    pooled = np.polyfit(x, y, 1)[0]  # what ignoring product effects would say
    assert pooled > -1.0


def test_week_effects_absorb_a_common_shock_correlated_with_prices() -> None:
    y, x, p, w = _panel(3)
    x = x + 0.3 * (w >= 20)  # every price rises in the second half ...
    y = y - 1.5 * 0.3 * (w >= 20) + 1.0 * (w >= 20)  # ... while demand grows for other reasons
    with_weeks = fit_elasticity(y, x, p, w, p)
    without = fit_elasticity(y, x, p, w, p, week_effects=False)
    assert with_weeks.ci_low <= -1.5 <= with_weeks.ci_high
    assert not (without.ci_low <= -1.5 <= without.ci_high)


def test_within_and_price_changes() -> None:
    g = np.array([0, 0, 1, 1, 1])
    assert np.allclose(within(np.array([1.0, 3.0, 2.0, 2.0, 5.0]), g), [-1, 1, -1, -1, 2])
    lp = np.log([1.0, 1.0, 1.2, 2.0, 2.0])
    assert price_changes(lp, np.array([0, 0, 0, 1, 1]), np.array([1, 2, 3, 1, 2]), 0.01).sum() == 1


def _households(seed: int, n: int = 3000, uplift: float = 5.0):
    """Targeted high spenders who also grow faster: a naive DiD overstates the uplift."""
    rng = np.random.default_rng(seed)
    spend = rng.lognormal(3.5, 0.6, n)
    visits = rng.poisson(3, n) + 1.0
    X = np.column_stack([np.log(spend), np.log(visits)])
    treated = rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] - 3.8) * 2))
    growth = 0.1 * spend  # trend that depends on the pre-period level
    delta = growth + uplift * treated + rng.normal(0, 4, n)
    return delta, treated, X


def test_matched_did_recovers_the_uplift_and_balances() -> None:
    hits = 0
    for seed in range(10):
        delta, treated, X = _households(seed)
        r = matched_did(delta, treated, X, ["log_spend", "log_visits"], seed=seed, bootstrap=300)
        hits += r.ci_low <= 5.0 <= r.ci_high
        assert r.naive > 7.0  # the confounded comparison
        assert abs(r.smd_after["log_spend"]) < 0.1 < abs(r.smd_before["log_spend"])
        assert r.n_matched > 0.9 * r.n_treated
    assert hits >= 8


def synthetic_promotions(seed: int = 0, lift: float = 10.0):
    """(Data, true uplift per treated household-week) of a warehouse-shaped promotion world:
    campaign 1 targets the heaviest spenders so far, whose spend also drifts upward, and adds `lift` to each of
    their baskets in its window; campaign 2 starts before there is a pre-period; campaign 3
    reaches only 3 households."""
    import pandas as pd

    from training.promotions import build_data

    rng = np.random.default_rng(seed)
    n, days = 800, 210
    start = pd.Timestamp("2017-01-01")
    rate = rng.uniform(0.1, 0.5, n)  # baskets per day
    size = rng.lognormal(3.3, 0.4, n)
    rows = []
    for i in range(n):
        k = rng.poisson(rate[i] * days)
        day = np.sort(rng.integers(0, days, k))
        spend = size[i] * rng.lognormal(0, 0.3, k) * (1 + 0.0005 * size[i] * day / 30)
        rows.append(pd.DataFrame({"customer_id": i + 1, "day": day, "spend": spend,
                                  "store_id": str(1 + i % 2)}))  # fmt: skip
    b = pd.concat(rows, ignore_index=True)
    # the retailer targets on what it saw before the campaign (spend of days 0..119): the
    # bigger a household's spend, the likelier it gets the campaign
    seen = b[b["day"] < 120].groupby("customer_id")["spend"].sum().reindex(range(1, n + 1))
    z = np.log1p(seen.fillna(0).to_numpy())
    z = (z - z.mean()) / z.std()
    treated = np.flatnonzero(rng.random(n) < 1 / (1 + np.exp(-(1.5 * z - 1.2))))
    in_window = b["customer_id"].isin(treated + 1) & b["day"].between(120, 155)
    b.loc[in_window, "spend"] += lift
    truth = lift * in_window.sum() / (len(treated) * 36 / 7)
    baskets = pd.DataFrame({
        "customer_id": b["customer_id"], "store_id": b["store_id"],
        "ts": start + pd.to_timedelta(b["day"], unit="D") + pd.Timedelta(hours=12),
        "total_sales": b["spend"],
    })  # fmt: skip
    exposure = pd.DataFrame({
        "campaign_id": [1] * len(treated) + [2] * 50 + [3] * 3,
        "customer_id": np.r_[treated + 1, np.arange(1, 51), np.arange(700, 703)],
    })  # fmt: skip
    campaigns = pd.DataFrame({
        "campaign_id": [1, 2, 3], "campaign_type": ["Type A", "Type B", "Type C"],
        "start": [start + pd.Timedelta(days=120), start + pd.Timedelta(days=5), start + pd.Timedelta(days=150)],
        "end": [start + pd.Timedelta(days=155), start + pd.Timedelta(days=40), start + pd.Timedelta(days=170)],
        "coupons": [12, 3, 1],
    })  # fmt: skip
    return build_data(baskets, exposure, campaigns), truth


def test_promotion_run_recovers_a_planted_campaign_uplift() -> None:
    from training.promotions import load_promotions_config, run_promotions, top_promotions

    cfg = load_promotions_config(bootstrap=200)
    errors, covered = [], 0
    for seed in range(4):
        data, truth = synthetic_promotions(seed)
        run = run_promotions(tenant="t", cfg=cfg, data=data)
        c1 = run.bundle.campaigns[1]
        s = c1["spend"]
        errors.append(s["perHouseholdWeek"] - truth)
        covered += s["ciLow"] <= truth <= s["ciHigh"]
        assert s["ciLow"] > 0
        assert c1["balance"]["maxAbsSmdAfter"] < 0.25 < c1["balance"]["maxAbsSmdBefore"]
        assert run.bundle.campaigns[2]["status"] == "insufficient pre-period"
        assert run.bundle.campaigns[3]["status"] == "too few households"
    assert covered >= 3
    assert abs(np.mean(errors)) < 0.15 * truth
    top = top_promotions(run.bundle, limit=5)
    assert [t["campaignId"] for t in top] == [1] and top[0]["recommendation"] == "run again"
    local = top_promotions(run.bundle, limit=5, store_id="1")
    assert local[0]["scope"] == "store" and local[0]["matchedHouseholds"] < c1["matched"]["treated"]
