"""Report templates on the 100-household sample warehouse: the numbers in the PDF, the
workbook, the CSV and the JSON are the warehouse's, computed here with plain SQL."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from core.db import connect
from core.predictions import replace_predictions
from core.settings import get_settings
from reports.document import show
from reports.runner import generate

pytestmark = pytest.mark.integration

FEB = {"from": "2017-02-01", "to": "2017-02-28"}
FEB_SQL = (
    "t.tenant_id = %s AND t.transaction_timestamp >= '2017-02-01T00:00:00Z'"
    " AND t.transaction_timestamp < '2017-03-01T00:00:00Z'"
)


@pytest.fixture(scope="module")
def tenant(sample_warehouse: dict[str, int]) -> str:
    return get_settings().tenant


def run(tenant: str, template: str, fmt: str, params: dict | None = None) -> bytes:
    with connect() as conn:
        return generate(conn, tenant=tenant, template=template, params=params, fmt=fmt).content


def kpis(doc: dict) -> dict[str, object]:
    return {k["label"]: k["value"] for s in doc["sections"] for k in s["kpis"]}


def table(doc: dict, name: str) -> list[dict]:
    return next(t["rows"] for s in doc["sections"] for t in s["tables"] if t["name"] == name)


def notes(doc: dict) -> str:
    return " ".join(n for s in doc["sections"] for n in s["notes"])


def test_sales_summary_pdf_shows_the_period_revenue_and_departments(tenant: str) -> None:
    with connect() as conn:
        revenue, baskets = conn.execute(
            "SELECT sum(total_sales), count(*) FROM transactions t WHERE " + FEB_SQL, (tenant,)
        ).fetchone()
        dept, dept_revenue = conn.execute(
            "SELECT p.department, sum(i.sales_value) FROM transaction_items i"
            " JOIN transactions t USING (tenant_id, transaction_id)"
            " JOIN products p USING (tenant_id, product_id)"
            " WHERE " + FEB_SQL + " GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
            (tenant,),
        ).fetchone()
    pdf = PdfReader(io.BytesIO(run(tenant, "sales_summary", "pdf", FEB)))
    text = "\n".join(p.extract_text() for p in pdf.pages)
    assert pdf.metadata.title == "Sales summary"
    assert "Sales summary" in text and "2017-02-01 to 2017-02-28" in text
    assert show(float(revenue), "money") in text  # the Revenue KPI
    assert show(baskets, "int") in text
    assert dept in text and show(float(dept_revenue), "money") in text  # department table


def test_sales_summary_workbook_matches_sql_aggregates(tenant: str) -> None:
    with connect() as conn:
        by_dept = dict(
            conn.execute(
                "SELECT coalesce(nullif(p.department, ''), '(unknown)'), sum(i.sales_value)"
                " FROM transaction_items i JOIN transactions t USING (tenant_id, transaction_id)"
                " LEFT JOIN products p USING (tenant_id, product_id) WHERE "
                + FEB_SQL
                + " GROUP BY 1",
                (tenant,),
            ).fetchall()
        )
    content = run(tenant, "sales_summary", "xlsx", {**FEB, "topN": 5})
    wb = load_workbook(io.BytesIO(content))
    assert wb.sheetnames == [
        "Summary", "Sales by week", "Sales by department", "Top 5 products by revenue",
    ]  # fmt: skip
    ws = wb["Sales by department"]
    assert [c.value for c in ws[1]] == [
        "Department", "Revenue", "Share of revenue", "Units", "Baskets", "Discounts",
    ]  # fmt: skip
    assert ws.freeze_panes == "A2"
    got = {row[0]: row[1] for row in ws.iter_rows(min_row=2, values_only=True)}
    assert got.keys() == by_dept.keys()
    for name, value in by_dept.items():
        assert got[name] == pytest.approx(float(value), abs=0.005), name
    assert wb["Top 5 products by revenue"].max_row == 6  # header + 5


def test_store_comparison_csv_and_json_match_per_store_sql(tenant: str) -> None:
    with connect() as conn:
        stores = {
            s: (float(rev), n)
            for s, rev, n in conn.execute(
                "SELECT store_id, sum(total_sales), count(*) FROM transactions t WHERE "
                + FEB_SQL
                + " GROUP BY 1",
                (tenant,),
            ).fetchall()
        }
    rows = list(csv.DictReader(io.StringIO(run(tenant, "store_comparison", "csv", FEB).decode())))
    assert {r["store_id"] for r in rows} == set(stores)
    for r in rows:
        assert float(r["revenue"]) == pytest.approx(stores[r["store_id"]][0], abs=0.005)
        assert int(r["baskets"]) == stores[r["store_id"]][1]
    revenues = [float(r["revenue"]) for r in rows]
    assert revenues == sorted(revenues, reverse=True) and rows[0]["rank"] == "1"

    two = sorted(stores, key=lambda s: -stores[s][1])[:2]
    doc = json.loads(run(tenant, "store_comparison", "json",
                         {**FEB, "stores": two, "rankBy": "baskets"}))  # fmt: skip
    assert kpis(doc)["Stores"] == 2
    assert [r["store_id"] for r in table(doc, "stores")] == two
    assert doc["parameters"]["stores"] == two


def test_a_tenant_without_data_gets_a_report_saying_so(tenant: str) -> None:
    doc = json.loads(run(f"empty_{uuid.uuid4().hex[:6]}", "sales_summary", "json"))
    assert "has no transactions yet" in notes(doc)


@pytest.fixture
def forecaster_rows(tenant: str):
    """Forecaster predictions (version 990) for three series of the sample, weeks 50, 51 and
    60 (after the data); removed afterwards."""
    with connect() as conn:
        pairs = conn.execute(
            "SELECT t.store_id, i.product_id FROM transaction_items i"
            " JOIN transactions t USING (tenant_id, transaction_id)"
            " WHERE t.tenant_id = %s AND t.week IN (50, 51) AND i.quantity > 0"
            " GROUP BY 1, 2 HAVING count(DISTINCT t.week) = 2 ORDER BY 1, 2 LIMIT 2",
            (tenant,),
        ).fetchall()
        only50 = conn.execute(
            "SELECT t.store_id, i.product_id FROM transaction_items i"
            " JOIN transactions t USING (tenant_id, transaction_id)"
            " WHERE t.tenant_id = %s AND t.week IN (50, 51) AND i.quantity > 0"
            " GROUP BY 1, 2 HAVING max(t.week) = 50 ORDER BY 1, 2 LIMIT 1",
            (tenant,),
        ).fetchall()
        series = pairs + only50
        actual = {
            (s, int(p), int(w)): float(u)
            for s, p, w, u in conn.execute(
                "SELECT t.store_id, i.product_id, t.week, sum(i.quantity) FROM transaction_items i"
                " JOIN transactions t USING (tenant_id, transaction_id)"
                " WHERE t.tenant_id = %s AND t.week IN (50, 51) AND i.quantity > 0"
                " GROUP BY 1, 2, 3",
                (tenant,),
            ).fetchall()
        }
        deltas = iter([2.0, 1.0, 3.0, 0.5, 4.0, 1.5])  # p50 - actual, all over-forecasts
        expected, payloads = [], []
        for store, product in series:
            weeks = []
            for week, start in ((50, "2017-12-04"), (51, "2017-12-11"), (60, "2018-02-05")):
                real = actual.get((store, int(product), week), 0.0)
                p50 = real + next(deltas) if week != 60 else 5.0
                if week != 60:
                    expected.append((real, p50))
                weeks.append({"week": week, "weekStart": start, "p10": max(p50 - 1, 0),
                              "p50": p50, "p90": p50 + 1})  # fmt: skip
            payloads.append(json.dumps({"method": "test", "fallback": False, "originWeek": 49,
                                        "weeks": weeks}))  # fmt: skip
        frame = pd.DataFrame({"entity": [f"{s}:{p}" for s, p in series], "payload": payloads})
        replace_predictions(conn, tenant=tenant, model="forecaster", version=990, run_id="r" * 32,
                            scored_at=datetime.now(UTC), rows=frame)  # fmt: skip
        conn.commit()
    yield expected
    with connect() as conn:
        conn.execute(
            "DELETE FROM predictions WHERE tenant_id = %s AND model = 'forecaster'"
            " AND model_version = 990",
            (tenant,),
        )


def test_forecast_accuracy_compares_predictions_with_units_sold(
    tenant: str, forecaster_rows: list[tuple[float, float]]
) -> None:
    doc = json.loads(run(tenant, "forecast_accuracy", "json", {"version": 990}))
    errors = [p50 - real for real, p50 in forecaster_rows]
    sold = sum(real for real, _ in forecaster_rows)
    got = kpis(doc)
    assert got["Series-weeks checked"] == 6 and got["Series"] == 3
    assert got["MAE (units)"] == pytest.approx(sum(map(abs, errors)) / 6)
    assert got["WAPE"] == pytest.approx(sum(map(abs, errors)) / sold)
    assert got["Bias"] == pytest.approx(sum(errors) / sold)
    assert "1 predicted week(s) (60) have no sales in the warehouse yet" in notes(doc)
    rows = table(doc, "series_weeks")
    assert sorted((r["actual"], r["p50"]) for r in rows) == sorted(forecaster_rows)
    assert any(r["actual"] == 0 for r in rows)  # the series that sold nothing in week 51
    pdf = PdfReader(io.BytesIO(run(tenant, "forecast_accuracy", "pdf", {"version": 990})))
    assert "Forecast accuracy" in pdf.pages[0].extract_text()


def test_forecast_accuracy_says_plainly_when_there_is_nothing_to_check(
    tenant: str, forecaster_rows: list
) -> None:
    later = json.loads(run(tenant, "forecast_accuracy", "json",
                           {"version": 990, "from": "2018-01-01"}))  # fmt: skip
    assert "have no sales in the warehouse yet" in notes(later)
    assert "nothing to compare yet" in notes(later)
    empty = json.loads(run(f"nopred_{uuid.uuid4().hex[:6]}", "forecast_accuracy", "json"))
    assert "no forecaster predictions for tenant" in notes(empty)
    assert "retailpulse score forecasts" in notes(empty)


def test_segment_profile_by_rfm_rule_covers_every_customer_and_their_spend(tenant: str) -> None:
    with connect() as conn:
        customers, spend = conn.execute(
            "SELECT count(DISTINCT customer_id), sum(total_sales) FROM transactions t WHERE "
            + FEB_SQL,
            (tenant,),
        ).fetchone()
    doc = json.loads(run(tenant, "segment_profile", "json", {**FEB, "source": "rfm"}))
    rows = table(doc, "segments")
    assert sum(r["customers"] for r in rows) == customers
    assert sum(r["spend"] for r in rows) == pytest.approx(float(spend), abs=0.01)
    assert "Segments by rule" in notes(doc)
    assert len(table(doc, "customers")) == customers


def test_segment_profile_uses_the_segmenter_scores(tenant: str) -> None:
    with connect() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT customer_id FROM customers WHERE tenant_id = %s", (tenant,)).fetchall()]  # fmt: skip
        spend = dict(conn.execute(
            "SELECT CASE WHEN customer_id %% 2 = 0 THEN 'Even' ELSE 'Odd' END, sum(total_sales)"
            " FROM transactions t WHERE " + FEB_SQL + " GROUP BY 1", (tenant,)).fetchall())  # fmt: skip
        frame = pd.DataFrame({
            "entity": [str(c) for c in ids],
            "payload": [json.dumps({"segmentId": c % 2, "label": "Even" if c % 2 == 0 else "Odd"})
                        for c in ids],
        })  # fmt: skip
        replace_predictions(conn, tenant=tenant, model="segmenter", version=990, run_id="s" * 32,
                            scored_at=datetime.now(UTC) - timedelta(minutes=1), rows=frame)  # fmt: skip
        conn.commit()
    try:
        doc = json.loads(run(tenant, "segment_profile", "json", FEB))
    finally:
        with connect() as conn:
            conn.execute("DELETE FROM predictions WHERE tenant_id = %s AND model = 'segmenter'"
                         " AND model_version = 990", (tenant,))  # fmt: skip
    rows = {r["segment"]: r for r in table(doc, "segments")}
    assert set(rows) == {"Even", "Odd"}
    assert rows["Even"]["customers"] == sum(1 for c in ids if c % 2 == 0)
    for label in ("Even", "Odd"):
        assert rows[label]["spend"] == pytest.approx(float(spend[label]), abs=0.01)
    assert "segmenter's batch scores (version 990)" in notes(doc)


def test_alert_digest_counts_alerts_by_severity_and_status() -> None:
    with connect() as conn:
        if not conn.execute("SELECT to_regclass('alert_events') IS NOT NULL").fetchone()[0]:
            pytest.skip("alert_events does not exist yet (migration 0010 is another helper's)")
        tenant = f"alerts_{uuid.uuid4().hex[:6]}"
        now = datetime.now(UTC)
        conn.execute(
            "INSERT INTO alert_rules (tenant_id, rule_id, name, kind, params, severity, secret)"
            " VALUES (%s, 990001, 'low sales', 'threshold', '{}', 'warning', 'x')",
            (tenant,),
        )
        events = [  # severity, status, hours ago, hours to acknowledge
            ("critical", "active", 2, None),
            ("warning", "acknowledged", 30, 3.0),
            ("warning", "resolved", 50, 1.0),
            ("info", "active", 24 * 30, None),  # outside the default 7 days
        ]
        for i, (severity, status, ago, ack) in enumerate(events):
            at = now - timedelta(hours=ago)
            conn.execute(
                "INSERT INTO alert_events (tenant_id, alert_id, rule_id, dedup_key, severity,"
                " title, message, subject, status, triggered_at, acknowledged_at)"
                " VALUES (%s, %s, 990001, %s, %s, %s, 'm', '{}', %s, %s, %s)",
                (
                    tenant,
                    990100 + i,
                    f"k{i}",
                    severity,
                    f"alert {i}",
                    status,
                    at,
                    None if ack is None else at + timedelta(hours=ack),
                ),  # fmt: skip
            )
        conn.commit()
    doc = json.loads(run(tenant, "alert_digest", "json"))
    got = kpis(doc)
    assert got["Alerts"] == 3 and got["Still active"] == 1 and got["Critical"] == 1
    assert got["Median hours to acknowledge"] == pytest.approx(2.0)
    matrix = {r["severity"]: r for r in table(doc, "by_severity")}
    assert matrix["warning"]["acknowledged"] == 1 and matrix["warning"]["resolved"] == 1
    assert "info" not in matrix
    text = PdfReader(io.BytesIO(run(tenant, "alert_digest", "pdf"))).pages[0].extract_text()
    assert "Alert digest" in text and "alert 0" in text
