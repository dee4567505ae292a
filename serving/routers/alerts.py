"""Alerts (seed §2.5): `/api/v1/alerts/active`, `/history`, `/rules`, `/{alertId}/acknowledge`.

An alert is open while `active` or `acknowledged`: acknowledging says someone is on it (it is
not notified or raised again), and it stays open until its condition clears, when the engine
resolves it. So `GET /active` lists open alerts — active and acknowledged, `status` narrows to
one — most severe first; `GET /history` lists every alert, filtered and paginated.

A store-scoped caller (store manager, sales associate) sees and acknowledges only alerts whose
subject is one of their stores, and creates or deletes only rules scoped to their stores.
Rules are evaluated by `alerts.engine` whenever data lands; see `alerts/rules.py` for the
kinds and their parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from alerts import rules as rules_repo
from alerts import store as alerts_repo
from alerts.rules import Channels, RuleSpec, Scope
from core.errors import Forbidden, NotFoundError, ValidationFailed
from core.values import QueryTime
from serving import envelope
from serving.deps import ActorDep, StoreScopeDep, TenantDep, WarehouseDep

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Severity = Literal["info", "warning", "critical"]
DbId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Page = Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1")]
Limit = Annotated[int, Query(ge=1, le=200, description="Alerts per page")]
Order = Annotated[Literal["asc", "desc"], Query(description="Sort direction")]
WAREHOUSE_DOWN = "The warehouse (PostgreSQL) does not answer"


class Alert(BaseModel):
    alertId: int
    ruleId: int
    ruleName: str | None
    kind: str | None
    severity: Severity
    status: Literal["active", "acknowledged", "resolved"]
    title: str
    message: str
    subject: dict[str, Any] = Field(description="What the alert is about, e.g. store_id, date")
    triggeredAt: datetime
    acknowledgedAt: datetime | None
    acknowledgedBy: str | None
    resolvedAt: datetime | None
    payload: dict[str, Any] = Field(description="The numbers behind the alert")


class AlertPage(BaseModel):
    items: list[Alert]
    page: int
    limit: int
    total: int = Field(description="Alerts matching the filters, over all pages")


class RuleOut(BaseModel):
    ruleId: int
    name: str
    kind: str
    params: dict[str, Any]
    scope: Scope
    severity: Severity
    channels: Channels
    enabled: bool
    createdBy: str | None
    createdAt: datetime


class CreatedRule(RuleOut):
    webhookSecret: str = Field(
        description="HMAC-SHA256 key of this rule's webhook signatures; shown only here"
    )


class RuleList(BaseModel):
    items: list[RuleOut]


class DeletedRule(BaseModel):
    ruleId: int
    deleted: bool = True
    alertsResolved: int = Field(description="Open alerts of the rule, resolved with it")


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(**{k: v for k, v in row.items() if k in Alert.model_fields})


def _rule_out(rule: rules_repo.Rule) -> dict[str, Any]:
    return {
        "ruleId": rule.rule_id,
        "name": rule.name,
        "kind": rule.kind,
        "params": rule.params,
        "scope": rule.scope,
        "severity": rule.severity,
        "channels": rule.channels,
        "enabled": rule.enabled,
        "createdBy": rule.created_by,
        "createdAt": rule.created_at,
    }


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _mine(rule: rules_repo.Rule, stores: frozenset[str] | None) -> bool:
    """A store-scoped caller's rules: scoped to some of their stores and nothing else."""
    return stores is None or (bool(rule.scope.storeIds) and set(rule.scope.storeIds) <= stores)


@router.get("/active", responses=envelope.errors(_503=WAREHOUSE_DOWN))
async def active_alerts(
    request: Request,
    tenant: TenantDep,
    stores: StoreScopeDep,
    warehouse: WarehouseDep,
    status: Annotated[
        Literal["active", "acknowledged"] | None,
        Query(description="Only active or only acknowledged (default: both)"),
    ] = None,
    severity: Annotated[Severity | None, Query(description="Only this severity")] = None,
    page: Page = 1,
    limit: Limit = 50,
) -> envelope.Envelope[AlertPage]:
    """Open alerts (active and acknowledged), most severe first, then newest."""
    items, total = await warehouse.run(
        alerts_repo.list_alerts, tenant=tenant, statuses=(status,) if status else alerts_repo.OPEN,
        severity=severity, stores=stores, sort="severity", order="desc", page=page, limit=limit,
    )  # fmt: skip
    data = AlertPage(items=[_alert(a) for a in items], page=page, limit=limit, total=total)
    return envelope.ok(request, data)


@router.get("/history", responses=envelope.errors(_503=WAREHOUSE_DOWN))
async def alert_history(
    request: Request,
    tenant: TenantDep,
    stores: StoreScopeDep,
    warehouse: WarehouseDep,
    severity: Annotated[Severity | None, Query(description="Only this severity")] = None,
    status: Annotated[
        Literal["active", "acknowledged", "resolved"] | None, Query(description="Only this status")
    ] = None,
    since: Annotated[
        QueryTime | None, Query(alias="from", description="Triggered at or after (ISO 8601; UTC)")
    ] = None,
    until: Annotated[
        QueryTime | None, Query(alias="to", description="Triggered before (ISO 8601; UTC)")
    ] = None,
    page: Page = 1,
    limit: Limit = 50,
    sort: Annotated[
        Literal["triggeredAt", "severity", "status", "alertId"], Query(description="Sort key")
    ] = "triggeredAt",
    order: Order = "desc",
) -> envelope.Envelope[AlertPage]:
    """Every alert of the tenant, newest first by default; filters combine."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        raise ValidationFailed(
            "invalid request: from: must not be after `to`",
            details={"errors": [{"field": "from", "reason": "must not be after `to`"}]},
        )
    items, total = await warehouse.run(
        alerts_repo.list_alerts, tenant=tenant, statuses=(status,) if status else None,
        severity=severity, since=since, until=until, stores=stores, sort=sort, order=order,
        page=page, limit=limit,
    )  # fmt: skip
    data = AlertPage(items=[_alert(a) for a in items], page=page, limit=limit, total=total)
    return envelope.ok(request, data)


@router.put(
    "/{alertId}/acknowledge",
    responses=envelope.errors(_404="No such alert for this tenant", _503=WAREHOUSE_DOWN),
)
async def acknowledge_alert(
    request: Request,
    alertId: DbId,
    tenant: TenantDep,
    stores: StoreScopeDep,
    actor: ActorDep,
    warehouse: WarehouseDep,
) -> envelope.Envelope[Alert]:
    """Acknowledge an active alert (again: no change; a resolved one stays resolved)."""
    row = await warehouse.run(
        alerts_repo.acknowledge, tenant=tenant, alert_id=alertId, by=actor, stores=stores
    )
    if row is None:
        raise NotFoundError(f"no alert {alertId}", details={"alertId": alertId})
    return envelope.ok(request, _alert(row))


@router.get("/rules", responses=envelope.errors(_503=WAREHOUSE_DOWN))
async def list_alert_rules(
    request: Request, tenant: TenantDep, stores: StoreScopeDep, warehouse: WarehouseDep
) -> envelope.Envelope[RuleList]:
    """The tenant's rules (a store-scoped caller: those scoped to their stores)."""
    rules = await warehouse.run(rules_repo.list_rules, tenant=tenant)
    data = RuleList(items=[RuleOut(**_rule_out(r)) for r in rules if _mine(r, stores)])
    return envelope.ok(request, data)


@router.post(
    "/rules",
    responses=envelope.errors(
        _403="A store-scoped caller's rule must name only their stores", _503=WAREHOUSE_DOWN
    ),
)
async def create_alert_rule(
    request: Request,
    spec: Annotated[RuleSpec, Body()],
    tenant: TenantDep,
    stores: StoreScopeDep,
    actor: ActorDep,
    warehouse: WarehouseDep,
) -> envelope.Envelope[CreatedRule]:
    """Create a rule: `kind` threshold | anomaly | stockout | performance_drop with that kind's
    `params` (a bad or missing one is a 422 naming it), `scope`, `severity`, `channels`.

    The answer carries the rule's webhook signing secret, shown this once."""
    if stores is not None and not (spec.scope.storeIds and set(spec.scope.storeIds) <= stores):
        raise Forbidden(
            "a store-scoped user's rule must list scope.storeIds, all among their stores",
            details={"field": "scope.storeIds", "stores": sorted(stores)},
        )
    rule, secret = await warehouse.run(
        rules_repo.create_rule, tenant=tenant, spec=spec, created_by=actor
    )
    return envelope.ok(request, CreatedRule(**_rule_out(rule), webhookSecret=secret))


@router.delete(
    "/rules/{ruleId}",
    responses=envelope.errors(_404="No such rule for this tenant", _503=WAREHOUSE_DOWN),
)
async def delete_alert_rule(
    request: Request,
    ruleId: DbId,
    tenant: TenantDep,
    stores: StoreScopeDep,
    warehouse: WarehouseDep,
) -> envelope.Envelope[DeletedRule]:
    """Delete a rule (kept for the history of its alerts); its open alerts are resolved."""
    rule = await warehouse.run(rules_repo.get_rule, tenant=tenant, rule_id=ruleId)
    resolved = None
    if rule is not None and _mine(rule, stores):
        resolved = await warehouse.run(rules_repo.delete_rule, tenant=tenant, rule_id=ruleId)
    if resolved is None:
        raise NotFoundError(f"no alert rule {ruleId}", details={"ruleId": ruleId})
    return envelope.ok(request, DeletedRule(ruleId=ruleId, alertsResolved=resolved))
