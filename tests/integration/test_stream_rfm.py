"""The stream's fresh RFM rows (pipelines/stream_features.py `StreamRfm`: a kept line-item part
per customer plus the basket-level part read each batch) equal the full per-customer query at
the same clock, bit for bit, through every path: new customers, kept customers, baskets another
writer added, a basket at or after the clock, a batch that did not commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from integrations.warehouse import write_batch
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
    read = rfm.rows(conn, tenant=TENANT, transaction_ids=result.transaction_ids,
                    buyers=result.buyers, as_of=as_of)  # fmt: skip
    # the consumer reads the batch's own lines earlier in the transaction and passes them in
    new = StreamRfm.new_lines(conn, tenant=TENANT, transaction_ids=result.transaction_ids,
                              buyers=result.buyers)  # fmt: skip
    early = rfm.rows(conn, tenant=TENANT, transaction_ids=result.transaction_ids,
                     buyers=result.buyers, as_of=as_of, new=new)  # fmt: skip
    assert (early.rows, early.lines, early.dropped) == (read.rows, read.lines, read.dropped)
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
