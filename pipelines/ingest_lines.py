"""The line-item path every sales import shares: warehouse rules, warehouse frames, COPY.

`ingest file` (pipelines/ingest_file.py) and `ingest completejourney` (pipelines/ingest.py) both
map their source through a mapping (configs/mappings/), check every row with
pipelines/quality.py, and then call these functions inside one transaction under the tenant's
ingest lock: `warehouse_rules` (duplicates against the warehouse, unknown products),
`line_frames` (transactions, line items and the dimensions they name), `write_facts` (COPY; a
tenant's first load into detached partitions, attached after) and `load_dimension` (COPY for a
tenant's first rows, else insert-if-missing by natural key).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from core import events
from core.bulk import copy_frame, upsert_frame
from core.partitions import attach, can_bulk_attach, create_detached
from pipelines.mapping import Mapping
from pipelines.quality import MESSAGES, REPORT_COLUMNS, Checked

ITEM_COLUMNS = [
    "tenant_id", "transaction_id", "line_no", "product_id", "quantity", "sales_value",
    "retail_disc", "coupon_disc", "coupon_match_disc", "unit_price",
]  # fmt: skip
TXN_COLUMNS = [
    "tenant_id", "transaction_id", "customer_id", "store_id", "transaction_timestamp", "week",
    "item_count", "total_sales", "total_discount",
]  # fmt: skip
PARTITIONED = ("transactions", "transaction_items")
DIMENSION_KEYS = {
    "stores": ["tenant_id", "store_id"],
    "customers": ["tenant_id", "customer_id"],
    "products": ["tenant_id", "product_id"],
    "promotions": ["tenant_id", "promotion_id"],
    "promotion_placements": ["tenant_id", "store_id", "product_id", "week"],
}


def _existing(conn: psycopg.Connection, table: str, column: str, tenant: str, ids) -> set:
    """Which of `ids` the tenant's `table` already has (ids staged in a temp table)."""
    if len(ids) == 0:
        return set()
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _probe (id bigint) ON COMMIT DROP")
    conn.execute("TRUNCATE _probe")
    copy_frame(conn, "_probe", pd.DataFrame({"id": np.asarray(ids, dtype="int64")}), ["id"])
    rows = conn.execute(
        f"SELECT p.id FROM _probe p JOIN {table} t ON t.{column} = p.id AND t.tenant_id = %s",
        (tenant,),
    )
    return {r[0] for r in rows}


def warehouse_rules(
    conn: psycopg.Connection, checked: Checked, mapping: Mapping, tenant: str, fresh: bool
) -> None:
    """Duplicates against the warehouse and the unknown-product rule."""
    txn = checked.rows["transaction_id"].to_numpy()
    ok = ~checked.rejected_mask() & ~checked.duplicate_mask()
    if not fresh:  # a tenant without transactions has nothing to be a duplicate of
        known = _existing(conn, "transactions", "transaction_id", tenant, np.unique(txn[ok]))
        if known:
            hit = ok & np.isin(txn, np.fromiter(known, dtype="int64"))
            checked.duplicates["already_loaded"] = np.flatnonzero(hit)
    if mapping.unknown_product == "reject":
        product = checked.rows["product_id"].to_numpy()
        ok = ~checked.rejected_mask() & ~checked.duplicate_mask()
        known = _existing(conn, "products", "product_id", tenant, np.unique(product[ok]))
        unknown = ok & ~np.isin(product, np.fromiter(known, dtype="int64", count=len(known)))
        checked.flag(unknown, "product_code", "unknown_product")
        checked.reject_siblings()


def _in_order(txn: np.ndarray, line: np.ndarray) -> bool:
    """True when rows are already sorted by (transaction, line) — a sorted source skips a sort."""
    if len(txn) < 2:
        return True
    same = txn[1:] == txn[:-1]
    return bool(np.all(txn[1:] >= txn[:-1]) and np.all(line[1:][same] > line[:-1][same]))


def line_frames(checked: Checked, keep: np.ndarray, mapping: Mapping, tenant: str) -> dict:
    """Warehouse rows from the accepted lines (`keep`), in transaction and line order."""
    rows = checked.rows
    idx = np.flatnonzero(keep)
    txn_all = rows["transaction_id"].to_numpy()[idx]
    line_all = rows["line_no"].to_numpy()[idx]
    if not _in_order(txn_all, line_all):
        idx = idx[np.lexsort((line_all, txn_all))]

    def col(name: str) -> np.ndarray:
        return rows[name].to_numpy()[idx]

    qty = col("quantity")
    items = pd.DataFrame(
        {
            "tenant_id": tenant,
            "transaction_id": col("transaction_id"),
            "line_no": col("line_no").astype("int64"),
            "product_id": col("product_id"),
            "quantity": qty.astype("int64"),
            "sales_value": np.round(col("sales_value"), 2),
            "retail_disc": np.round(col("retail_disc"), 2),
            "coupon_disc": np.round(col("coupon_disc"), 2),
            "coupon_match_disc": np.round(col("coupon_match_disc"), 2),
            "unit_price": np.where(qty != 0, np.round(col("unit_price"), 4), np.nan),
        },
        copy=False,  # columns are fresh arrays; consolidating them would copy them all again
    )
    txn = items["transaction_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, txn[1:] != txn[:-1]]) if len(txn) else np.array([], int)
    ts = col("timestamp")
    disc = col("retail_disc") + col("coupon_disc") + col("coupon_match_disc")
    reduce = (lambda f, a: f.reduceat(a, starts)) if len(starts) else (lambda f, a: a[:0])
    txns = pd.DataFrame(
        {
            "tenant_id": tenant,
            "transaction_id": txn[starts],
            "customer_id": col("customer_id")[starts],
            "store_id": checked.stores[col("store")[starts]],
            "transaction_timestamp": reduce(np.minimum, ts.view("int64")).view(ts.dtype),
            "week": pd.array(col("week")[starts], dtype="Int64") if "week" in rows else None,
            "item_count": np.diff(np.r_[starts, len(txn)]),
            "total_sales": np.round(reduce(np.add, items["sales_value"].to_numpy()), 2),
            "total_discount": np.round(reduce(np.add, disc), 2),
        },
        copy=False,
    )
    stores = pd.DataFrame({"store_id": pd.unique(txns["store_id"])})
    stores = stores.assign(tenant_id=tenant, name="Store " + stores["store_id"].astype(str))
    customers = pd.DataFrame({"customer_id": pd.unique(txns["customer_id"])})
    customers = customers[customers["customer_id"] != mapping.guest_customer_id]
    product = items["product_id"].to_numpy()
    _, first = np.unique(product, return_index=True)
    products = pd.DataFrame({"tenant_id": tenant, "product_id": product[first]})
    for target, source in (("product_type", "product_name"),
                           ("product_category", "product_category"),
                           ("department", "product_department"),
                           ("brand", "product_brand")):  # fmt: skip
        if source in checked.source:
            values = checked.source[source].iloc[idx[first]].astype("string").str.strip()
            products[target] = values.to_numpy(dtype=object)
    return {
        "transaction_items": items,
        "transactions": txns,
        "stores": stores,
        "customers": customers.assign(tenant_id=tenant),
        "products": products,
    }


def _utc_text(values: pd.Series) -> pd.Series:
    """Naive UTC timestamps as `YYYY-MM-DD HH:MM:SS.ffffff+00` text for COPY: Arrow writes a
    zone-aware timestamp column to CSV ~30x slower than it casts a naive one to text."""
    text = pc.cast(pa.array(values.to_numpy(dtype="datetime64[us]")), pa.string())
    return pd.Series(pd.arrays.ArrowExtensionArray(pc.binary_join_element_wise(text, "+00", "")),
                     index=values.index)  # fmt: skip


def write_facts(
    conn: psycopg.Connection,
    frames: dict,
    tenant: str,
    on_chunk: Callable[[int], None] | None = None,
    *,
    stage_new: bool = True,
) -> dict[str, int]:
    """COPY line items and transactions (a tenant's first load: into detached partitions,
    attached after, so their indexes are built in one sorted pass); returns rows written.

    `stage_new`: note the baskets written as the transaction's new ones
    (`events.stage_new_baskets`: every one of them is, the caller skipped those already
    loaded), so the analytics rollups add them instead of recomputing the days they touch. Not
    on a tenant's first load: recomputing its days from scratch was faster there (bench/
    import_file.py, 300k lines: 1.9-2.6 s against 2.8-3.2 s by delta)."""
    fresh = [t for t in PARTITIONED if can_bulk_attach(conn, t, tenant)]
    target = {t: create_detached(conn, t, tenant) if t in fresh else t for t in PARTITIONED}
    txns = frames["transactions"]
    txns = txns.assign(transaction_timestamp=_utc_text(txns["transaction_timestamp"]))
    written = {
        "transaction_items": copy_frame(
            conn,
            target["transaction_items"],
            frames["transaction_items"],
            ITEM_COLUMNS,
            on_chunk=on_chunk,
        ),  # fmt: skip
        "transactions": copy_frame(conn, target["transactions"], txns, TXN_COLUMNS),
    }
    for table in fresh:
        attach(conn, table, tenant)
    if stage_new and "transactions" not in fresh:
        events.stage_new_baskets(conn, frames["transactions"]["transaction_id"].to_numpy())
    return written


def load_dimension(conn: psycopg.Connection, name: str, frame: pd.DataFrame, tenant: str) -> int:
    """A tenant's first rows go straight in with COPY; otherwise rows whose natural key is new
    are inserted (existing rows stay as they are). Returns rows written."""
    if not len(frame):
        return 0
    cols = ["tenant_id", *[c for c in frame.columns if c != "tenant_id"]]
    has_rows = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {name} WHERE tenant_id = %s)", (tenant,)
    ).fetchone()[0]
    if has_rows:
        return upsert_frame(conn, name, frame, cols, DIMENSION_KEYS[name])
    return copy_frame(conn, name, frame, cols)


def report_rows(checked: Checked, source: str | Path, malformed: list[dict] = ()) -> pd.DataFrame:
    """One report row per problem (file, row, field, value, rule, message), rows in order."""
    parts = [p for p in checked.problems if len(p)]
    if parts:
        problems = pd.concat(parts, ignore_index=True).sort_values(["idx", "rule"], kind="stable")
        problems["row"] = checked.rows["_row"].to_numpy()[problems["idx"].to_numpy()]
        problems["file"] = str(source)
        problems = problems[REPORT_COLUMNS]
    else:
        problems = pd.DataFrame(columns=REPORT_COLUMNS)
    if malformed:
        extra = pd.DataFrame(
            {
                "file": str(source),
                "row": [m["row"] for m in malformed],
                "field": "(row)",
                "value": [m["value"] for m in malformed],
                "rule": "malformed_row",
                "message": [
                    f"{MESSAGES['malformed_row']}: expected {m['expected']} fields,"
                    f" got {m['actual']}"
                    for m in malformed
                ],
            }  # fmt: skip
        )
        problems = pd.concat([extra, problems], ignore_index=True)
    return problems
