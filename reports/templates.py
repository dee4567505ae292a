"""The report templates: name, description, parameters (pydantic) and a builder each.

A builder reads the warehouse and returns sections of the neutral document
(reports/document.py); `build_document` wraps them with the title and the parameters, so
every format renders the same numbers. Unknown templates and bad parameters are
`ValidationFailed` (422) naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from pydantic import ValidationError

from core.errors import ValidationFailed
from reports.alert_digest import alert_digest
from reports.document import Document, Section
from reports.forecast_accuracy import forecast_accuracy
from reports.params import (
    AlertDigestParams,
    ForecastAccuracyParams,
    PeriodParams,
    SalesSummaryParams,
    SegmentProfileParams,
    StoreComparisonParams,
    resolve_period,
)
from reports.sales import data_span, sales_summary, store_comparison
from reports.segment_profile import segment_profile

Step = Callable[[str], None]
Built = tuple[list[Section], Any]  # sections, the resolved Period (or None)


def _no_step(_: str) -> None:
    return None


def _on_sales(builder: Callable[..., list[Section]]) -> Callable[..., Built]:
    """A builder over a period of the tenant's transactions (defaults: all of its data)."""

    def build(conn: psycopg.Connection, *, tenant: str, params: Any, step: Step) -> Built:
        step("period")
        period = resolve_period(params, data_span(conn, tenant=tenant))
        if period is None:
            note = f"Tenant {tenant} has no transactions yet: nothing to report."
            return [Section(heading="No data", notes=[note])], None
        return builder(conn, tenant=tenant, params=params, period=period, step=step), period

    return build


def _alerts(conn: psycopg.Connection, *, tenant: str, params: Any, step: Step) -> Built:
    today = datetime.now(UTC).date()
    period = resolve_period(params, (today - timedelta(days=6), today))
    return alert_digest(conn, tenant=tenant, params=params, period=period, step=step), period


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    description: str
    params: type[PeriodParams]
    build: Callable[..., Built]

    def describe(self) -> dict[str, Any]:
        """Name, title, description and the parameters' JSON schema (API names)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "parameters": self.params.model_json_schema(by_alias=True),
        }


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "sales_summary",
            "Sales summary",
            "Revenue, units, baskets and discounts of a period: KPIs, by week, by department, "
            "top products, with charts.",
            SalesSummaryParams,
            _on_sales(sales_summary),
        ),
        Template(
            "store_comparison",
            "Store comparison",
            "Per-store KPIs (revenue, units, baskets, customers, average basket, discount rate) "
            "ranked, with a chart of the leaders.",
            StoreComparisonParams,
            _on_sales(store_comparison),
        ),
        Template(
            "forecast_accuracy",
            "Forecast accuracy",
            "The forecaster's batch predictions against the units then sold: MAE, WAPE, MAPE, "
            "bias and p10-p90 coverage, by week, weeks ahead and store.",
            ForecastAccuracyParams,
            forecast_accuracy,
        ),
        Template(
            "segment_profile",
            "Segment profile",
            "Customer segments (the segmenter's scores, or recency/frequency tertiles): size, "
            "spend, frequency and basket value per segment.",
            SegmentProfileParams,
            _on_sales(segment_profile),
        ),
        Template(
            "alert_digest",
            "Alert digest",
            "Alerts raised over a period (default: the last 7 days), by severity and status, "
            "with time to acknowledge.",
            AlertDigestParams,
            _alerts,
        ),
    )
}


def get_template(name: str) -> Template:
    """The template called `name`, or 422 naming the known ones."""
    template = TEMPLATES.get(name)
    if template is None:
        known = ", ".join(TEMPLATES)
        raise ValidationFailed(
            f"template: unknown report template {name!r} (known: {known})",
            details={"errors": [{"field": "template", "reason": f"unknown; known: {known}"}]},
        )
    return template


def validate_params(template: Template, raw: dict[str, Any] | None) -> PeriodParams:
    """The template's parameters from API/CLI input, or 422 naming each bad field."""
    try:
        return template.params.model_validate(raw or {})
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(["params", *(str(p) for p in e["loc"])]),
                "reason": e["msg"].removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        text = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise ValidationFailed(
            f"invalid {template.name} parameters: {text}", details={"errors": problems}
        ) from None


def build_document(
    conn: psycopg.Connection,
    *,
    tenant: str,
    template: Template,
    params: PeriodParams,
    step: Step = _no_step,
) -> Document:
    """Run the template against the warehouse and return its document."""
    sections, period = template.build(conn, tenant=tenant, params=params, step=step)
    shown: dict[str, Any] = {}
    if period is not None:
        shown["period"] = f"{period} (UTC days)"
    for key, value in params.public().items():
        if key not in ("from", "to", "lastDays") or period is None:
            shown[key] = value
    return Document(
        title=template.title,
        template=template.name,
        tenant=tenant,
        generated_at=datetime.now(UTC),
        parameters=shown,
        sections=sections,
    )
