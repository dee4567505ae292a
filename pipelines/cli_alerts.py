"""`retailpulse alerts {rules,add-rule,active,evaluate,test-webhook}`: alert rules and alerts.

Rules are evaluated by themselves whenever data lands (ingest, file import, the stream consumer,
batch scoring); `evaluate` runs every rule of a tenant now, and `test-webhook` shows a receiver
what a signed delivery looks like (the signature scheme is in `alerts/notify.py`).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.errors import ValidationFailed
from pipelines.console import console
from pipelines.options import TenantOpt

app = typer.Typer(help="Alert rules, open alerts and notification checks.", no_args_is_help=True)


def _tenant(tenant: str | None) -> str:
    from core.settings import get_settings

    return tenant or get_settings().tenant


@app.command("rules")
def rules_cmd(tenant: TenantOpt = None) -> None:
    """List the tenant's alert rules."""
    from alerts.rules import list_rules
    from core.db import connect

    with connect() as conn:
        rules = list_rules(conn, tenant=_tenant(tenant))
    table = Table("id", "name", "kind", "severity", "enabled", "params", "scope", "channels")
    for r in rules:
        scope = {k: v for k, v in r.scope.model_dump().items() if v}
        channels = {k: len(v) for k, v in r.channels.model_dump().items() if v}
        table.add_row(
            str(r.rule_id), r.name, r.kind, r.severity, "yes" if r.enabled else "no",
            json.dumps(r.params), json.dumps(scope) if scope else "all", json.dumps(channels),
        )  # fmt: skip
    console.print(table if rules else f"no alert rules for tenant {_tenant(tenant)!r}")


@app.command("add-rule")
def add_rule_cmd(
    path: Annotated[Path, typer.Argument(help="A JSON or YAML file with one rule body.")],
    tenant: TenantOpt = None,
) -> None:
    """Create a rule from a file holding the body `POST /api/v1/alerts/rules` takes."""
    import yaml
    from pydantic import ValidationError

    from alerts.rules import create_rule, parse_rule
    from core.db import connect

    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(body, dict):
            raise ValidationFailed(
                f"{path} holds {f'a {type(body).__name__}' if body is not None else 'nothing'}: "
                "expected one rule body, a mapping with name, kind and params"
            )
        spec = parse_rule(body)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"cannot read {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationFailed(f"invalid rule in {path}: {problems}") from exc
    with connect() as conn:
        rule, secret = create_rule(conn, tenant=_tenant(tenant), spec=spec, created_by="cli")
    console.print(f"[green]rule {rule.rule_id}[/] {rule.name!r} ({rule.kind}) created")
    if rule.channels.webhooks:
        console.print(f"webhook signing secret (shown once): {secret}")


@app.command("active")
def active_cmd(
    tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Alerts shown.")] = 50,
) -> None:
    """Open alerts (active and acknowledged), most severe first."""
    from alerts.store import OPEN, list_alerts
    from core.db import connect

    with connect() as conn:
        items, total = list_alerts(
            conn, tenant=_tenant(tenant), statuses=OPEN, sort="severity", limit=limit
        )
    table = Table("id", "severity", "status", "triggered", "title")
    for a in items:
        table.add_row(
            str(a["alertId"]), a["severity"], a["status"],
            a["triggeredAt"].isoformat(timespec="seconds"), a["title"],
        )  # fmt: skip
    console.print(table if items else "no open alerts")
    if total > len(items):
        console.print(f"… {total - len(items)} more")


@app.command("evaluate")
def evaluate_cmd(tenant: TenantOpt = None) -> None:
    """Evaluate every rule of the tenant now and deliver the notifications of new alerts."""
    from alerts.engine import on_landed
    from core.events import Landed

    new = on_landed(Landed(tenant=_tenant(tenant), source="manual"), wait=True)
    for a in new:
        console.print(f"[red]{a['severity']}[/] alert {a['alertId']}: {a['title']}")
    console.print(f"{len(new)} new alert{'s' if len(new) != 1 else ''}")


@app.command("test-webhook")
def test_webhook_cmd(
    url: Annotated[str, typer.Argument(help="The receiver's URL (http or https).")],
    secret: Annotated[
        str | None, typer.Option(help="Signing secret (default: a random one, printed).")
    ] = None,
) -> None:
    """POST a sample alert, signed as real ones are, and show every attempt."""
    import httpx

    from alerts.notify import WEBHOOK_TIMEOUT_S, Notice, send_webhook
    from alerts.rules import Channels

    if not url.startswith(("http://", "https://")):
        raise ValidationFailed(f"not an http(s) URL: {url!r}")
    secret = secret or secrets.token_urlsafe(32)
    sample = {
        "tenant": "default", "alertId": 0, "ruleId": 0, "ruleName": "test", "kind": "threshold",
        "severity": "info", "status": "active", "title": "RetailPulse test alert",
        "message": "A test delivery from `retailpulse alerts test-webhook`.", "subject": {},
        "triggeredAt": datetime.now(UTC), "payload": {},
    }  # fmt: skip
    notice = Notice(sample, Channels(webhooks=[url]), secret)

    def show(attempt: int, status: str, code: int | None, error: str | None) -> None:
        colour = "green" if status == "sent" else "red"
        console.print(f"attempt {attempt}: [{colour}]{status}[/] {code or ''} {error or ''}")

    with httpx.Client(timeout=WEBHOOK_TIMEOUT_S) as client:
        ok = send_webhook(client, notice, url, record=show)
    console.print(f"signing secret: {secret}")
    if not ok:
        raise typer.Exit(1)
