"""A small generated online-retail export with a few visible defects, for the demo and docs.

The defects are the ones a data team meets in real exports, one of each, so the quality report
has something to show: an unreadable date, a zero quantity, a negative price, a line repeated
verbatim, a cancellation (invoice prefixed "C") and a guest sale (no CustomerID).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
]  # fmt: skip
PRODUCTS = [
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55),
    ("71053", "WHITE METAL LANTERN", 3.39),
    ("84406B", "CREAM CUPID HEARTS COAT HANGER", 2.75),
    ("22752", "SET 7 BABUSHKA NESTING BOXES", 7.65),
    ("21730", "GLASS STAR FROSTED T-LIGHT HOLDER", 4.25),
    ("22633", "HAND WARMER UNION JACK", 1.85),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 1.69),
    ("22960", "JAM MAKING SET WITH JARS", 4.25),
]


def online_retail_sample(n_invoices: int = 200, seed: int = 7) -> pd.DataFrame:
    """Invoice lines in the online_retail mapping's layout, defects included (see module doc)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_invoices):
        day, minute = 1 + i % 28, int(rng.integers(0, 600))
        when = f"3/{day}/2011 {8 + minute // 60}:{minute % 60:02d}"
        customer = "" if i % 25 == 7 else str(12000 + int(rng.integers(0, 60)))
        for j in rng.choice(len(PRODUCTS), size=int(rng.integers(1, 5)), replace=False):
            code, name, price = PRODUCTS[j]
            rows.append([str(536000 + i), code, name, int(rng.integers(1, 13)), when, price,
                         customer, "United Kingdom"])  # fmt: skip
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.loc[3, "InvoiceDate"] = "31/02/2011 25:00"  # unreadable date
    df.loc[10, "Quantity"] = 0  # zero quantity
    df.loc[20, "UnitPrice"] = -1.0  # negative price
    returned = df.iloc[[30]].assign(InvoiceNo="C537000", Quantity=-2)  # a cancellation
    return pd.concat([df, df.iloc[[5]], returned], ignore_index=True)  # + a verbatim repeat


def write_sample(path: str | Path, n_invoices: int = 200, seed: int = 7) -> Path:
    """Write the sample as CSV (',' delimited, UTF-8) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    online_retail_sample(n_invoices, seed).to_csv(path, index=False)
    return path
