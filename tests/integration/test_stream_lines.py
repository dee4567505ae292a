"""How the stream writer puts a batch's lines into the warehouse (integrations/warehouse.py
`_merge`): COPYed straight in for new baskets, also beside re-delivered ones, merged from
float8 staging when the warehouse holds lines without their basket. Helpers from
test_rollups_delta.py (the rollups each write must keep exact)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from core.db import connect
from integrations import warehouse
from integrations.messages import BasketLine, BasketMessage
from tests.integration.test_rollups_delta import (
    MONDAY,
    ROLLUPS,
    assert_equals_a_rebuild,
    at,
    basket,
    new_tenant,
    snapshot,
    stream_batch,
)


@pytest.fixture
def tenant(service_env) -> str:
    return new_tenant()


def test_merge_keeps_lines_already_there_without_their_basket(tenant):
    """Lines of a basket the warehouse lacks (not written by the merge): the basket goes in,
    its other lines too, those already there stay as they are."""
    with connect() as conn:
        conn.execute(
            "INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id,"
            " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc)"
            " VALUES (%s, 8201, 1, 3, 1, 9.99, 0, 0, 0)",
            (tenant,),
        )
    assert stream_batch(tenant, [basket(8201, "S1", 5, at(MONDAY, 12), [1, 2])]) == 1
    with connect() as conn:
        lines = conn.execute(
            "SELECT line_no, product_id, sales_value::float8 FROM transaction_items"
            " WHERE tenant_id = %s AND transaction_id = 8201 ORDER BY line_no",
            (tenant,),
        ).fetchall()
    assert lines == [(1, 3, 9.99), (2, 2, 2.5 + 8201 % 7)]


# Amounts whose numeric(12,2) / (12,4) value depends on how a float becomes numeric: the float8
# cast's 15 significant digits (1.0049999999999999 is 1.01 there, 1.00 from its repr), ties at
# the 16th digit (123456789.0078125), float noise (0.1 + 0.2), exponents, thirds.
AMOUNTS = [1.0049999999999999, 2.675, 0.125, 1e-05, 123456789.0078125, 0.1 + 0.2, 9.995, 1 / 3,
           12345678.00390625, 0.0, 2.5, 0.3049999999999999, 7.0]  # fmt: skip


def amounts_basket(tid: int, shift: int) -> dict:
    n = len(AMOUNTS)
    lines = []
    for k in range(n):
        quantity = [2, 3, 0, 7, -2][(k + shift) % 5]
        sales = AMOUNTS[(k + shift) % n] * (1 if quantity >= 0 else -1)
        lines.append(BasketLine(product_id=k % 4 + 1, quantity=quantity, sales_value=sales,
                                retail_disc=AMOUNTS[(k + shift + 1) % n] % 1000,
                                coupon_disc=AMOUNTS[(k + shift + 2) % n] % 1000,
                                coupon_match_disc=AMOUNTS[(k + shift + 3) % n] % 1000))  # fmt: skip
    return BasketMessage(transaction_id=tid, store_id="S1", customer_id=tid % 3,
                         timestamp=at(MONDAY, 10 + shift), lines=lines).model_dump()  # fmt: skip


def test_lines_copied_in_equal_the_staged_merge(service_env, monkeypatch):
    """A batch of new baskets has its lines COPYed straight in, and so does one with a
    re-delivered basket (the new baskets' lines only); when the warehouse holds a line without
    its basket, the COPY fails and the lines merge from float8 staging. All three write the
    same line items and rollups."""
    staged = Counter()
    copy_lines = warehouse._copy_lines

    def spy(cur, baskets):
        staged[len(baskets)] += 1
        return copy_lines(cur, baskets)

    monkeypatch.setattr(warehouse, "_copy_lines", spy)
    first = amounts_basket(9000, 0)
    batch = [amounts_basket(9000 + k, k) for k in range(1, 6)]
    direct, mixed, stray = new_tenant(), new_tenant(), new_tenant()
    for tenant in (direct, mixed, stray):
        assert stream_batch(tenant, [first]) == 1
    assert stream_batch(direct, batch) == 5  # all new
    assert stream_batch(mixed, [first, *batch]) == 5  # one re-delivered: the 5 new ones' lines
    with connect() as conn:  # 9003's third line, as the all-new batch wrote it, without 9003
        conn.execute(
            "INSERT INTO transaction_items SELECT %s, transaction_id, line_no, product_id,"
            " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc, unit_price"
            " FROM transaction_items WHERE tenant_id = %s AND transaction_id = 9003"
            " AND line_no = 3",
            (stray, direct),
        )
    assert staged == {}  # COPY every time so far
    assert stream_batch(stray, [first, *batch]) == 5
    assert staged == {6: 1}  # the stray line's batch merged from staging
    for tenant in (direct, mixed, stray):
        assert_equals_a_rebuild(tenant)
    with connect() as conn:

        def rows(tenant: str) -> dict[str, object]:
            found = {
                table: conn.execute(
                    f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY {order}", (tenant,)
                ).fetchall()
                for table, order in [("transaction_items", "transaction_id, line_no"),
                                     ("transactions", "transaction_id"), *ROLLUPS.items()]
            }  # fmt: skip
            found = {t: [r[1:] for r in found[t]] for t in found}  # without the tenant
            found["basket_sets"] = snapshot(conn, tenant)["basket_sets"]
            return found

        written, copied, merged = rows(direct), rows(mixed), rows(stray)
    assert len(written["transaction_items"]) == 6 * len(AMOUNTS)
    for table in written:
        assert written[table] == copied[table] == merged[table], table
    # and the values are the float8 cast's (15 digits), not the repr's
    assert (9000, 1, 1, 2, Decimal("1.01")) == written["transaction_items"][0][:5]
