"""The anomaly deployment on a real warehouse: a store-day's answer does not depend on which
other stores a request names, and the scores a replica keeps follow the rollup's watermark."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import serving
from tests.unit.test_anomaly import _cfg, _synthetic

pytestmark = pytest.mark.integration

TENANT = "default"


def _write_rollup(conn, panel) -> None:
    """The panel as `store_daily_sales` rows, and the rollup's watermark moved to now."""
    conn.execute("DELETE FROM store_daily_sales WHERE tenant_id = %s", (TENANT,))
    with conn.cursor().copy(
        "COPY store_daily_sales (tenant_id, store_id, business_date, event_timestamp, sales,"
        " transactions, median_unit_price) FROM STDIN"
    ) as copy:
        for s, store in enumerate(panel.store_ids):
            for d, day in enumerate(panel.dates):
                stamp = f"{day + np.timedelta64(1, 'D')} 05:00:00+00"
                row = (TENANT, str(store), str(day), stamp, float(panel.sales[s, d]),
                       int(panel.transactions[s, d]), 2.5)  # fmt: skip
                copy.write_row(row)
    conn.execute(
        "INSERT INTO feature_watermarks (tenant_id, feature_table, transactions, items, mode)"
        " VALUES (%s, 'store_daily_sales', 0, 0, 'full') ON CONFLICT (tenant_id, feature_table)"
        " DO UPDATE SET computed_at = clock_timestamp()",
        (TENANT,),
    )


def _detector(panel):
    """The anomaly deployment serving an ensemble fitted on the panel's pre-window days."""
    from serving.deployments.anomaly import Anomaly
    from training.anomaly.data import windows_for
    from training.anomaly_run import AnomalyBundle
    from training.models.anomaly import AnomalyEnsemble

    pre, _ = windows_for(panel, 30)
    return serving(Anomaly, AnomalyBundle(AnomalyEnsemble(_cfg()).fit(panel, pre)), TENANT)


def test_one_store_is_answered_as_in_an_all_store_scan_and_follows_the_rollup(
    warehouse_env, monkeypatch
) -> None:
    import psycopg

    from serving.deployments import anomaly

    panel = _synthetic()
    detector = _detector(panel)
    drop, spike = 190, 195
    panel.sales[3, drop] *= 0.1
    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        _write_rollup(conn, panel)
    day = str(panel.dates[drop])

    one = detector.detect(TENANT, ["s3"], day, day)
    assert one["storesScanned"] == 1 and one["daysScanned"] == 1
    assert [(a["storeId"], a["date"], a["direction"]) for a in one["anomalies"]] == [
        ("s3", day, "drop")
    ]
    first, last = str(panel.dates[170]), str(panel.dates[-1])
    everyone = detector.detect(TENANT, None, first, last)
    some = detector.detect(TENANT, ["s5", "s3"], first, last)
    assert some["anomalies"] == [a for a in everyone["anomalies"] if a["storeId"] in ("s3", "s5")]
    assert [a for a in some["anomalies"] if a["date"] == day] == one["anomalies"]
    assert detector.detect(TENANT, ["s3", "nope"], day, day) == {"unknownStores": ["nope"]}
    # kept days answer without the warehouse (on the event loop) ...
    assert not detector._needs_warehouse(TENANT, ["s5"], first, last)

    # ... until `features materialize` rewrites the rollup and moves its watermark
    panel.sales[5, spike] *= 5.0
    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        _write_rollup(conn, panel)
    monkeypatch.setattr(anomaly, "FRESHNESS_S", 0.0)
    spike_day = str(panel.dates[spike])
    assert detector._needs_warehouse(TENANT, ["s5"], spike_day, spike_day)
    found = detector.detect(TENANT, ["s5"], spike_day, spike_day)["anomalies"]
    assert [(a["storeId"], a["direction"]) for a in found] == [("s5", "spike")]
