"""The in-memory pieces of analytics/rollup_frames.py: business day, hour and week of a time
(naive UTC or zone-aware alike), cents written as exact decimals, sorted distinct values. The
tables themselves are compared with a rebuild in tests/integration/test_rollup_frames.py."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from analytics.rollup_frames import _days, _money, _sorted_unique


def test_business_day_hour_and_week_follow_the_05_00_boundary() -> None:
    utc = pd.Series(pd.to_datetime(["2024-03-11 04:59:59", "2024-03-11 05:00:00",
                                    "2024-03-18 04:00:00", "2024-03-17 23:30:00"]))  # fmt: skip
    day, hour, week = _days(utc)
    assert [str(d) for d in day] == ["2024-03-10", "2024-03-11", "2024-03-17", "2024-03-17"]
    assert hour.tolist() == [23, 0, 23, 18]
    # 2024-03-11 is a Monday: business Sunday 03-10 belongs to the week before
    assert [str(w) for w in week] == ["2024-03-04", "2024-03-11", "2024-03-11", "2024-03-11"]
    # the same instants given in another zone give the same days
    aware = utc.dt.tz_localize("UTC").dt.tz_convert("America/Chicago")
    for a, b in zip(_days(aware), (day, hour, week), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cents_are_written_as_exact_decimals() -> None:
    cents = np.array([0, 1, -1, 249, -125, 123456789012, -99], dtype=np.int64)
    sink = io.BytesIO()
    table = pa.Table.from_pandas(pd.DataFrame({"m": _money(cents)}), preserve_index=False)
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    assert sink.getvalue().decode().split() == [
        "0.00", "0.01", "-0.01", "2.49", "-1.25", "1234567890.12", "-0.99"]  # fmt: skip


def test_sorted_unique_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(-50, 50, 1000)
    np.testing.assert_array_equal(_sorted_unique(values), np.unique(values))
    assert len(_sorted_unique(np.array([], dtype=np.int64))) == 0
