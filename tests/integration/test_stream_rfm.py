"""The stream's fresh RFM rows (pipelines/stream_features.py `StreamRfm`: a kept part per
customer, checked each batch by the customer's basket count and id sum) equal the full
per-customer query at the same clock, bit for bit, through every path: new customers, kept
customers, baskets another writer added, a batch that did not commit, a basket at or after the
clock, a basket older than every kept one, a restarted consumer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from integrations.warehouse import write_batch
from pipelines.rfm_parts import new_parts
from pipelines.stream_features import RfmRead, StreamRfm, rfm_for_customers

pytestmark = pytest.mark.integration
T0 = datetime(2017, 3, 4, 10, 0, tzinfo=UTC)  # a Saturday
TENANT = "default"


def _basket(tid: int, customer: int, hours: float, lines: list[tuple[int, float, float, float]]):
    """lines: (product, sales value, loyalty discount, coupon discount)."""
    return {
        "transaction_id": tid, "store_id": f"S{tid % 3}", "customer_id": customer,
        "timestamp": T0 + timedelta(hours=hours), "week": 10,
        "lines": [{"product_id": p, "quantity": 1, "sales_value": v, "retail_disc": d,
                   "coupon_disc": c, "coupon_match_disc": 0.0} for p, v, d, c in lines],
    }  # fmt: skip


def _batch(conn, rfm: StreamRfm | None, baskets: list[dict]) -> tuple[RfmRead, dict]:
    """Write `baskets` as the consumer does; (what StreamRfm read, the full query's rows) at
    the batch's clock, both read inside its transaction (rfm None: another writer, no rows)."""
    result = write_batch(conn, tenant=TENANT, baskets=baskets, inventory=[])
    if rfm is None:
        return RfmRead(), {}
    as_of = max(b["timestamp"] for b in baskets).replace(microsecond=0) + timedelta(seconds=1)
    read = rfm.rows(conn, tenant=TENANT, result=result, as_of=as_of)
    # the consumer reads the batch's own parts (and the history of customers it does not
    # keep) earlier in the transaction and passes them in
    new = new_parts(conn, tenant=TENANT, result=result)
    whole = rfm.whole_parts(conn, tenant=TENANT, result=result, new=new)
    early = rfm.rows(conn, tenant=TENANT, result=result, as_of=as_of, new=new, whole=whole)
    assert (early.rows, early.parts, early.added, early.dropped) == (
        read.rows,
        read.parts,
        read.added,
        read.dropped,
    )
    want = rfm_for_customers(conn, tenant=TENANT, customers=result.customers, as_of=as_of)
    return read, want


def test_kept_rows_equal_the_full_query_through_every_path(warehouse_env):
    rfm = StreamRfm()
    with psycopg.connect(warehouse_env) as conn:

        def batch(baskets, writer=rfm, commit=True):
            with conn.transaction(force_rollback=not commit):
                read, want = _batch(conn, writer, baskets)
            if commit:
                rfm.keep(read)
            assert read.rows == want  # exact floats, every feature
            return read.rows

        # new customers; odd amounts so that float sums and numeric sums would differ
        first = batch([_basket(1, 501, 0, [(10, 4.07, 1.13, 0.0), (11, 3.51, 0.0, 0.0)]),
                       _basket(2, 501, 30, [(10, 2.21, 0.0, 0.5)]),
                       _basket(3, 502, 5, [(12, 9.99, 0.01, 0.0)])])  # fmt: skip
        assert set(first) == {501, 502} and first[501][1] == 2.0  # frequency
        # kept customer 501: a product seen before, one new, a coupon basket
        second = batch([_basket(4, 501, 50, [(10, 0.3, 0.1, 0.2), (13, 0.7, 0.0, 0.0)])])
        assert second[501][1] == 3.0 and second[501][5] == 3.0  # 3 baskets, 3 products
        # another writer adds a basket of 501 the kept part does not know
        batch([_basket(5, 501, 60, [(14, 12.34, 2.0, 0.0)])], writer=None)
        third = batch([_basket(6, 501, 70, [(10, 1.0, 0.0, 0.0)])])
        assert third[501][1] == 5.0 and third[501][5] == 4.0
        # a batch that rolls back: the kept part must not include it
        batch([_basket(7, 502, 80, [(15, 5.0, 0.0, 0.0)])], commit=False)
        assert batch([_basket(8, 502, 90, [(16, 6.0, 0.0, 0.0)])])[502][1] == 2.0
        # a late basket: 502 already has baskets after this batch's clock
        late = batch([_basket(9, 502, 1, [(17, 2.5, 0.5, 0.0)])])
        assert late[502][1] == 1.0  # basket 9 only: 3 and 8 are after its clock
        # and the next in-order batch of 502 is exact again
        assert batch([_basket(10, 502, 100, [(12, 1.0, 0.0, 0.0)])])[502][1] == 4.0
        # an out-of-order basket before every kept one, in a batch whose clock is past them
        # all: the kept part's first time (tenure) and counts move; exact again
        old = batch([_basket(11, 501, -20, [(18, 3.33, 0.0, 0.0)]),
                     _basket(12, 503, 200, [(10, 1.0, 0.0, 0.0)])])  # fmt: skip
        assert old[501][1] == 6.0 and old[501][8] - old[501][0] == pytest.approx(90 / 24)
        # batches of a kept customer: each reads what the one before added to its kept part
        # (a product, a store, a weekend basket, a coupon, the newest time)
        again = batch([_basket(14, 501, 205, [(20, 1.25, 0.0, 0.0), (10, 3.33, 0.0, 0.0)])])
        assert again[501][1] == 7.0 and again[501][5] == 6.0  # products 10, 11, 13, 14, 18, 20
        batch([_basket(15, 504, 215, [(30, 1.0, 0.0, 0.0)])])  # S0, a Monday
        batch([_basket(16, 504, 336, [(31, 2.0, 0.4, 0.5)])])  # S1, Saturday, discounts
        # S0, a Thursday before basket 16, in a batch whose clock (basket 19) is after both
        last = batch([_basket(18, 504, 300, [(32, 3.0, 0.0, 0.0)]),
                      _basket(19, 505, 400, [(30, 1.0, 0.0, 0.0)])])[504]  # fmt: skip
        assert (last[1], last[5], last[7], last[9], last[10]) == (3.0, 3.0, 1 / 3, 1 / 3, 2.0)
        # a new customer's baskets out of time order within one batch: the older one is first
        fresh = batch([_basket(20, 506, 420, [(30, 1.0, 0.0, 0.0)]),
                       _basket(21, 506, 410, [(31, 2.0, 0.0, 0.0)])])[506]  # fmt: skip
        assert fresh[8] - fresh[0] == pytest.approx(10 / 24)  # tenure - recency: 10 hours

    # a restarted consumer keeps nothing: its customers' parts are read from the warehouse
    with psycopg.connect(warehouse_env) as conn, conn.transaction():
        read, want = _batch(conn, StreamRfm(), [_basket(13, 501, 210, [(19, 0.99, 0.0, 0.0)])])
    assert read.rows == want
    assert read.rows[501][1] == 8.0 and read.rows[501][10] == 3.0  # stores S0, S1, S2


def test_history_read_before_another_writer_commits_is_read_again(warehouse_env):
    """A restarted consumer reads a returning customer's history before it takes the lock
    (`whole_parts`); a basket another writer commits after that read is not lost: the part no
    longer covers the customer's baskets, and `rows` reads them again."""
    with psycopg.connect(warehouse_env) as conn, conn.transaction():
        _batch(conn, None, [_basket(1, 601, 0, [(10, 4.07, 1.13, 0.0)])])
    rfm = StreamRfm()  # restarted: keeps nothing
    with psycopg.connect(warehouse_env) as conn, psycopg.connect(warehouse_env) as other:
        with conn.transaction():
            baskets = [_basket(3, 601, 20, [(12, 1.5, 0.0, 0.25)])]
            result = write_batch(conn, tenant=TENANT, baskets=baskets, inventory=[])
            new = new_parts(conn, tenant=TENANT, result=result)
            whole = rfm.whole_parts(conn, tenant=TENANT, result=result, new=new)
            assert whole[601].n == 2  # basket 1 and this batch's own
            with other.transaction():  # another writer, committed in between
                write_batch(other, tenant=TENANT, baskets=[_basket(2, 601, 10, [(11, 2.0, 0.0,
                            0.0)])], inventory=[])  # fmt: skip
            as_of = T0 + timedelta(hours=21)
            read = rfm.rows(conn, tenant=TENANT, result=result, as_of=as_of, new=new,
                            whole=whole)  # fmt: skip
            want = rfm_for_customers(conn, tenant=TENANT, customers=[601], as_of=as_of)
        assert read.rows == want and want[601][1] == 3.0  # baskets 1, 2 and 3
        rfm.keep(read)
        assert rfm._kept[601].n == 3
