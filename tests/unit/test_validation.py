"""Row validation: rejected rows name the field and the reason; baskets stay whole."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.validation import MissingColumns, validate_line_items


def _lines(**overrides) -> pd.DataFrame:
    base = {
        "household_id": [1, 1, 2],
        "store_id": [10, 10, 11],
        "basket_id": [100, 100, 200],
        "product_id": [5, 6, 7],
        "quantity": [1, 2, 1],
        "sales_value": [1.5, 3.0, 2.0],
        "retail_disc": [0.0, 0.5, 0.0],
        "coupon_disc": [0.0, 0.0, 0.0],
        "coupon_match_disc": [0.0, 0.0, 0.0],
        "week": [1, 1, 2],
        "transaction_timestamp": pd.to_datetime(["2017-01-01 10:00"] * 2 + ["2017-01-08 09:00"]),
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_clean_rows_pass() -> None:
    report = validate_line_items(_lines())
    assert len(report.good) == 3 and report.rejected.empty and report.reasons == {}


def test_negative_quantity_rejects_the_whole_basket() -> None:
    report = validate_line_items(_lines(quantity=[1, -2, 1]))
    assert sorted(report.good["basket_id"]) == [200]
    assert report.reasons == {
        "quantity: must be >= 0": 1,
        "basket_id: another line of this basket was rejected": 1,
    }


def test_non_numeric_money_is_named() -> None:
    report = validate_line_items(_lines(sales_value=[1.5, 3.0, "abc"]))
    assert report.rejected["reason"].tolist() == ["sales_value: missing or not a number"]


def test_basket_with_two_stores_is_rejected() -> None:
    report = validate_line_items(_lines(store_id=[10, 12, 11]))
    assert set(report.rejected["basket_id"]) == {100}
    assert "basket_id: lines name more than one store" in report.reasons


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(MissingColumns, match="quantity"):
        validate_line_items(_lines().drop(columns=["quantity"]))
