"""The neutral document a template builds and every renderer reads.

A `Document` is a title, the parameters it was made with, and sections; a section holds
notes (plain sentences), KPIs, charts and tables. Nothing here knows about PDF or Excel:
renderers (reports/render_*.py) turn one document into each format, so the same numbers
appear in every format.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# How a value is shown: text as is, int with thousands separators, money with two decimals,
# pct as a percentage of 1.0, float with two decimals, date as ISO.
Kind = Literal["text", "int", "money", "pct", "float", "date"]


class Column(BaseModel):
    key: str
    label: str
    kind: Kind = "text"


class Table(BaseModel):
    """Rows of values in `columns` order; `main` marks the table CSV exports."""

    name: str
    title: str
    columns: list[Column]
    rows: list[list[Any]] = Field(default_factory=list)
    main: bool = False

    def records(self) -> list[dict[str, Any]]:
        keys = [c.key for c in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]


class Kpi(BaseModel):
    label: str
    value: float | int | str | None
    kind: Kind = "float"


class Chart(BaseModel):
    """A bar or line chart: categories on x, one or more named series of the same length."""

    title: str
    kind: Literal["bar", "barh", "line"] = "bar"
    x: list[Any]
    series: dict[str, list[float | None]]
    x_label: str = ""
    y_label: str = ""


class Section(BaseModel):
    heading: str
    notes: list[str] = Field(default_factory=list)
    kpis: list[Kpi] = Field(default_factory=list)
    charts: list[Chart] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)


class Document(BaseModel):
    title: str
    template: str
    tenant: str
    generated_at: datetime
    parameters: dict[str, Any] = Field(default_factory=dict)
    sections: list[Section] = Field(default_factory=list)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables]

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts]

    def main_table(self) -> Table | None:
        """The table a CSV export holds: the one marked `main`, else the first."""
        tables = self.tables()
        return next((t for t in tables if t.main), tables[0] if tables else None)


def show(value: Any, kind: Kind) -> str:
    """A value as people read it (PDF cells, KPI tiles); None is an em dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if kind == "int":
        return f"{int(round(float(value))):,}"
    if kind == "money":
        return f"{float(value):,.2f}"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "float":
        return f"{float(value):,.2f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def plain(value: Any) -> Any:
    """A JSON/CSV-friendly value: dates as ISO strings, everything else unchanged."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
