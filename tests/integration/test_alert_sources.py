"""Alerts raised from batch scores (anomaly detector, forecaster against stock levels), the
`retailpulse alerts` commands, and integration webhooks subscribed to alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg
import pytest

from alerts import engine
from core.events import Landed
from core.predictions import replace_predictions
from tests.integration.alerts_support import (
    DAY,
    SECRET,
    TENANT,
    Receiver,
    alerts,
    baskets,
    create_rule,
    land,
    threshold_rule,
)

pytestmark = pytest.mark.integration


def _anomaly_rows(flags: dict[str, float]) -> pd.DataFrame:
    rows = []
    for entity, score in flags.items():
        store, day = entity.split(":")
        payload = {
            "storeId": store, "date": day, "sales": 10.0, "expected": 100.0, "score": score,
            "direction": "drop", "detectors": ["robust_z"],
        }  # fmt: skip
        rows.append({"entity": entity, "payload": json.dumps(payload)})
    return pd.DataFrame(rows, columns=["entity", "payload"])


def _score(url: str, model: str, version: int, rows: pd.DataFrame) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        replace_predictions(
            conn, tenant=TENANT, model=model, version=version, run_id=f"run{version}",
            scored_at=datetime.now(UTC), rows=rows,
        )  # fmt: skip
    landed = Landed(TENANT, "score", model=model, details=(("version", version),))
    return engine.on_landed(landed, wait=True)


def test_anomaly_rule_fires_from_detector_scores(api, warehouse_env) -> None:
    create_rule(api, {"kind": "anomaly", "name": "odd days", "params": {"minScore": 0.95}})
    new = _score(
        warehouse_env, "anomaly", 1,
        _anomaly_rows({"367:2017-03-04": 0.99, "368:2017-03-04": 0.5, "369:2017-01-02": 0.99}),
    )  # fmt: skip
    # 368 scored below minScore; 369's day lies outside the last 7 days
    assert [a["subject"] for a in new] == [{"store_id": "367", "date": "2017-03-04"}]
    assert new[0]["payload"]["score"] == 0.99
    assert _score(warehouse_env, "anomaly", 1, _anomaly_rows({"367:2017-03-04": 0.99})) == []
    # the next scoring no longer flags it: resolved
    _score(warehouse_env, "anomaly", 2, _anomaly_rows({"368:2017-03-04": 0.97}))
    statuses = {a[3]["store_id"]: a[2] for a in alerts(warehouse_env)}
    assert statuses == {"367": "resolved", "368": "active"}


def _forecast_rows(weekly: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for entity, p50 in weekly.items():
        weeks = [{"week": 100 + h, "p10": v / 2, "p50": v, "p90": v * 2} for h, v in enumerate(p50)]
        rows.append({"entity": entity, "payload": json.dumps({"weeks": weeks})})
    return pd.DataFrame(rows, columns=["entity", "payload"])


def _stock(url: str, levels: dict[tuple[str, int], int]) -> None:
    with psycopg.connect(url) as conn:
        for (store, product), on_hand in levels.items():
            conn.execute(
                "INSERT INTO inventory (tenant_id, store_id, product_id, on_hand, source_rule)"
                " VALUES (%s, %s, %s, %s, 'test') ON CONFLICT (tenant_id, store_id, product_id)"
                " DO UPDATE SET on_hand = EXCLUDED.on_hand",
                (TENANT, store, product, on_hand),
            )


def test_stockout_rule_compares_lead_time_demand_with_stock(api, warehouse_env) -> None:
    create_rule(api, {"kind": "stockout", "name": "running out", "params": {"leadTimeWeeks": 2}})
    _stock(warehouse_env, {("367", 10): 5, ("367", 11): 100})
    forecast = _forecast_rows({"367:10": [4, 3, 50], "367:11": [4, 3, 50], "367:12": [9, 9]})
    new = _score(warehouse_env, "forecaster", 1, forecast)
    # 10: 4 + 3 = 7 > 5 on hand; 11 has stock; 12 has no inventory row
    assert [a["subject"] for a in new] == [{"store_id": "367", "product_id": 10}]
    assert new[0]["payload"]["shortfall"] == 2.0
    _stock(warehouse_env, {("367", 10): 50})
    _score(warehouse_env, "forecaster", 1, forecast)
    assert [a[2] for a in alerts(warehouse_env)] == ["resolved"]


def test_cli_adds_evaluates_lists_and_tests_a_webhook(warehouse_env, tmp_path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    land(warehouse_env, baskets(1, "367", DAY, [5.0]))  # before the rule: nothing to raise
    path = tmp_path / "rule.yaml"
    path.write_text(
        "kind: threshold\nname: any sale\nparams: {metric: revenue, operator: '>', value: 1}\n"
    )
    result = runner.invoke(app, ["alerts", "add-rule", str(path)])
    assert result.exit_code == 0 and "created" in result.output
    path.write_text("kind: threshold\nname: no value\nparams: {metric: revenue}\n")
    result = runner.invoke(app, ["alerts", "add-rule", str(path)])
    assert result.exit_code != 0 and "params.operator" in str(result.exception)
    result = runner.invoke(app, ["alerts", "evaluate"])
    assert result.exit_code == 0 and "1 new alert" in result.output
    assert "store 367" in runner.invoke(app, ["alerts", "active"]).output
    assert "any sale" in runner.invoke(app, ["alerts", "rules"]).output
    receiver = Receiver([503])
    try:
        result = runner.invoke(app, ["alerts", "test-webhook", receiver.url, "--secret", SECRET])
        assert result.exit_code == 0, result.output
        assert [c["signed"] for c in receiver.calls] == [True, True]
        assert "attempt 2: sent" in result.output
    finally:
        receiver.close()


def test_integration_webhooks_subscribed_to_alerts_receive_them(api, warehouse_env) -> None:
    from integrations import webhooks as integration_webhooks

    receiver = Receiver([])
    try:
        hook = api.post(
            "/api/v1/integrations/webhooks",
            json={"url": receiver.url, "events": ["alert.triggered"], "secret": SECRET},
        )
        assert hook.status_code == 200, hook.text
        rule = create_rule(api, threshold_rule(value=1))
        land(warehouse_env, baskets(1, "367", DAY, [5.0]))
        assert integration_webhooks.drain(timeout=60)
        (call,) = receiver.calls
        assert call["signed"] and call["body"]["event"] == "alert.triggered"
        assert call["body"]["data"]["rule_id"] == rule["ruleId"]
        assert call["body"]["data"]["subject"] == {"store_id": "367"}
    finally:
        receiver.close()
