"""/api/v1/reports through the app: background generation, polling, download, history,
schedules and the scheduler, tenant isolation and bad input (real PostgreSQL)."""

from __future__ import annotations

import io
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from core.db import connect
from core.settings import get_settings
from reports import formats, store
from reports.scheduler import claim_due, tick
from serving.app import create_api
from serving.deps import Backends

pytestmark = pytest.mark.integration
API = "/api/v1/reports"


@pytest.fixture
def client(sample_warehouse: dict[str, int], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RETAILPULSE_REPORTS_SCHEDULER", "false")
    with TestClient(create_api(Backends())) as c:
        yield c


def tenant_headers() -> dict[str, str]:
    return {"X-Tenant-ID": f"t{uuid.uuid4().hex[:10]}"}


def wait_done(client: TestClient, report_id: str, headers: dict | None = None) -> dict:
    """Poll the status URL until the report is done or failed (give up after a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        data = client.get(f"{API}/{report_id}", headers=headers).json()["data"]
        if data["status"] in ("done", "failed"):
            return data
        time.sleep(0.1)
    raise AssertionError(f"report {report_id} still {data['status']}")


def test_generate_poll_download_round_trip(client: TestClient) -> None:
    tenant = get_settings().tenant
    with connect() as conn:
        revenue = conn.execute(
            "SELECT sum(total_sales) FROM transactions WHERE tenant_id = %s"
            " AND transaction_timestamp >= '2017-03-01Z' AND transaction_timestamp < '2017-04-01Z'",
            (tenant,),
        ).fetchone()[0]
    body = {"template": "sales_summary", "format": "xlsx",
            "params": {"from": "2017-03-01", "to": "2017-03-31"}}  # fmt: skip
    answer = client.post(f"{API}/generate", json=body)
    assert answer.status_code == 202
    queued = answer.json()["data"]
    assert queued["status"] == "queued" and queued["downloadUrl"] is None
    assert answer.headers["location"] == queued["statusUrl"] == f"{API}/{queued['id']}"
    done = wait_done(client, queued["id"])
    assert done["status"] == "done" and done["error"] is None
    assert done["params"] == {"from": "2017-03-01", "to": "2017-03-31", "topN": 10}
    file = client.get(done["downloadUrl"])
    assert file.status_code == 200
    assert file.headers["content-type"] == formats.FORMATS["xlsx"].content_type
    disposition = file.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.endswith('.xlsx"')
    assert len(file.content) == done["sizeBytes"]
    weekly = load_workbook(io.BytesIO(file.content))["Sales by week"]
    total = sum(row[1] for row in weekly.iter_rows(min_row=2, values_only=True))
    assert total == pytest.approx(float(revenue), abs=0.01)
    history = client.get(f"{API}/history", params={"template": "sales_summary"}).json()["data"]
    assert queued["id"] in [r["id"] for r in history["items"]]


def test_download_waits_for_done_and_reports_a_failure_with_its_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = tenant_headers()
    tenant = headers["X-Tenant-ID"]
    with connect() as conn:
        queued = store.insert_report(conn, tenant=tenant, template="sales_summary", params={},
                                     fmt="pdf", requested_by=None)  # fmt: skip
    early = client.get(f"{API}/{queued['report_id']}/download", headers=headers)
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "REPORT_NOT_READY"
    assert early.json()["error"]["details"]["status"] == "queued"

    def broken(doc: object) -> bytes:
        raise RuntimeError("disk full")

    monkeypatch.setitem(formats.FORMATS, "json",
                        formats.Format("json", "application/json", "json", "x", broken))  # fmt: skip
    answer = client.post(f"{API}/generate", json={"template": "store_comparison",
                                                  "format": "json"}, headers=headers)  # fmt: skip
    failed = wait_done(client, answer.json()["data"]["id"], headers)
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: disk full"
    download = client.get(f"{API}/{failed['id']}/download", headers=headers)
    assert download.status_code == 409
    assert download.json()["error"]["code"] == "REPORT_FAILED"
    assert "disk full" in download.json()["error"]["message"]
    with connect() as conn:  # never a half-written file
        assert store.get_file(conn, tenant=tenant, report_id=failed["id"]) is None


def test_another_tenants_report_is_not_found(client: TestClient) -> None:
    answer = client.post(f"{API}/generate", json={"template": "store_comparison", "format": "csv"})
    rid = answer.json()["data"]["id"]
    assert wait_done(client, rid)["status"] == "done"
    other = tenant_headers()
    for path in (f"{API}/{rid}", f"{API}/{rid}/download"):
        response = client.get(path, headers=other)
        assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    assert client.get(f"{API}/history", headers=other).json()["data"]["total"] == 0
    assert client.get(f"{API}/{rid}/download").status_code == 200  # its own tenant still can
    schedule = client.post(f"{API}/schedule", json={"template": "sales_summary",
                                                    "cron": "0 6 * * 1"}).json()["data"]  # fmt: skip
    assert client.delete(f"{API}/schedules/{schedule['id']}", headers=other).status_code == 404
    assert client.delete(f"{API}/schedules/{schedule['id']}").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("generate", {"template": "weekly_magic"}, "template"),
        ("generate", {"template": "sales_summary", "format": "docx"}, "format"),
        (
            "generate",
            {"template": "sales_summary", "params": {"from": "2017-05-01", "to": "2017-04-01"}},
            "params.to",
        ),  # fmt: skip
        ("generate", {"template": "sales_summary", "params": {"from": "yesterday"}}, "params.from"),
        (
            "generate",
            {"template": "store_comparison", "params": {"rankBy": "vibes"}},
            "params.rankBy",
        ),  # fmt: skip
        ("generate", {"template": "sales_summary", "colour": "red"}, "colour"),
        ("schedule", {"template": "sales_summary", "cron": "61 * * * *"}, "cron"),
        ("schedule", {"template": "sales_summary", "cron": "0 6 30 2 *"}, "cron"),
        (
            "schedule",
            {"template": "sales_summary", "cron": "0 6 * * 1", "timezone": "Mars/Base"},
            "timezone",
        ),  # fmt: skip
        ("schedule", {"template": "nope", "cron": "0 6 * * 1"}, "template"),
    ],
)
def test_bad_requests_are_422_naming_the_field(client: TestClient, path: str, body: dict,
                                               field: str) -> None:  # fmt: skip
    response = client.post(f"{API}/{path}", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert field in [e["field"] for e in error["details"]["errors"]]
    assert field.split(".")[-1] in error["message"]


def test_templates_list_names_descriptions_schemas_and_formats(client: TestClient) -> None:
    data = client.get(f"{API}/templates").json()["data"]
    names = [t["name"] for t in data["templates"]]
    assert names == ["sales_summary", "store_comparison", "forecast_accuracy",
                     "segment_profile", "alert_digest"]  # fmt: skip
    sales = data["templates"][0]
    assert sales["description"] and "topN" in sales["parameters"]["properties"]
    assert sales["formats"] == ["pdf", "xlsx", "csv", "zip", "json"]
    assert {f["name"]: f["contentType"] for f in data["formats"]}["pdf"] == "application/pdf"


def test_history_paginates_sorts_and_filters(client: TestClient) -> None:
    headers = tenant_headers()
    tenant = headers["X-Tenant-ID"]
    with connect() as conn:
        ids = [store.insert_report(conn, tenant=tenant, template=t, params={}, fmt="csv",
                                   requested_by="u1")["report_id"]
               for t in ("sales_summary", "store_comparison", "sales_summary")]  # fmt: skip
        conn.execute("UPDATE reports SET status = 'failed', error = 'x' WHERE tenant_id = %s"
                     " AND report_id = %s", (tenant, ids[1]))  # fmt: skip
        for age, rid in enumerate(reversed(ids)):  # one transaction: give them distinct times
            conn.execute("UPDATE reports SET created_at = now() - %s * interval '1 minute'"
                         " WHERE tenant_id = %s AND report_id = %s", (age, tenant, rid))  # fmt: skip
    page1 = client.get(f"{API}/history", params={"limit": 2}, headers=headers).json()["data"]
    page2 = client.get(f"{API}/history", params={"limit": 2, "page": 2}, headers=headers).json()
    assert page1["total"] == 3 and page1["pages"] == 2
    assert [r["id"] for r in page1["items"]] + [r["id"] for r in page2["data"]["items"]] == ids[
        ::-1
    ]
    oldest = client.get(f"{API}/history", params={"order": "asc"}, headers=headers).json()
    assert [r["id"] for r in oldest["data"]["items"]] == ids
    sales = client.get(f"{API}/history", params={"template": "sales_summary"}, headers=headers)
    assert {r["id"] for r in sales.json()["data"]["items"]} == {ids[0], ids[2]}
    failed = client.get(f"{API}/history", params={"status": "failed"}, headers=headers).json()
    assert [r["id"] for r in failed["data"]["items"]] == [ids[1]]
    assert failed["data"]["items"][0]["requestedBy"] == "u1"
    for bad in ({"sort": "password"}, {"limit": 0}, {"page": 0}, {"status": "lost"}):
        assert client.get(f"{API}/history", params=bad, headers=headers).status_code == 422


def _due_schedule(tenant: str, template: str = "store_comparison", fmt: str = "csv") -> str:
    with connect() as conn:
        row = store.insert_schedule(conn, tenant=tenant, template=template,
                                    params={"from": "2017-02-01", "to": "2017-02-28"}, fmt=fmt,
                                    cron="0 6 * * *", timezone="UTC",
                                    next_run_at=datetime.now(UTC) - timedelta(minutes=1),
                                    created_by="planner")  # fmt: skip
    return row["schedule_id"]


def _reports_of(tenant: str) -> list[tuple]:
    with connect() as conn:
        return conn.execute("SELECT report_id, schedule_id, status FROM reports WHERE tenant_id = %s",
                            (tenant,)).fetchall()  # fmt: skip


def test_a_due_schedule_is_claimed_once_by_competing_schedulers(sample_warehouse: dict) -> None:
    tenant = f"s{uuid.uuid4().hex[:10]}"
    schedule_id = _due_schedule(tenant)
    # one scheduler holds the row (mid-claim): another skips it instead of waiting or doubling
    with connect() as holder:
        holder.execute("SELECT 1 FROM report_schedules WHERE tenant_id = %s FOR UPDATE",
                       (tenant,))  # fmt: skip
        with connect(autocommit=True) as other:
            assert [c for c in claim_due(other) if c.tenant == tenant] == []
        holder.rollback()
    # several claimers at once: exactly one report
    barrier = threading.Barrier(4)
    claims: list = []

    def claimer() -> None:
        with connect(autocommit=True) as conn:
            barrier.wait()
            claims.extend(c for c in claim_due(conn) if c.tenant == tenant)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claims) == 1 and claims[0].schedule_id == schedule_id
    assert [r[1] for r in _reports_of(tenant)] == [schedule_id]
    with connect() as conn:
        next_at, last = conn.execute("SELECT next_run_at, last_report_id FROM report_schedules"
                                     " WHERE tenant_id = %s", (tenant,)).fetchone()  # fmt: skip
    assert next_at > datetime.now(UTC) and last == claims[0].report_id


def test_scheduler_tick_generates_the_due_report(client: TestClient) -> None:
    tenant = get_settings().tenant
    schedule_id = _due_schedule(tenant)
    claimed = [c for c in tick() if c.schedule_id == schedule_id]
    assert len(claimed) == 1
    status = client.get(f"{API}/{claimed[0].report_id}").json()["data"]
    assert status["status"] == "done" and status["scheduleId"] == schedule_id
    assert status["requestedBy"] == "planner"
    csv_text = client.get(status["downloadUrl"]).text
    assert csv_text.startswith("rank,store_id,name,revenue")
    listed = client.get(f"{API}/schedules").json()["data"]
    mine = next(s for s in listed if s["id"] == schedule_id)
    assert mine["lastReportId"] == claimed[0].report_id
    assert [c for c in tick() if c.schedule_id == schedule_id] == []  # not due any more


def test_the_app_starts_and_stops_its_scheduler(sample_warehouse: dict,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("RETAILPULSE_REPORTS_SCHEDULER", "true")

    def running() -> list[str]:
        return [t.name for t in threading.enumerate()
                if t.name.startswith(("rp-report-scheduler", "rp-report"))]  # fmt: skip

    with TestClient(create_api(Backends())) as c:
        assert "rp-report-scheduler" in running()
        assert c.get(f"{API}/templates").status_code == 200
    assert running() == []
    monkeypatch.setenv("RETAILPULSE_REPORTS_SCHEDULER", "false")
    with TestClient(create_api(Backends())):
        assert "rp-report-scheduler" not in running()


def test_cli_generates_a_file_with_the_templates_output(sample_warehouse: dict, tmp_path) -> None:
    from pipelines.cli_reports import app

    out = tmp_path / "stores.csv"
    result = CliRunner().invoke(app, ["generate", "store_comparison", "--format", "csv", "--out",
                                      str(out), "--from", "2017-02-01", "--to", "2017-02-28"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("rank,store_id,name,revenue")
    bad = CliRunner().invoke(app, ["generate", "store_comparison", "--out", str(out),
                                   "--from", "2017-03-01", "--to", "2017-02-01"])  # fmt: skip
    assert bad.exit_code != 0
    listed = CliRunner().invoke(app, ["templates"])
    assert listed.exit_code == 0 and "forecast_accuracy" in listed.output


def test_a_store_scoped_caller_reports_on_its_stores_and_sees_only_its_reports(
    sample_warehouse: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import deps

    monkeypatch.setenv("RETAILPULSE_REPORTS_SCHEDULER", "false")
    tenant = get_settings().tenant
    with connect() as conn:
        store_id = conn.execute("SELECT store_id FROM transactions WHERE tenant_id = %s"
                                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
                                (tenant,)).fetchone()[0]  # fmt: skip
        theirs = store.insert_report(conn, tenant=tenant, template="sales_summary", params={},
                                     fmt="pdf", requested_by="someone-else")  # fmt: skip
    app = create_api(Backends())
    # what the authenticated store manager's token resolves to (serving/auth.py)
    app.dependency_overrides[deps.store_scope] = lambda: frozenset({store_id})
    app.dependency_overrides[deps.actor] = lambda: "manager-1"
    with TestClient(app) as c:
        answer = c.post(f"{API}/generate", json={"template": "store_comparison", "format": "csv"})
        mine = wait_done(c, answer.json()["data"]["id"])
        assert mine["params"]["stores"] == [store_id] and mine["requestedBy"] == "manager-1"
        lines = c.get(mine["downloadUrl"]).text.strip().splitlines()
        assert len(lines) == 2 and lines[1].split(",")[1] == store_id
        denied = c.post(f"{API}/generate", json={"template": "sales_summary",
                                                 "params": {"stores": [store_id, "no-such"]}})  # fmt: skip
        assert denied.status_code == 403 and "no-such" in denied.json()["error"]["message"]
        assert c.get(f"{API}/{theirs['report_id']}").status_code == 404
        assert c.get(f"{API}/{theirs['report_id']}/download").status_code == 404
        listed = c.get(f"{API}/history", params={"limit": 200}).json()["data"]["items"]
        assert {r["requestedBy"] for r in listed} == {"manager-1"}
