"""A document as an Excel workbook (openpyxl).

Sheet "Summary": title, parameters, each section's notes and KPIs, and the charts (PNG images
drawn by matplotlib). Then one sheet per table: bold header row on a tint, frozen, with an
auto-filter, a number format per column kind and widths fitted to the content.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.drawing.image import Image as XlImage
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from reports.charts import render_png
from reports.document import Document, Kind, Table

NUMBER_FORMATS: dict[str, str] = {
    "int": "#,##0",
    "money": "#,##0.00",
    "pct": "0.0%",
    "float": "#,##0.00",
    "date": "yyyy-mm-dd",
}
HEADER_FILL = PatternFill("solid", fgColor="DCE6F0")
BOLD = Font(bold=True)
ROWS_PER_CHART = 18  # a 7 x 3.2 in chart at the scale below covers about this many rows
CHART_SCALE = 0.55


def _cell_value(value: Any) -> Any:
    """openpyxl refuses timezone-aware datetimes: store them as naive UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def sheet_title(name: str, taken: set[str]) -> str:
    """A valid, unique sheet name (≤ 31 characters, none of []:*?/\\)."""
    base = re.sub(r"[\[\]:*?/\\]", " ", name).strip()[:31] or "Sheet"
    title, n = base, 2
    while title.lower() in taken:
        suffix = f" ({n})"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(title.lower())
    return title


def _fit_widths(ws: Worksheet, widths: dict[int, int]) -> None:
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = min(max(width + 2, 8), 60)


def _shown_len(value: Any, kind: Kind) -> int:
    if value is None:
        return 1
    if kind in ("money", "float"):
        return len(f"{float(value):,.2f}")
    if kind == "int":
        return len(f"{int(round(float(value))):,}")
    if kind == "pct":
        return 7
    if isinstance(value, datetime | date):
        return 10
    return len(str(value))


def _table_sheet(ws: Worksheet, table: Table) -> None:
    widths: dict[int, int] = {}
    for j, col in enumerate(table.columns, start=1):
        cell = ws.cell(row=1, column=j, value=col.label)
        cell.font, cell.fill = BOLD, HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=False)
        widths[j] = len(col.label)
    for i, row in enumerate(table.rows, start=2):
        for j, (value, col) in enumerate(zip(row, table.columns, strict=True), start=1):
            cell = ws.cell(row=i, column=j, value=_cell_value(value))
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # text from the data is never a formula
            if col.kind in NUMBER_FORMATS and value is not None:
                cell.number_format = NUMBER_FORMATS[col.kind]
            widths[j] = max(widths[j], _shown_len(value, col.kind))
    ws.freeze_panes = "A2"
    if table.rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table.rows) + 1}"
    _fit_widths(ws, widths)


def _summary(ws: Worksheet, doc: Document) -> None:
    ws["A1"] = doc.title
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["Tenant", doc.tenant])
    ws.append(["Template", doc.template])
    ws.append(["Generated", _cell_value(doc.generated_at)])
    ws.cell(row=ws.max_row, column=2).number_format = "yyyy-mm-dd hh:mm"
    for key, value in doc.parameters.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        ws.append([key, "all" if shown in (None, "") else _cell_value(shown)])
    for section in doc.sections:
        ws.append([])
        ws.append([section.heading])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True, size=12)
        for note in section.notes:
            ws.append([note])
        for kpi in section.kpis:
            ws.append([kpi.label, kpi.value])
            if kpi.kind in NUMBER_FORMATS and isinstance(kpi.value, int | float):
                ws.cell(row=ws.max_row, column=2).number_format = NUMBER_FORMATS[kpi.kind]
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["B"].width = 22
    # charts beside the text, stacked from the top
    anchor_row = 1
    for chart in doc.charts():
        image = XlImage(io.BytesIO(render_png(chart)))
        image.width, image.height = image.width * CHART_SCALE, image.height * CHART_SCALE
        ws.add_image(image, f"D{anchor_row}")
        anchor_row += ROWS_PER_CHART + 1


def render_xlsx(doc: Document) -> bytes:
    """The document as an .xlsx workbook (bytes)."""
    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"
    taken = {"summary"}
    _summary(summary, doc)
    for table in doc.tables():
        _table_sheet(wb.create_sheet(sheet_title(table.title, taken)), table)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
