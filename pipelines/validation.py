"""Row validation at the edge: every rejected row says which field failed and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
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

    # Reasons are kept as small integer codes (0 = fine) and turned into text only for the
    # rejected rows: string comparisons over 1.47M rows cost seconds.
    texts: list[str] = [""]
    code = np.zeros(len(df), dtype=np.int16)

    def flag(mask, text: str) -> None:
        hit = np.asarray(mask, dtype=bool) & (code == 0)
        if hit.any():
            texts.append(text)
            code[hit] = len(texts) - 1

    def numeric(col: str) -> np.ndarray:
        values = df[col]
        if not pd.api.types.is_numeric_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
        return values.to_numpy(dtype="float64", na_value=np.nan)

    for col in _ID_COLUMNS:
        values = numeric(col)
        flag(np.isnan(values), f"{col}: missing or not a number")
        flag(values <= 0, f"{col}: must be a positive id")
    qty = numeric("quantity")
    flag(np.isnan(qty), "quantity: missing or not a number")
    flag(qty < 0, "quantity: must be >= 0")
    flag(qty != np.round(qty), "quantity: must be a whole number")
    for col in _MONEY_COLUMNS:
        values = numeric(col)
        flag(np.isnan(values), f"{col}: missing or not a number")
        flag(values < 0, f"{col}: must be >= 0")
    ts = df["transaction_timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts, errors="coerce")
    flag(ts.isna().to_numpy(), "transaction_timestamp: missing or not a timestamp")

    # A basket belongs to one household and one store; otherwise the source is inconsistent.
    for col, text in (("household_id", "household"), ("store_id", "store")):
        pairs = df[["basket_id", col]].drop_duplicates()
        mixed = pairs["basket_id"][pairs["basket_id"].duplicated()].unique()
        if len(mixed):
            flag(
                df["basket_id"].isin(mixed).to_numpy(),
                f"basket_id: lines name more than one {text}",
            )

    bad_line = code != 0
    bad_baskets = df["basket_id"].to_numpy()[bad_line]
    if len(bad_baskets):
        flag(
            df["basket_id"].isin(bad_baskets).to_numpy(),
            "basket_id: another line of this basket was rejected",
        )

    rejected_mask = code != 0
    reasons = np.asarray(texts, dtype=object)[code[rejected_mask]]
    rejected = df[rejected_mask].assign(reason=reasons)
    return ValidationReport(
        good=df[~rejected_mask],
        rejected=rejected,
        reasons=rejected["reason"].value_counts().to_dict(),
    )
