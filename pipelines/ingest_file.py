"""`retailpulse ingest file`: import a retailer's export (CSV, Parquet, Excel) through a mapping.

Per file: read and check every row (pipelines/quality.py) before anything is written; then, in
one database transaction under the tenant's ingest lock, skip transactions the warehouse already
has, apply the warehouse rules, and COPY what is left into the same tables `ingest
completejourney` fills. Past `max_reject_rate`, or with `dry_run`, the transaction is rolled
back: the warehouse is untouched. Every rejected row goes to the report (CSV and JSON).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from core import events
from core.bulk import copy_frame, upsert_frame
from core.db import connect
from core.errors import ValidationFailed
from core.partitions import attach, can_bulk_attach, create_detached
from core.settings import get_settings
from core.tenants import validate_tenant
from pipelines.import_report import FileResult, ImportSummary, write_report
from pipelines.ingest import ITEM_COLUMNS, PARTITIONED, TXN_COLUMNS
from pipelines.mapping import Mapping, read_source
from pipelines.quality import MESSAGES, REPORT_COLUMNS, Checked, check_rows, text_id

Progress = Callable[[str, int, int], None]  # (stage, advance, total)


class RejectRateExceeded(ValidationFailed):
    """More rows were rejected than --max-reject-rate allows; nothing was written."""

    summary: ImportSummary


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


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


def _warehouse_rules(
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


def _frames(checked: Checked, keep: np.ndarray, mapping: Mapping, tenant: str) -> dict:
    """Warehouse rows from the accepted lines (`keep`), in transaction and line order."""
    rows = checked.rows
    idx = np.flatnonzero(keep)
    txn_all = rows["transaction_id"].to_numpy()[idx]
    line_all = rows["line_no"].to_numpy()[idx]
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
        }
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
        }
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


_KEYS = {
    "stores": ["tenant_id", "store_id"],
    "customers": ["tenant_id", "customer_id"],
    "products": ["tenant_id", "product_id"],
}


def _write(conn: psycopg.Connection, frames: dict, tenant: str, tick: Progress) -> dict[str, int]:
    """COPY facts (a fresh tenant: into detached partitions, attached after); upsert dimensions."""
    written: dict[str, int] = {}
    fresh = [t for t in PARTITIONED if can_bulk_attach(conn, t, tenant)]
    target = {t: create_detached(conn, t, tenant) if t in fresh else t for t in PARTITIONED}
    items = frames["transaction_items"]
    written["transaction_items"] = copy_frame(
        conn, target["transaction_items"], items, ITEM_COLUMNS,
        on_chunk=lambda n: tick("write", n, len(items)),
    )  # fmt: skip
    written["transactions"] = copy_frame(conn, target["transactions"], frames["transactions"],
                                         TXN_COLUMNS)  # fmt: skip
    for table in fresh:
        attach(conn, table, tenant)
    for name, key in _KEYS.items():
        frame = frames[name]
        cols = ["tenant_id", *[c for c in frame.columns if c != "tenant_id"]]
        has_rows = conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {name} WHERE tenant_id = %s)", (tenant,)
        ).fetchone()[0]
        if not len(frame):
            written[name] = 0
        elif has_rows:  # stage + INSERT … ON CONFLICT DO NOTHING: existing rows stay as they are
            written[name] = upsert_frame(conn, name, frame, cols, key)
        else:  # a tenant's first rows go straight in (keys are distinct already)
            written[name] = copy_frame(conn, name, frame, cols)
    return written


def _problems(checked: Checked, path: Path) -> pd.DataFrame:
    parts = [p for p in checked.problems if len(p)]
    if not parts:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    problems = pd.concat(parts, ignore_index=True).sort_values(["idx", "rule"], kind="stable")
    problems["row"] = checked.rows["_row"].to_numpy()[problems["idx"].to_numpy()]
    problems["file"] = str(path)
    return problems[REPORT_COLUMNS]


@dataclass
class Prepared:
    """One file read and checked (no database yet)."""

    path: Path
    frame: pd.DataFrame
    malformed: list[dict]
    checked: Checked
    stages: dict[str, float]

    def reject_rate(self) -> float:
        rows = len(self.frame) + len(self.malformed)
        return (self.checked.rejected_mask().sum() + len(self.malformed)) / rows if rows else 0.0


def prepare(path: str | Path, mapping: Mapping) -> Prepared:
    """Read and check one file; raises SourceError when it cannot be read as mapped."""
    clock = time.perf_counter()
    path = Path(path)
    frame, malformed = read_source(path, mapping)
    read = time.perf_counter() - clock
    checked = check_rows(frame, mapping)
    broken = [text_id(m.get("transaction_id")) for m in malformed]
    if any(b is not None for b in broken):  # a transaction is loaded whole or not at all
        txn = checked.rows["transaction_id"].to_numpy()
        hit = np.isin(txn, [b for b in broken if b is not None])
        hit &= ~checked.rejected_mask() & ~checked.duplicate_mask()
        checked.flag(hit, "transaction_id", "transaction_has_rejected_line")
    stages = {"read": round(read, 3), "check": round(time.perf_counter() - clock - read, 3)}
    return Prepared(path, frame, malformed, checked, stages)


def import_file(
    path: str | Path | Prepared,
    mapping: Mapping,
    *,
    tenant: str,
    dry_run: bool = False,
    max_reject_rate: float | None = None,
    url: str | None = None,
    progress: Progress | None = None,
) -> tuple[FileResult, pd.DataFrame]:
    """Check and load one file in one transaction; returns the result and its report rows."""
    validate_tenant(tenant)
    tick: Progress = progress or (lambda stage, advance, total: None)
    ready = path if isinstance(path, Prepared) else prepare(path, mapping)
    path, frame, malformed, checked = ready.path, ready.frame, ready.malformed, ready.checked
    result = FileResult(file=str(path), stages=dict(ready.stages))
    tick("check", 1, 1)
    clock = time.perf_counter()
    result.rows = len(frame) + len(malformed)
    landed = None
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ingest:{tenant}",))
        fresh = can_bulk_attach(conn, "transactions", tenant)
        _warehouse_rules(conn, checked, mapping, tenant, fresh)
        result.stages["warehouse_rules"] = round(time.perf_counter() - clock, 3)
        problems = _problems(checked, path)
        if malformed:
            extra = pd.DataFrame(
                {
                    "file": str(path),
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
        rejected = checked.rejected_mask()
        dup = checked.duplicate_mask() & ~rejected
        result.rejected = int(rejected.sum()) + len(malformed)
        result.duplicates = int(dup.sum())
        result.accepted = len(frame) - int(rejected.sum()) - result.duplicates
        rule_rows = problems.drop_duplicates(["row", "rule"])["rule"].value_counts()
        result.rules = {str(k): int(v) for k, v in rule_rows.items()}
        result.rules.update({k: len(v) for k, v in checked.duplicates.items()})
        rate = result.rejected / result.rows if result.rows else 0.0
        if max_reject_rate is not None and rate > max_reject_rate:
            conn.rollback()
            result.aborted = (
                f"{result.rejected} of {result.rows} rows rejected ({rate:.1%}) > "
                f"--max-reject-rate {max_reject_rate:.1%}; nothing was written"
            )
        elif dry_run:
            conn.rollback()
        else:
            frames = _frames(checked, ~rejected & ~dup, mapping, tenant)
            result.written = _write(conn, frames, tenant, tick)
            txns = frames["transactions"]
            landed = events.sales_landed(
                tenant,
                "file",
                txns["transaction_timestamp"],
                txns["store_id"],
                txns["total_sales"],
                database_url=url,
            )
            events.in_transaction(conn, landed)
            counts = {**result.written, "accepted": result.accepted,
                      "rejected": result.rejected, "duplicates": result.duplicates}  # fmt: skip
            conn.execute(
                "INSERT INTO ingest_runs (tenant_id, source, scope, counts) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, source, scope) DO UPDATE SET finished_at = now(), counts ="
                " ingest_runs.counts || jsonb_build_object('last_run', EXCLUDED.counts)",
                (tenant, f"file:{mapping.name}", f"{path.name}:{_file_digest(path)}",
                 psycopg.types.json.Jsonb(counts)),
            )  # fmt: skip
    if landed is not None:
        events.after_commit(landed)
    result.stages["write_commit"] = round(
        time.perf_counter() - clock - result.stages["warehouse_rules"], 3
    )
    result.seconds = round(sum(result.stages.values()), 3)
    return result, problems


def ingest_files(
    paths: Sequence[str | Path],
    mapping: Mapping,
    *,
    tenant: str | None = None,
    dry_run: bool = False,
    max_reject_rate: float | None = None,
    report_dir: str | Path | None = None,
    url: str | None = None,
    progress: Progress | None = None,
) -> tuple[ImportSummary, pd.DataFrame]:
    """Import each file (one transaction each); write the report; return it and its rows.

    Raises RejectRateExceeded (after writing the report) when a file passes max_reject_rate.
    """
    tenant = validate_tenant(tenant or get_settings().tenant)
    if max_reject_rate is not None and not 0 <= max_reject_rate <= 1:
        raise ValidationFailed("--max-reject-rate must be between 0 and 1")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    where = Path(report_dir) if report_dir else get_settings().home_dir / "reports" / stamp
    summary = ImportSummary(tenant=tenant, mapping=mapping.name, dry_run=dry_run,
                            report_dir=str(where))  # fmt: skip
    all_problems = []
    items: list[str | Path | Prepared] = list(paths)
    if max_reject_rate is not None and len(items) > 1:
        # check every file before writing any, so one bad file stops the whole load
        items = [prepare(p, mapping) for p in items]
        worst = max(items, key=lambda p: p.reject_rate())
        if worst.reject_rate() > max_reject_rate:
            items = [worst]  # its import reports the rows and aborts without writing
    for item in items:
        result, problems = import_file(
            item, mapping, tenant=tenant, dry_run=dry_run, max_reject_rate=max_reject_rate,
            url=url, progress=progress,
        )  # fmt: skip
        summary.files.append(result)
        all_problems.append(problems)
        if result.aborted:
            break
    problems = pd.concat(all_problems, ignore_index=True) if all_problems else pd.DataFrame()
    write_report(summary, problems, where)
    aborted = [f for f in summary.files if f.aborted]
    if aborted:
        error = RejectRateExceeded(
            f"{aborted[0].file}: {aborted[0].aborted} (report: {where})",
            details={"report_dir": str(where)},
        )
        error.summary = summary
        raise error
    return summary, problems
