"""Bulk loads through PostgreSQL COPY (DESIGN: never row-by-row inserts)."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

CHUNK_ROWS = 200_000


def _csv_chunks(frame: pd.DataFrame, chunk_rows: int) -> Iterator[tuple[int, bytes]]:
    """CSV bytes per chunk, written by Arrow's C++ writer (~10x pandas' to_csv)."""
    naive = [c for c in frame.columns if pd.api.types.is_datetime64_dtype(frame[c])]
    if naive:  # timestamps without a zone are UTC by convention; say so to PostgreSQL
        frame = frame.assign(**{c: frame[c].dt.tz_localize("UTC") for c in naive})
    options = pacsv.WriteOptions(include_header=False)
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        sink = io.BytesIO()
        pacsv.write_csv(pa.Table.from_pandas(part, preserve_index=False), sink, options)
        yield len(part), sink.getvalue()


def copy_frame(
    conn: psycopg.Connection,
    table: str,
    df: pd.DataFrame,
    columns: Sequence[str],
    *,
    chunk_rows: int = CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """COPY `df[columns]` into `table` as CSV, in chunks; returns rows written.

    A background thread serialises the next chunk while PostgreSQL parses the current one,
    so client and server work overlap (Arrow releases the GIL while it writes).
    """
    stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    chunks: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in _csv_chunks(df[list(columns)], chunk_rows):
                chunks.put(item)
        except BaseException as exc:  # handed to the writer, which re-raises it
            failure.append(exc)
        finally:
            chunks.put(None)

    producer = threading.Thread(target=produce, name=f"csv-{table}", daemon=True)
    producer.start()
    written = 0
    try:
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            while (item := chunks.get()) is not None:
                rows, payload = item
                copy.write(payload)
                written += rows
                if on_chunk:
                    on_chunk(rows)
            if failure:
                raise failure[0]
    finally:
        while producer.is_alive():  # unblock the producer if the COPY failed midway
            try:
                chunks.get_nowait()
            except queue.Empty:
                producer.join(0.05)
    return written


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
