"""Bulk loads through PostgreSQL COPY (DESIGN: never row-by-row inserts)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pandas as pd
import psycopg
from psycopg import sql

CHUNK_ROWS = 200_000


def copy_frame(
    conn: psycopg.Connection,
    table: str,
    df: pd.DataFrame,
    columns: Sequence[str],
    *,
    chunk_rows: int = CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """COPY `df[columns]` into `table` as CSV, in chunks; returns rows written."""
    stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    frame = df[list(columns)]
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for start in range(0, len(frame), chunk_rows):
            part = frame.iloc[start : start + chunk_rows]
            buf = io.StringIO()
            part.to_csv(buf, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S+00")
            copy.write(buf.getvalue())
            if on_chunk:
                on_chunk(len(part))
    return len(frame)


def upsert_frame(
    conn: psycopg.Connection,
    table: str,
    df: pd.DataFrame,
    columns: Sequence[str],
    key: Sequence[str],
) -> int:
    """COPY into a temp table, then INSERT … ON CONFLICT (key) DO NOTHING; returns new rows."""
    tmp = f"_stage_{table}"
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
            sql.Identifier(tmp), sql.Identifier(table)
        )
    )
    copy_frame(conn, tmp, df, columns)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    cur = conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}) SELECT DISTINCT ON ({}) {} FROM {} ON CONFLICT ({}) DO NOTHING"
        ).format(
            sql.Identifier(table),
            cols,
            sql.SQL(", ").join(map(sql.Identifier, key)),
            cols,
            sql.Identifier(tmp),
            sql.SQL(", ").join(map(sql.Identifier, key)),
        )
    )
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(tmp)))
    return cur.rowcount
