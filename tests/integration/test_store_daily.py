"""The SQL store x day rollup gives the anomaly detector the panel its protocol code builds."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_rollup_panel_equals_line_item_panel(sample_warehouse):
    from core.db import connect
    from core.settings import get_settings
    from features.store_daily import compute_store_daily, date_range, known_stores
    from training.anomaly.data import daily_panel
    from training.anomaly_run import tenant_panel
    from training.datasets import warehouse_line_items

    tenant = get_settings().tenant
    with connect() as conn:
        written = compute_store_daily(conn, tenant=tenant)
        again = compute_store_daily(conn, tenant=tenant)  # idempotent: replaces, never adds
        first, last = date_range(conn, tenant=tenant)
        stores = known_stores(conn, tenant=tenant)
    assert written == again > 0

    ours = tenant_panel(tenant)
    items, _ = warehouse_line_items(tenant)
    theirs = daily_panel(items)
    assert list(ours.store_ids) == list(theirs.store_ids) == stores
    assert ours.dates[0] == np.datetime64(first) and ours.dates[-1] == np.datetime64(last)
    assert np.array_equal(ours.dates, theirs.dates)
    np.testing.assert_allclose(ours.sales, theirs.sales, atol=1e-6)
    np.testing.assert_array_equal(ours.transactions, theirs.transactions)
    np.testing.assert_allclose(ours.avg_basket, theirs.avg_basket, atol=1e-6)
    np.testing.assert_allclose(ours.price_index, theirs.price_index, atol=1e-6, equal_nan=True)
    # one row per store-day with a transaction (net sales may be 0 after returns)
    assert (ours.transactions > 0).sum() == written
