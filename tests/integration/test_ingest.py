"""Complete Journey ingest against a real PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest

from core.db import connect
from pipelines.ingest import ingest_completejourney, load_source, table_counts

pytestmark = pytest.mark.integration


def test_sample_counts_match_the_source(sample_warehouse: dict[str, int]) -> None:
    source = load_source(households=100)["transactions"]
    assert sample_warehouse["transaction_items"] == len(source)
    assert sample_warehouse["transactions"] == source["basket_id"].nunique()
    assert sample_warehouse["customers"] == 100
    assert sample_warehouse["stores"] == source["store_id"].nunique()
    catalogue = load_source()["products"]["product_id"]
    missing = set(source["product_id"]) - set(catalogue)  # sold, not in the catalogue: id only
    assert sample_warehouse["products"] == len(catalogue) + len(missing)  # not only what sold


def test_ingest_twice_changes_nothing(sample_warehouse: dict[str, int]) -> None:
    again = ingest_completejourney(tenant="default", households=100)
    assert again.skipped
    forced = ingest_completejourney(tenant="default", households=100, force=True)
    assert not forced.skipped
    assert forced.written["transactions"] == 0
    assert forced.written["transaction_items"] == 0
    assert table_counts(tenant="default") == sample_warehouse


def test_basket_totals_and_shelf_price(sample_warehouse: dict[str, int]) -> None:
    source = load_source(households=100)["transactions"]
    basket = source.groupby("basket_id")["sales_value"].sum().round(2)
    some = basket.index[:50].tolist()
    with connect() as conn:
        rows = conn.execute(
            "SELECT transaction_id, total_sales FROM transactions"
            " WHERE tenant_id='default' AND transaction_id = ANY(%s)",
            (some,),
        ).fetchall()
        item = conn.execute(
            "SELECT quantity, sales_value, retail_disc, coupon_match_disc, unit_price"
            " FROM transaction_items WHERE tenant_id='default' AND quantity > 1 LIMIT 1"
        ).fetchone()
    got = pd.Series({r[0]: float(r[1]) for r in rows})
    assert len(got) == 50
    assert (got - basket.loc[got.index]).abs().max() < 0.005
    qty, sales, rdisc, mdisc, unit = item
    assert float(unit) == pytest.approx(float(sales + rdisc + mdisc) / qty, abs=1e-4)


def test_tenants_are_isolated(sample_warehouse: dict[str, int]) -> None:
    summary = ingest_completejourney(tenant="other", households=3)
    counts = table_counts(tenant="other")
    assert counts["customers"] == 3
    assert summary.written["transactions"] == counts["transactions"] > 0
    assert table_counts(tenant="default") == sample_warehouse


def test_first_load_gets_its_own_partition_and_later_loads_append(sample_warehouse) -> None:
    from core.partitions import has_own_partition

    first = ingest_completejourney(tenant="grows", households=2)
    with connect() as conn:
        assert has_own_partition(conn, "transaction_items", "grows")
        assert has_own_partition(conn, "transactions", "grows")
    more = ingest_completejourney(tenant="grows", households=4)  # 2 old + 2 new households
    counts = table_counts(tenant="grows")
    assert counts["customers"] == 4
    assert counts["transactions"] == first.written["transactions"] + more.written["transactions"]
    assert more.written["transactions"] > 0
    source = load_source(households=4)["transactions"]
    assert counts["transaction_items"] == len(source)
    with connect() as conn:  # nothing of this tenant leaked into the default partitions
        stray = conn.execute(
            "SELECT count(*) FROM transaction_items_default WHERE tenant_id = 'grows'"
        ).fetchone()[0]
    assert stray == 0


def test_a_failed_ingest_leaves_nothing_behind(sample_warehouse, monkeypatch) -> None:
    import pipelines.ingest as ingest

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest, "load_campaign_households", broken)  # after the items COPY
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest.ingest_completejourney(tenant="doomed", households=2)
    assert set(table_counts(tenant="doomed").values()) == {0}
    with connect() as conn:
        from core.partitions import has_own_partition

        assert not has_own_partition(conn, "transaction_items", "doomed")


def test_bad_lines_are_checked_by_the_mapping_rules_and_reported(
    sample_warehouse, monkeypatch, tmp_path
) -> None:
    """The Complete Journey ingest runs the file import's checks: a bad line rejects its basket,
    the report names the source row, field and rule, and the rest loads."""
    import pipelines.ingest as ingest

    real = ingest.load_source

    def damaged(households=None):
        data = real(households)
        tx = data["transactions"].copy()
        tx.loc[tx.index[0], "quantity"] = -3  # no returns in this data: an error
        tx.loc[tx.index[1], "transaction_timestamp"] = pd.Timestamp("1980-01-01")
        data["transactions"] = tx
        return data

    monkeypatch.setattr(ingest, "load_source", damaged)
    summary = ingest.ingest_completejourney(tenant="damaged", households=2, rejected_dir=tmp_path)
    source = real(2)["transactions"]
    bad_baskets = set(source["basket_id"].iloc[:2])
    bad_lines = int(source["basket_id"].isin(bad_baskets).sum())
    assert summary.rejected["negative_quantity"] == 1
    assert summary.rejected["date_out_of_range"] == 1
    assert sum(summary.rejected.values()) == bad_lines
    report = pd.read_csv(summary.rejected_file)
    first = report[report["rule"] == "negative_quantity"].iloc[0]
    assert (first["row"], first["field"], str(first["value"])) == (source.index[0] + 1,
                                                                   "quantity", "-3")  # fmt: skip
    counts = table_counts(tenant="damaged")
    assert counts["transaction_items"] == len(source) - bad_lines
    assert counts["transactions"] == source["basket_id"].nunique() - len(bad_baskets)
