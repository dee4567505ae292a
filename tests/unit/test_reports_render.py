"""Rendering a report document to PDF, Excel, CSV, zip and JSON: what a reader finds in each
file (no services: the document is built by hand)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from reports.charts import render_png
from reports.document import Chart, Column, Document, Kpi, Section, Table, show
from reports.formats import FORMATS
from reports.render_pdf import PDF_MAX_ROWS
from reports.render_xlsx import sheet_title


def make_doc(weeks: int = 3) -> Document:
    weekly = Table(
        name="weekly_sales",
        title="Sales by week",
        main=True,
        columns=[
            Column(key="week_start", label="Week starting", kind="date"),
            Column(key="revenue", label="Revenue", kind="money"),
            Column(key="units", label="Units", kind="int"),
            Column(key="share", label="Share", kind="pct"),
        ],
        rows=[
            [date(2017, 1, 2) + timedelta(days=7 * i), 1234.5 + i, 10 * i, 0.25]
            for i in range(weeks)
        ],
    )
    depts = Table(
        name="departments",
        title="Sales by department",
        columns=[
            Column(key="department", label="Department"),
            Column(key="revenue", label="Revenue", kind="money"),
        ],  # fmt: skip
        rows=[["GROCERY", 9876.54], ["PRODUCE", 321.0], ['=HYPERLINK("x")', 1.0]],
    )
    return Document(
        title="Sales summary",
        template="sales_summary",
        tenant="acme",
        generated_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        parameters={"period": "2017-01-01 to 2017-01-31 (UTC days)", "stores": ["367", "375"]},
        sections=[
            Section(
                heading="Overview",
                notes=["Revenue is what customers paid."],
                kpis=[
                    Kpi(label="Revenue", value=187124.45, kind="money"),
                    Kpi(label="Baskets", value=6789, kind="int"),
                    Kpi(label="Discount rate", value=0.153, kind="pct"),
                ],  # fmt: skip
                charts=[
                    Chart(
                        title="Revenue by week",
                        kind="line",
                        x=[r[0].isoformat() for r in weekly.rows],
                        series={"Revenue": [r[1] for r in weekly.rows]},
                    )
                ],  # fmt: skip
                tables=[weekly],
            ),
            Section(heading="By department", tables=[depts]),
        ],
    )


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_pdf_shows_title_kpis_and_table_values() -> None:
    content = FORMATS["pdf"].render(make_doc())
    assert content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(content))
    assert reader.metadata.title == "Sales summary"
    text = pdf_text(content)
    assert "Sales summary" in text
    assert "187,124.45" in text  # KPI, money
    assert "6,789" in text and "15.3%" in text  # KPI int and pct
    assert "GROCERY" in text and "9,876.54" in text  # table cells
    assert "2017-01-09" in text  # a date cell
    assert "367, 375" in text  # parameters


def test_pdf_cuts_long_tables_and_says_so() -> None:
    doc = make_doc(weeks=PDF_MAX_ROWS + 5)
    text = pdf_text(FORMATS["pdf"].render(doc))
    assert f"First {PDF_MAX_ROWS} of {PDF_MAX_ROWS + 5} rows" in text
    last_shown = doc.tables()[0].rows[PDF_MAX_ROWS - 1][0].isoformat()
    first_cut = doc.tables()[0].rows[PDF_MAX_ROWS][0].isoformat()
    assert last_shown in text and first_cut not in text


def test_xlsx_has_a_formatted_sheet_per_table_and_a_summary_with_the_chart() -> None:
    wb = load_workbook(io.BytesIO(FORMATS["xlsx"].render(make_doc())))
    assert wb.sheetnames == ["Summary", "Sales by week", "Sales by department"]
    summary = wb["Summary"]
    assert summary["A1"].value == "Sales summary"
    labels = {row[0].value: row[1].value for row in summary.iter_rows(min_row=2) if row[0].value}
    assert labels["Revenue"] == pytest.approx(187124.45)
    assert labels["stores"] == "367, 375"
    assert len(summary._images) == 1  # the chart
    ws = wb["Sales by week"]
    header = [c.value for c in ws[1]]
    assert header == ["Week starting", "Revenue", "Units", "Share"]
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws["B2"].value == pytest.approx(1234.5) and ws["B2"].number_format == "#,##0.00"
    assert ws["C3"].number_format == "#,##0" and ws["D2"].number_format == "0.0%"
    assert ws["A2"].value.date() == date(2017, 1, 2)
    assert ws.column_dimensions["A"].width >= len("Week starting")
    assert wb["Sales by department"]["A2"].value == "GROCERY"
    injected = wb["Sales by department"]["A4"]  # text that looks like a formula stays text
    assert injected.data_type == "s" and injected.value == '=HYPERLINK("x")'


def test_csv_is_the_main_table_and_zip_holds_every_table() -> None:
    doc = make_doc()
    rows = list(csv.DictReader(io.StringIO(FORMATS["csv"].render(doc).decode())))
    assert [r["week_start"] for r in rows] == ["2017-01-02", "2017-01-09", "2017-01-16"]
    assert float(rows[1]["revenue"]) == pytest.approx(1235.5)
    with zipfile.ZipFile(io.BytesIO(FORMATS["zip"].render(doc))) as archive:
        assert sorted(archive.namelist()) == ["departments.csv", "weekly_sales.csv"]
        dept = list(csv.DictReader(io.StringIO(archive.read("departments.csv").decode())))
        assert dept[0] == {"department": "GROCERY", "revenue": "9876.54"}


def test_json_holds_parameters_kpis_tables_as_records_and_chart_data() -> None:
    data = json.loads(FORMATS["json"].render(make_doc()))
    assert data["title"] == "Sales summary" and data["tenant"] == "acme"
    assert data["parameters"]["stores"] == ["367", "375"]
    overview = data["sections"][0]
    assert overview["kpis"][0] == {"label": "Revenue", "value": 187124.45, "kind": "money"}
    assert overview["tables"][0]["rows"][0] == {
        "week_start": "2017-01-02", "revenue": 1234.5, "units": 0, "share": 0.25,
    }  # fmt: skip
    assert overview["charts"][0]["series"]["Revenue"][0] == 1234.5


def test_every_format_renders_an_empty_report() -> None:
    doc = make_doc()
    doc.sections = [Section(heading="No data", notes=["Tenant acme has no transactions yet."])]
    for fmt in FORMATS.values():
        content = fmt.render(doc)
        assert isinstance(content, bytes)
    assert "no transactions yet" in pdf_text(FORMATS["pdf"].render(doc))
    assert FORMATS["csv"].render(doc) == b""


def test_chart_png_and_shown_values() -> None:
    png = render_png(Chart(title="t", kind="barh", x=["a", "b"], series={"s": [1.0, None]}))
    assert png.startswith(b"\x89PNG")
    assert show(None, "money") == "—" and show(1234.567, "money") == "1,234.57"
    assert show(0.1234, "pct") == "12.3%" and show(12.6, "int") == "13"


def test_sheet_titles_are_valid_and_unique() -> None:
    taken: set[str] = {"summary"}
    assert sheet_title("Summary", taken) == "Summary (2)"
    long = sheet_title("Accuracy by store: a very long title [x]", taken)
    assert len(long) <= 31 and not set("[]:*?/\\") & set(long)
    again = sheet_title("Accuracy by store: a very long title [x]", taken)
    assert again != long and len(again) <= 31
