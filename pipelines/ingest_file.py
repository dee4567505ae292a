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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from core import events
from core.db import connect
from core.errors import ValidationFailed
from core.partitions import can_bulk_attach
from core.settings import get_settings
from core.tenants import validate_tenant
from pipelines.import_report import FileResult, ImportSummary, write_report
from pipelines.ingest_lines import (
    line_frames,
    load_dimension,
    report_rows,
    warehouse_rules,
    write_facts,
)
from pipelines.mapping import Mapping, read_source, require_file
from pipelines.quality import Checked, check_rows, text_id

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


_DIMENSIONS = ("stores", "customers", "products")


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
        warehouse_rules(conn, checked, mapping, tenant, fresh)
        result.stages["warehouse_rules"] = round(time.perf_counter() - clock, 3)
        problems = report_rows(checked, path, malformed)
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
            frames = line_frames(checked, ~rejected & ~dup, mapping, tenant)
            items = len(frames["transaction_items"])
            result.written = write_facts(conn, frames, tenant, lambda n: tick("write", n, items))
            for name in _DIMENSIONS:
                result.written[name] = load_dimension(conn, name, frames[name], tenant)
            mark = time.perf_counter()
            result.stages["write"] = round(mark - clock - result.stages["warehouse_rules"], 3)
            txns = frames["transactions"]
            landed = events.sales_landed(
                tenant,
                "file",
                txns["transaction_timestamp"],
                txns["store_id"],
                txns["total_sales"],
                database_url=url,
            )
            if fresh:  # the tenant's first baskets: its rollups come from these frames
                landed = replace(landed, first_load=(txns, frames["transaction_items"]))
            events.in_transaction(conn, landed)
            result.stages["rollups"] = round(time.perf_counter() - mark, 3)
            counts = {**result.written, "accepted": result.accepted,
                      "rejected": result.rejected, "duplicates": result.duplicates}  # fmt: skip
            conn.execute(
                "INSERT INTO ingest_runs (tenant_id, source, scope, counts) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, source, scope) DO UPDATE SET finished_at = now(), counts ="
                " ingest_runs.counts || jsonb_build_object('last_run', EXCLUDED.counts)",
                (tenant, f"file:{mapping.name}", f"{path.name}:{_file_digest(path)}",
                 psycopg.types.json.Jsonb(counts)),
            )  # fmt: skip
    done = sum(result.stages.get(k, 0.0) for k in ("warehouse_rules", "write", "rollups"))
    result.stages["commit"] = round(time.perf_counter() - clock - done, 3)
    if landed is not None:
        mark = time.perf_counter()
        events.after_commit(landed)  # cache, alert rules, live event (never fails the load)
        result.stages["after_commit"] = round(time.perf_counter() - mark, 3)
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
    # What can be known before the first commit is checked before it: a missing file or a
    # report folder that cannot be made must not fail the run after earlier files loaded.
    for path in map(Path, paths):
        require_file(path, " (nothing was written)")
    try:
        if where.exists() and not where.is_dir():
            raise FileExistsError(None, "a file is there, not a folder")
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationFailed(
            f"cannot create the report folder {where}: {exc.strerror or exc} (nothing was written)",
            details={"report_dir": str(where)},
        ) from exc
    all_problems = []
    items: list[str | Path | Prepared] = list(paths)
    if max_reject_rate is not None and len(items) > 1:
        # check every file before writing any, so one bad file stops the whole load
        items = [prepare(p, mapping) for p in items]
        worst = max(items, key=lambda p: p.reject_rate())
        if worst.reject_rate() > max_reject_rate:
            items = [worst]  # its import reports the rows and aborts without writing
    for item in items:
        try:
            result, problems = import_file(
                item, mapping, tenant=tenant, dry_run=dry_run, max_reject_rate=max_reject_rate,
                url=url, progress=progress,
            )  # fmt: skip
        except ValidationFailed as exc:
            if not summary.files:
                raise
            # a later file cannot be read: the earlier ones are committed, so say which and
            # keep their report
            write_report(summary, pd.concat(all_problems, ignore_index=True), where)
            done = ", ".join(Path(f.file).name for f in summary.files)
            raise ValidationFailed(
                f"{exc.message.rstrip('.')}; {'checked' if dry_run else 'loaded'} before it: "
                f"{done} (report: {where})",
                details={**exc.details, "report_dir": str(where)},
            ) from exc
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
