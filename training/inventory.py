"""Inventory policy arithmetic: demand over lead time → safety stock → reorder point and order.

Pure functions, no I/O; the inventory routes (`serving/routers/inventory.py`) feed them the
served forecaster's weekly quantiles. The policy is a periodic-review (R, s, S) policy with a
cycle service level (the probability of no stockout in a replenishment cycle):

* demand in week w is taken as normal with mean p50_w and sigma_w = (p90_w - p10_w) / (2 z_0.9)
  (z_0.9 = 1.2816: the p10..p90 interval of a normal spans 2.563 sigma). Weekly errors are
  taken as independent, so over k weeks mean = sum p50_w and sigma = sqrt(sum sigma_w^2)
  (the textbook sigma_L = sigma_week * sqrt(L) when weeks are alike). Forecast errors are in
  practice positively correlated across weeks, so this is a lower bound on the true sigma.
* safety stock      SS = z(serviceLevel) * sigma_L                 (L = lead time in weeks)
* reorder point     s  = mean_L + SS
* order-up-to level S  = mean_{L+R} + z * sigma_{L+R}           (R = review period in weeks)
* reorder now when on hand <= s (no open orders are known, so on hand is the inventory
  position); then order max(S - on hand, EOQ) units, rounded up to whole units (EOQ only when
  ordering and holding costs are given), else 0.
* EOQ = sqrt(2 D K / h): D annual demand (weekly mean * 52), K cost per order, h holding cost
  per unit and year (holding cost rate * unit value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

WEEKS_PER_YEAR = 52
Z_90 = NormalDist().inv_cdf(0.9)  # 1.28155...
MIN_SERVICE_LEVEL = 0.5
MAX_SERVICE_LEVEL = 0.999


def z_value(service_level: float) -> float:
    """The standard normal quantile of a cycle service level in [0.5, 0.999]."""
    if not MIN_SERVICE_LEVEL <= service_level <= MAX_SERVICE_LEVEL:
        raise ValueError(
            f"service level {service_level} outside {MIN_SERVICE_LEVEL}..{MAX_SERVICE_LEVEL}"
        )
    return NormalDist().inv_cdf(service_level)


def sigma_from_quantiles(p10: float, p90: float) -> float:
    """The sigma of a normal whose 10th and 90th percentiles are p10 and p90 (0 if crossed)."""
    return max(p90 - p10, 0.0) / (2 * Z_90)


@dataclass(frozen=True)
class Demand:
    """Demand over a period: mean and standard deviation, in units."""

    mean: float
    sigma: float


def period_demand(means: Sequence[float], sigmas: Sequence[float], weeks: int) -> Demand:
    """Demand over the first `weeks` weeks (weekly errors independent)."""
    if weeks < 0 or weeks > len(means) or len(means) != len(sigmas):
        raise ValueError(f"need {weeks} weekly means and sigmas, got {len(means)}/{len(sigmas)}")
    mean = float(sum(means[:weeks]))
    sigma = math.sqrt(sum(s * s for s in sigmas[:weeks]))
    return Demand(mean=max(mean, 0.0), sigma=sigma)


def quantile_weeks(weeks: Sequence[tuple[float, float, float]]) -> tuple[list[float], list[float]]:
    """Weekly (means, sigmas) from (p10, p50, p90) triples."""
    return [p50 for _, p50, _ in weeks], [sigma_from_quantiles(p10, p90) for p10, _, p90 in weeks]


def history_sigma(history: Sequence[float]) -> float:
    """Sample standard deviation of weekly units (0 with fewer than two weeks)."""
    n = len(history)
    if n < 2:
        return 0.0
    mean = sum(history) / n
    return math.sqrt(sum((x - mean) ** 2 for x in history) / (n - 1))


def eoq(weekly_demand: float, ordering_cost: float, holding_cost_per_unit_year: float) -> float:
    """Economic order quantity sqrt(2 D K / h), D = annual demand; 0 without demand."""
    if ordering_cost < 0 or holding_cost_per_unit_year <= 0:
        raise ValueError("ordering cost must be >= 0 and holding cost per unit-year > 0")
    annual = max(weekly_demand, 0.0) * WEEKS_PER_YEAR
    return math.sqrt(2 * annual * ordering_cost / holding_cost_per_unit_year)


@dataclass(frozen=True)
class Policy:
    """The answer for one store x product."""

    on_hand: float
    safety_stock: float
    reorder_point: float
    order_up_to: float
    reorder_now: bool
    order_quantity: int
    eoq: float | None
    weeks_of_cover: float | None  # on hand / mean weekly demand; None without demand

    @property
    def shortfall(self) -> float:
        """Units the on-hand is below the reorder point (0 when above)."""
        return max(self.reorder_point - self.on_hand, 0.0)


def inventory_policy(
    *,
    lead: Demand,
    protection: Demand,
    lead_weeks: int,
    z: float,
    on_hand: float,
    eoq_units: float | None = None,
) -> Policy:
    """Safety stock, reorder point, order-up-to level and the order to place now.

    `lead` is demand over the lead time (L weeks), `protection` over lead time plus review
    period (L + R weeks).
    """
    if on_hand < 0:
        raise ValueError(f"on hand must be >= 0, got {on_hand}")
    safety = z * lead.sigma
    reorder_point = lead.mean + safety
    order_up_to = max(protection.mean + z * protection.sigma, reorder_point)
    reorder_now = on_hand <= reorder_point and reorder_point > 0
    quantity = 0
    if reorder_now:
        wanted = max(order_up_to - on_hand, eoq_units or 0.0)
        quantity = math.ceil(wanted - 1e-9)
    weekly = lead.mean / lead_weeks if lead_weeks else 0.0
    return Policy(
        on_hand=on_hand,
        safety_stock=safety,
        reorder_point=reorder_point,
        order_up_to=order_up_to,
        reorder_now=reorder_now,
        order_quantity=max(quantity, 0),
        eoq=eoq_units,
        weeks_of_cover=on_hand / weekly if weekly > 0 else None,
    )


def urgency_key(policy: Policy) -> tuple[float, float]:
    """Sort key, most urgent first: fewest weeks of cover, then the largest shortfall."""
    cover = policy.weeks_of_cover if policy.weeks_of_cover is not None else math.inf
    return (cover, -policy.shortfall)
