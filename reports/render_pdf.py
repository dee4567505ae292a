"""A document as PDF: reportlab platypus flowables, charts as matplotlib PNGs.

Long tables are cut at `PDF_MAX_ROWS` rows with a note saying so (the Excel, CSV and JSON
exports hold every row): a report is for reading, and a 5,000-row table is not.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as PdfTable

from reports.charts import render_png
from reports.document import Document, Kpi, Section, Table, show

PDF_MAX_ROWS = 40
KPIS_PER_ROW = 4
ACCENT = colors.HexColor("#1f5f8b")
NUMERIC = {"int", "money", "pct", "float"}
FONT, FONT_SIZE, CELL_PAD = "Helvetica", 7.5, 3

_base = getSampleStyleSheet()
STYLES = {
    "title": ParagraphStyle("rp-title", parent=_base["Title"], fontSize=18, spaceAfter=4),
    "meta": ParagraphStyle("rp-meta", parent=_base["Normal"], fontSize=8, textColor=colors.grey),
    "h2": ParagraphStyle("rp-h2", parent=_base["Heading2"], textColor=ACCENT, spaceBefore=10),
    "h3": ParagraphStyle("rp-h3", parent=_base["Heading4"], spaceBefore=6, spaceAfter=2),
    "body": ParagraphStyle("rp-body", parent=_base["Normal"], fontSize=9, leading=12),
    "cell": ParagraphStyle("rp-cell", parent=_base["Normal"], fontSize=7.5, leading=9),
    "num": ParagraphStyle(
        "rp-num", parent=_base["Normal"], fontSize=7.5, leading=9, alignment=TA_RIGHT
    ),  # fmt: skip
    "kpi_label": ParagraphStyle(
        "rp-kl", parent=_base["Normal"], fontSize=7.5, textColor=colors.grey
    ),  # fmt: skip
    "kpi_value": ParagraphStyle("rp-kv", parent=_base["Normal"], fontSize=13, leading=16),
}


def _p(text: Any, style: str = "body") -> Paragraph:
    return Paragraph(escape(str(text)), STYLES[style])


def _parameters(doc: Document) -> list[Any]:
    rows = [
        [_p(k, "cell"), _p(", ".join(map(str, v)) if isinstance(v, list) else v, "cell")]
        for k, v in doc.parameters.items()
    ]
    if not rows:
        return []
    table = PdfTable(rows, colWidths=[35 * mm, 135 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("TEXTCOLOR", (0, 0), (0, -1), colors.grey),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
    ]))  # fmt: skip
    return [table, Spacer(1, 4 * mm)]


def _kpis(kpis: list[Kpi]) -> list[Any]:
    if not kpis:
        return []
    cells = [[_p(k.label, "kpi_label"), _p(show(k.value, k.kind), "kpi_value")] for k in kpis]
    while len(cells) % KPIS_PER_ROW:
        cells.append(["", ""])
    rows: list[list[Any]] = []
    for start in range(0, len(cells), KPIS_PER_ROW):
        chunk = cells[start : start + KPIS_PER_ROW]
        rows += [[c[0] for c in chunk], [c[1] for c in chunk]]
    table = PdfTable(rows, colWidths=[170 * mm / KPIS_PER_ROW] * KPIS_PER_ROW, hAlign="LEFT")
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    for r in range(0, len(rows), 2):
        style.append(("LINEABOVE", (0, r), (-1, r), 0.5, colors.lightgrey))
    table.setStyle(TableStyle(style))
    return [table, Spacer(1, 3 * mm)]


def _widths(
    header: list[str], body: list[list[str]], numeric: list[bool], total: float = 170 * mm
) -> list[float]:
    """Column widths: each column's widest cell (a header may wrap between words), stretched
    to the page width; when too wide, text columns give way first (they wrap), then all."""
    pad = 2 * CELL_PAD + 1

    def width(text: str) -> float:
        return stringWidth(text, FONT, FONT_SIZE)

    floor = [max((width(w) for w in h.split()), default=0) + pad for h in header]
    cells = [max((width(r[i]) for r in body), default=0) + pad for i in range(len(header))]
    need = [max(width(h) + pad, c, 14) for h, c in zip(header, cells, strict=True)]
    if sum(need) > total:  # headers wrap between words before anything else gives way
        need = [max(f, c, 14) for f, c in zip(floor, cells, strict=True)]
    excess = sum(need) - total
    if excess > 0:
        give = [0.0 if numeric[i] else need[i] - floor[i] for i in range(len(need))]
        if sum(give) > 0:
            cut = min(1.0, excess / sum(give))
            need = [n - g * cut for n, g in zip(need, give, strict=True)]
    return [n * total / sum(need) for n in need]


def _table(table: Table) -> list[Any]:
    shown = table.rows[:PDF_MAX_ROWS]
    labels = [c.label for c in table.columns]
    texts = [[show(v, c.kind) for v, c in zip(row, table.columns, strict=True)] for row in shown]
    styles = ["num" if c.kind in NUMERIC else "cell" for c in table.columns]
    header = [_p(t, st) for t, st in zip(labels, styles, strict=True)]
    body = [[_p(t, st) for t, st in zip(row, styles, strict=True)] for row in texts]
    out: list[Any] = [_p(table.title, "h3")]
    if not table.rows:
        return [*out, _p("No rows.", "body")]
    numeric = [c.kind in NUMERIC for c in table.columns]
    widths = _widths(labels, texts, numeric)
    grid = PdfTable([header, *body], colWidths=widths, repeatRows=1, hAlign="LEFT")
    grid.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, ACCENT),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f6f6")]),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
    ]))  # fmt: skip
    out.append(grid)
    if len(table.rows) > len(shown):
        out.append(
            _p(
                f"First {len(shown)} of {len(table.rows):,} rows; the Excel, CSV and JSON "
                "exports hold every row.",
                "meta",
            )
        )
    return [*out, Spacer(1, 3 * mm)]


def _section(section: Section) -> list[Any]:
    flow: list[Any] = [_p(section.heading, "h2")]
    flow += [_p(note) for note in section.notes]
    flow += _kpis(section.kpis)
    for chart in section.charts:
        png = render_png(chart)
        flow.append(
            KeepTogether([Image(io.BytesIO(png), width=170 * mm, height=170 * mm * 3.2 / 7)])
        )
    for table in section.tables:
        flow += _table(table)
    return flow


def _footer(title: str):
    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(20 * mm, 10 * mm, f"RetailPulse · {title}")
        canvas.drawRightString(A4[0] - 20 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def render_pdf(doc: Document) -> bytes:
    """The document as a PDF file (bytes)."""
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=doc.title,
        author="RetailPulse",
        subject=f"{doc.template} report for tenant {doc.tenant}",
    )
    generated = doc.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    flow: list[Any] = [
        _p(doc.title, "title"),
        _p(f"Tenant {doc.tenant} · template {doc.template} · generated {generated}", "meta"),
        Spacer(1, 3 * mm),
        *_parameters(doc),
    ]
    for section in doc.sections:
        flow += _section(section)
    footer = _footer(doc.title)
    pdf.build(flow, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
