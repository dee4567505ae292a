"""Row validation at the edge: every rejected row says which field failed and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

LINE_ITEM_COLUMNS = (
    "household_id", "store_id", "basket_id", "product_id", "quantity", "sales_value",
    "retail_disc", "coupon_disc", "coupon_match_disc", "week", "transaction_timestamp",
)  # fmt: skip
_ID_COLUMNS = ("household_id", "store_id", "basket_id", "product_id")
_MONEY_COLUMNS = ("sales_value", "retail_disc", "coupon_disc", "coupon_match_disc")


@dataclass
class ValidationReport:
    """Good rows, rejected rows (with a `reason` column) and a count per reason."""

    good: pd.DataFrame
    rejected: pd.DataFrame
    reasons: dict[str, int] = field(default_factory=dict)


class MissingColumns(ValueError):
    """The input lacks columns the loader needs."""


def validate_line_items(df: pd.DataFrame) -> ValidationReport:
    """Check line items; a basket with any bad line is rejected whole (no partial baskets)."""
    missing = [c for c in LINE_ITEM_COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumns(f"line items lack required column(s): {', '.join(missing)}")

    reason = pd.Series("", index=df.index, dtype=object)

    def flag(mask: pd.Series, text: str) -> None:
        hit = mask.fillna(True) & (reason == "")
        reason[hit] = text

    for col in _ID_COLUMNS:
        values = pd.to_numeric(df[col], errors="coerce")
        flag(values.isna(), f"{col}: missing or not a number")
        flag(values <= 0, f"{col}: must be a positive id")
    qty = pd.to_numeric(df["quantity"], errors="coerce")
    flag(qty.isna(), "quantity: missing or not a number")
    flag(qty < 0, "quantity: must be >= 0")
    flag(qty.notna() & (qty != qty.round()), "quantity: must be a whole number")
    for col in _MONEY_COLUMNS:
        values = pd.to_numeric(df[col], errors="coerce")
        flag(values.isna(), f"{col}: missing or not a number")
        flag(values < 0, f"{col}: must be >= 0")
    ts = pd.to_datetime(df["transaction_timestamp"], errors="coerce")
    flag(ts.isna(), "transaction_timestamp: missing or not a timestamp")

    # A basket belongs to one household and one store; otherwise the source is inconsistent.
    per_basket = df.groupby("basket_id")[["household_id", "store_id"]].transform("nunique")
    flag((per_basket["household_id"] > 1), "basket_id: lines name more than one household")
    flag((per_basket["store_id"] > 1), "basket_id: lines name more than one store")

    bad_line = reason != ""
    bad_baskets = set(df.loc[bad_line, "basket_id"])
    sibling = ~bad_line & df["basket_id"].isin(bad_baskets)
    reason[sibling] = "basket_id: another line of this basket was rejected"

    rejected_mask = reason != ""
    rejected = df[rejected_mask].assign(reason=reason[rejected_mask])
    return ValidationReport(
        good=df[~rejected_mask],
        rejected=rejected,
        reasons=rejected["reason"].value_counts().to_dict(),
    )
