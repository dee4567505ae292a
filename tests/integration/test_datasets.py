"""The warehouse gives the models the same line items Complete Journey does (one code path)."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def test_warehouse_line_items_match_complete_journey(sample_warehouse):
    from core.settings import get_settings
    from tests.conftest import SAMPLE_HOUSEHOLDS
    from training.datasets import ITEM_COLUMNS, cj_line_items, merchandise, warehouse_line_items

    ours, products = warehouse_line_items(get_settings().tenant)
    cj, cj_products = cj_line_items(households=SAMPLE_HOUSEHOLDS)

    assert list(ours.columns) == list(ITEM_COLUMNS)
    assert ours["customer_id"].nunique() == SAMPLE_HOUSEHOLDS
    key = ["transaction_id", "product_id", "quantity", "sales_value"]
    a = ours.sort_values(key).reset_index(drop=True)
    b = cj.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    # the merchandise filter keeps the same rows on both
    assert len(merchandise(ours, products)) == len(merchandise(cj, cj_products))
