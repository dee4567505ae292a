"""Alert rules: what a tenant asks to be told about, validated per kind, and their repository.

A rule is one of four kinds, each with its own `params`:

- `threshold`: a sales metric over the last `windowDays` business days compared with `value`
  (e.g. a store's daily revenue < 500), per store, product, department or for the whole scope;
- `anomaly`: a store-day the anomaly detector flagged (batch scoring of model "anomaly") with a
  score of at least `minScore`, within the last `withinDays` days;
- `stockout`: the forecaster's demand over the next `leadTimeWeeks` (its `quantile`) exceeds
  the `inventory` table's on-hand units by more than `minShortfall`;
- `performance_drop`: a sales metric over the last `windowDays` fell by at least `dropPct` %
  against the `windowDays` before.

`scope` narrows every kind to stores, products and departments (an empty list: all).
`channels` lists webhook URLs and e-mail addresses to notify. Webhook bodies are signed with the
rule's secret (given at creation, or generated and shown once in the creation response).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from core.values import Text

KINDS = ("threshold", "anomaly", "stockout", "performance_drop")
SEVERITIES = ("info", "warning", "critical")
METRICS = ("revenue", "units", "baskets", "avg_basket_value")
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"

Metric = Literal["revenue", "units", "baskets", "avg_basket_value"]
Per = Literal["store", "product", "department", "tenant"]
StoreId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scope(_Strict):
    """What a rule looks at; an empty list means every one of the tenant's."""

    storeIds: list[StoreId] = Field(default_factory=list, max_length=1000)
    productIds: list[Annotated[int, Field(ge=0, le=2**63 - 1)]] = Field(
        default_factory=list, max_length=10_000
    )
    departments: list[Annotated[Text, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100
    )


class Channels(_Strict):
    """Where a new alert is sent (besides Kafka `alerts.trigger`, which always gets it)."""

    webhooks: list[AnyHttpUrl] = Field(default_factory=list, max_length=10)
    emails: list[Annotated[Text, Field(pattern=EMAIL, max_length=320)]] = Field(
        default_factory=list, max_length=20
    )

    @field_validator("webhooks")
    @classmethod
    def _http_only(cls, urls: list[AnyHttpUrl]) -> list[AnyHttpUrl]:
        for url in urls:
            if url.scheme not in ("http", "https"):
                raise ValueError("webhook URLs must be http or https")
        return urls


class ThresholdParams(_Strict):
    metric: Metric = Field(description="revenue, units, baskets or avg_basket_value")
    operator: Literal["<", "<=", ">", ">="]
    value: float = Field(allow_inf_nan=False, description="What the metric is compared with")
    windowDays: int = Field(default=1, ge=1, le=90, description="Business days summed")
    per: Per = Field(default="store", description="One alert per store, product, department…")
    completeDaysOnly: bool = Field(
        default=False, description="End the window at the last complete day, not the current one"
    )

    @field_validator("per")
    @classmethod
    def _per(cls, per: str, info: Any) -> str:
        if info.data.get("metric") == "avg_basket_value" and per in ("product", "department"):
            raise ValueError("avg_basket_value is measured per store or for the whole scope")
        return per


class AnomalyParams(_Strict):
    minScore: float = Field(default=0.98, ge=0, le=1, description="Detector ensemble score")
    direction: Literal["any", "drop", "spike"] = "any"
    withinDays: int = Field(default=7, ge=1, le=365, description="Only recent store-days")


class StockoutParams(_Strict):
    leadTimeWeeks: int = Field(default=1, ge=1, le=8, description="Weeks until a reorder lands")
    quantile: Literal["p10", "p50", "p90"] = "p50"
    minShortfall: float = Field(default=0, ge=0, le=1e9, description="Units short before alerting")


class PerformanceDropParams(_Strict):
    metric: Metric = "revenue"
    windowDays: int = Field(default=7, ge=1, le=90, description="Length of each period")
    dropPct: float = Field(gt=0, le=100, description="Fall against the previous period, in %")
    per: Per = "store"
    minBase: float = Field(
        default=0, ge=0, le=1e12, description="Ignore subjects whose previous period was below"
    )
    completeDaysOnly: bool = Field(
        default=True, description="Compare complete days only (the current day is still open)"
    )

    @field_validator("per")
    @classmethod
    def _per(cls, per: str, info: Any) -> str:
        if info.data.get("metric") == "avg_basket_value" and per in ("product", "department"):
            raise ValueError("avg_basket_value is measured per store or for the whole scope")
        return per


class _RuleBase(_Strict):
    name: Text = Field(min_length=1, max_length=200)
    severity: Literal["info", "warning", "critical"] = "warning"
    scope: Scope = Field(default_factory=Scope)
    channels: Channels = Field(default_factory=Channels)
    enabled: bool = True
    webhookSecret: Text | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC key of the webhook signatures (default: generated, returned once)",
    )


class ThresholdRule(_RuleBase):
    kind: Literal["threshold"]
    params: ThresholdParams


class AnomalyRule(_RuleBase):
    kind: Literal["anomaly"]
    params: AnomalyParams = Field(default_factory=AnomalyParams)


class StockoutRule(_RuleBase):
    kind: Literal["stockout"]
    params: StockoutParams = Field(default_factory=StockoutParams)


class PerformanceDropRule(_RuleBase):
    kind: Literal["performance_drop"]
    params: PerformanceDropParams


RuleSpec = Annotated[
    ThresholdRule | AnomalyRule | StockoutRule | PerformanceDropRule,
    Field(discriminator="kind"),
]
_SPEC = TypeAdapter(RuleSpec)


def parse_rule(
    data: dict[str, Any],
) -> ThresholdRule | AnomalyRule | StockoutRule | PerformanceDropRule:
    """A rule body validated for its kind (raises pydantic.ValidationError)."""
    return _SPEC.validate_python(data)


class Rule(BaseModel):
    """A stored rule, as the engine evaluates it."""

    tenant: str
    rule_id: int
    name: str
    kind: str
    params: dict[str, Any]
    scope: Scope
    severity: str
    channels: Channels
    secret: str
    enabled: bool
    created_by: str | None
    created_at: datetime

    def typed_params(self) -> Any:
        """`params` as the kind's model."""
        model = {
            "threshold": ThresholdParams,
            "anomaly": AnomalyParams,
            "stockout": StockoutParams,
            "performance_drop": PerformanceDropParams,
        }[self.kind]
        return model.model_validate(self.params)


_COLUMNS = (
    "tenant_id, rule_id, name, kind, params, scope, severity, channels, secret, enabled,"
    " created_by, created_at"
)


def _rule(row: tuple) -> Rule:
    keys = ("tenant", "rule_id", "name", "kind", "params", "scope", "severity", "channels")
    keys += ("secret", "enabled", "created_by", "created_at")
    return Rule(**dict(zip(keys, row, strict=True)))


def create_rule(
    conn: psycopg.Connection, *, tenant: str, spec: Any, created_by: str | None
) -> tuple[Rule, str]:
    """Store a validated rule; returns it and its webhook secret (generated when not given)."""
    secret = spec.webhookSecret or secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO alert_rules (tenant_id, name, kind, params, scope, severity, channels,"
        " secret, enabled, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}",
        (
            tenant,
            spec.name,
            spec.kind,
            json.dumps(spec.params.model_dump(mode="json")),
            json.dumps(spec.scope.model_dump(mode="json")),
            spec.severity,
            json.dumps(spec.channels.model_dump(mode="json")),
            secret,
            spec.enabled,
            created_by,
        ),
    ).fetchone()
    return _rule(row), secret


def list_rules(
    conn: psycopg.Connection,
    *,
    tenant: str,
    kinds: tuple[str, ...] | None = None,
    enabled_only: bool = False,
) -> list[Rule]:
    """The tenant's rules that are not deleted, oldest first."""
    sql = f"SELECT {_COLUMNS} FROM alert_rules WHERE tenant_id = %s AND deleted_at IS NULL"
    params: list[Any] = [tenant]
    if kinds is not None:
        sql += " AND kind = ANY(%s)"
        params.append(list(kinds))
    if enabled_only:
        sql += " AND enabled"
    return [_rule(r) for r in conn.execute(sql + " ORDER BY rule_id", params).fetchall()]


def get_rule(conn: psycopg.Connection, *, tenant: str, rule_id: int) -> Rule | None:
    """One rule that is not deleted (None when unknown, deleted or another tenant's)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM alert_rules"
        " WHERE tenant_id = %s AND rule_id = %s AND deleted_at IS NULL",
        (tenant, rule_id),
    ).fetchone()
    return None if row is None else _rule(row)


def delete_rule(conn: psycopg.Connection, *, tenant: str, rule_id: int) -> int | None:
    """Soft-delete a rule and resolve its open alerts in one transaction; returns the number of
    alerts resolved, or None when there is no such rule."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE alert_rules SET deleted_at = now(), enabled = false"
            " WHERE tenant_id = %s AND rule_id = %s AND deleted_at IS NULL RETURNING rule_id",
            (tenant, rule_id),
        ).fetchone()
        if row is None:
            return None
        return conn.execute(
            "UPDATE alert_events SET status = 'resolved', resolved_at = now(),"
            ' payload = payload || \'{"resolvedBy": "rule deleted"}\'::jsonb'
            " WHERE tenant_id = %s AND rule_id = %s AND status <> 'resolved'",
            (tenant, rule_id),
        ).rowcount
