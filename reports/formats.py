"""Output formats: each turns a `Document` into bytes, with its content type and extension.

`csv` holds the document's main table (the one marked `main`, else the first); `zip` holds
every table as its own CSV file; `json` holds the whole document (parameters, KPIs, tables as
lists of records, chart data); `pdf` and `xlsx` are in render_pdf.py / render_xlsx.py.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reports.document import Document, Table, plain


@dataclass(frozen=True)
class Format:
    name: str
    content_type: str
    extension: str
    description: str
    render: Callable[[Document], bytes]


def _csv_bytes(table: Table) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else plain(v) for v in row])
    return buf.getvalue().encode("utf-8")


def render_csv(doc: Document) -> bytes:
    """The main table as CSV (header: column keys); an empty file with no table."""
    table = doc.main_table()
    return b"" if table is None else _csv_bytes(table)


def render_zip(doc: Document) -> bytes:
    """Every table as `<name>.csv` in one zip archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in doc.tables():
            archive.writestr(f"{table.name}.csv", _csv_bytes(table))
    return buf.getvalue()


def document_json(doc: Document) -> dict[str, Any]:
    """The document as plain JSON-ready data (tables as lists of records)."""
    return {
        "title": doc.title,
        "template": doc.template,
        "tenant": doc.tenant,
        "generatedAt": doc.generated_at.isoformat(),
        "parameters": {k: plain(v) for k, v in doc.parameters.items()},
        "sections": [
            {
                "heading": s.heading,
                "notes": s.notes,
                "kpis": [k.model_dump() for k in s.kpis],
                "tables": [
                    {
                        "name": t.name,
                        "title": t.title,
                        "columns": [c.model_dump() for c in t.columns],
                        "rows": [{k: plain(v) for k, v in r.items()} for r in t.records()],
                    }
                    for t in s.tables
                ],
                "charts": [c.model_dump(mode="json") for c in s.charts],
            }
            for s in doc.sections
        ],
    }


def render_json(doc: Document) -> bytes:
    return json.dumps(document_json(doc), indent=2, default=str).encode("utf-8")


def _pdf(doc: Document) -> bytes:
    from reports.render_pdf import render_pdf  # reportlab loads only when asked for a PDF

    return render_pdf(doc)


def _xlsx(doc: Document) -> bytes:
    from reports.render_xlsx import render_xlsx

    return render_xlsx(doc)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("pdf", "application/pdf", "pdf", "PDF with KPIs, charts and tables", _pdf),
        Format(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
            "Excel workbook: a summary sheet with charts, one formatted sheet per table",
            _xlsx,
        ),
        Format(
            "csv", "text/csv; charset=utf-8", "csv", "the report's main table as CSV", render_csv
        ),
        Format("zip", "application/zip", "zip", "every table as a CSV file, zipped", render_zip),
        Format("json", "application/json", "json", "the whole report as JSON", render_json),
    )
}
FORMAT_NAMES = tuple(FORMATS)
