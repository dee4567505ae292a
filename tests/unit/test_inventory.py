"""Inventory policy arithmetic (training/inventory.py) on known values and textbook examples."""

from __future__ import annotations

import math

import pytest

from training import inventory as inv


@pytest.mark.parametrize(
    "level, z",
    [(0.5, 0.0), (0.9, 1.2816), (0.95, 1.6449), (0.975, 1.9600), (0.99, 2.3263), (0.999, 3.0902)],
)
def test_z_values_match_the_normal_table(level: float, z: float) -> None:
    assert inv.z_value(level) == pytest.approx(z, abs=1e-4)


@pytest.mark.parametrize("level", [0.49, 1.0, 0.9995, -0.1])
def test_service_levels_outside_the_range_are_refused(level: float) -> None:
    with pytest.raises(ValueError, match="0.5..0.999"):
        inv.z_value(level)


def test_sigma_from_the_p10_p90_interval_of_a_normal() -> None:
    # normal(100, 20): p10 = 100 - 1.2816 * 20, p90 = 100 + 1.2816 * 20
    assert inv.sigma_from_quantiles(100 - 25.631, 100 + 25.631) == pytest.approx(20, abs=1e-3)
    assert inv.sigma_from_quantiles(5, 5) == 0.0
    assert inv.sigma_from_quantiles(6, 5) == 0.0  # crossed quantiles carry no spread


def test_demand_over_weeks_adds_means_and_variances() -> None:
    d = inv.period_demand([100.0] * 8, [20.0] * 8, 4)
    assert d.mean == pytest.approx(400)
    assert d.sigma == pytest.approx(40)  # sigma_week * sqrt(L)
    uneven = inv.period_demand([10.0, 30.0], [3.0, 4.0], 2)
    assert (uneven.mean, uneven.sigma) == (pytest.approx(40), pytest.approx(5))
    with pytest.raises(ValueError):
        inv.period_demand([1.0], [1.0], 2)


def test_textbook_reorder_point_with_safety_stock() -> None:
    # weekly demand 100 +- 20, lead time 4 weeks, 95% cycle service: SS = 1.645 * 40
    lead = inv.period_demand([100.0] * 5, [20.0] * 5, 4)
    prot = inv.period_demand([100.0] * 5, [20.0] * 5, 5)
    z = inv.z_value(0.95)
    p = inv.inventory_policy(lead=lead, protection=prot, lead_weeks=4, z=z, on_hand=300)
    assert p.safety_stock == pytest.approx(65.79, abs=0.01)
    assert p.reorder_point == pytest.approx(465.79, abs=0.01)
    assert p.order_up_to == pytest.approx(500 + z * 20 * math.sqrt(5))
    assert p.reorder_now
    assert p.order_quantity == math.ceil(p.order_up_to - 300)
    assert p.weeks_of_cover == pytest.approx(3.0)


def test_above_the_reorder_point_nothing_is_ordered() -> None:
    d = inv.Demand(mean=50, sigma=10)
    p = inv.inventory_policy(lead=d, protection=d, lead_weeks=1, z=1.645, on_hand=80)
    assert not p.reorder_now and p.order_quantity == 0 and p.shortfall == 0


def test_textbook_eoq_and_it_sets_a_floor_on_the_order() -> None:
    # Heizer & Render: D = 1,000 units a year, K = $10 per order, h = $0.50 per unit-year → 200
    assert inv.eoq(1000 / 52, 10, 0.5) == pytest.approx(200)
    assert inv.eoq(0, 10, 0.5) == 0
    with pytest.raises(ValueError):
        inv.eoq(10, 10, 0)
    d = inv.Demand(mean=20, sigma=5)
    p = inv.inventory_policy(lead=d, protection=d, lead_weeks=1, z=1.645, on_hand=10, eoq_units=200)
    assert p.order_quantity == 200  # order-up-to minus on hand is smaller than the EOQ


def test_no_demand_means_no_order_even_with_nothing_on_hand() -> None:
    d = inv.Demand(mean=0, sigma=0)
    p = inv.inventory_policy(lead=d, protection=d, lead_weeks=2, z=2.0, on_hand=0)
    assert not p.reorder_now and p.order_quantity == 0 and p.weeks_of_cover is None
    with pytest.raises(ValueError, match="on hand"):
        inv.inventory_policy(lead=d, protection=d, lead_weeks=1, z=1.0, on_hand=-1)


def test_urgency_puts_the_fewest_weeks_of_cover_first() -> None:
    def policy(mean: float, on_hand: float) -> inv.Policy:
        d = inv.Demand(mean=mean, sigma=mean / 4)
        return inv.inventory_policy(lead=d, protection=d, lead_weeks=1, z=1.645, on_hand=on_hand)

    low, empty_big, empty_small, full = policy(10, 5), policy(40, 0), policy(4, 0), policy(10, 30)
    ranked = sorted([full, low, empty_small, empty_big], key=inv.urgency_key)
    assert ranked == [empty_big, empty_small, low, full]


def test_history_sigma_is_the_sample_standard_deviation() -> None:
    assert inv.history_sigma([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.138, abs=1e-3)
    assert inv.history_sigma([3]) == 0.0
