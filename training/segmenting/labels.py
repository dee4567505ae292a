"""Marketer names for segments, from their mean recency, frequency and monetary value.

Rule (deterministic, uses only the profiles): a segment is *recent* when its mean recency_days
is at most the customer-weighted mean over segments, and *high value* when the geometric mean of
its frequency and monetary ratios to the weighted means is at least 1. Then:

- recent and high value: the highest-value one is "Champions", others "Loyal regulars";
- recent, low value: "New or occasional";
- not recent, high value: "At risk" (they used to buy a lot);
- not recent, low value: "Lapsed / low value".

Repeated names get " 2", " 3"… in descending value order, so every segment's name is unique.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _value_score(profiles: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """Geometric mean of the F and M ratios to their customer-weighted means (1 = average)."""
    out = np.ones(len(profiles))
    for col in ("frequency", "monetary"):
        v = profiles[col].to_numpy(dtype=np.float64)
        mean = float(np.average(v, weights=weights))
        out *= np.sqrt(v / mean) if mean > 0 else 1.0
    return out


def segment_labels(profiles: pd.DataFrame) -> list[str]:
    """One unique name per row of `profiles` (columns recency_days, frequency, monetary, size?)."""
    if len(profiles) == 0:
        return []
    sizes = profiles["size"] if "size" in profiles else pd.Series(1.0, index=profiles.index)
    weights = sizes.to_numpy(dtype=np.float64)
    if weights.sum() <= 0:  # all-empty profiles: weigh segments equally
        weights = np.ones(len(profiles))
    recency = profiles["recency_days"].to_numpy(dtype=np.float64)
    recent = recency <= np.average(recency, weights=weights)
    value = _value_score(profiles, weights)
    high = value >= 1.0
    names = np.where(
        recent,
        np.where(high, "Loyal regulars", "New or occasional"),
        np.where(high, "At risk", "Lapsed / low value"),
    ).astype(object)
    best_recent = np.flatnonzero(recent & high)
    if len(best_recent):
        names[best_recent[np.argmax(value[best_recent])]] = "Champions"
    # Repeats: the highest-value one keeps the bare name (stable order by value, then row).
    seen: dict[str, int] = {}
    for i in sorted(range(len(names)), key=lambda i: (-value[i], i)):
        seen[names[i]] = seen.get(names[i], 0) + 1
        if seen[names[i]] > 1:
            names[i] = f"{names[i]} {seen[names[i]]}"
    return [str(n) for n in names]
