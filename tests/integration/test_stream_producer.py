"""The sample producer (`retailpulse produce-sample`, the demo's live stream): baskets valid
for the topic schema in time order, the visible inventory rule, each demo run on households the
warehouse does not know yet."""

from __future__ import annotations

import pandas as pd
import pytest

from integrations.messages import BasketMessage, InventoryMessage
from pipelines.stream_producer import sample_messages
from tests.integration.test_stream import _counts

pytestmark = pytest.mark.integration


def test_sample_producer_follows_the_inventory_rule():
    """Sample baskets validate against the topic schema, go out in time order, and stock
    starts at 2 weeks of average weekly units and is replenished below 1 week."""
    ts = pd.Timestamp("2017-01-02 09:00")
    rows = []
    for i in range(4):  # 4 baskets of 3 units of product 7 at store 1, one a day, weeks 1-2
        rows.append(
            (100 + i, 1, 1, 7, 3, 6.0, 0.5, 0.0, 0.0, 1 + i // 2, ts + pd.Timedelta(days=i))
        )
    cols = ["basket_id", "household_id", "store_id", "product_id", "quantity", "sales_value",
            "retail_disc", "coupon_disc", "coupon_match_disc", "week", "transaction_timestamp"]  # fmt: skip
    out = list(sample_messages(pd.DataFrame(rows, columns=cols)))
    baskets = [BasketMessage.model_validate_json(b[2]) for b, _ in out]
    assert [b.transaction_id for b in baskets] == [100, 101, 102, 103]
    updates = [InventoryMessage.model_validate_json(u[2]) for _, inv in out for u in inv]
    # 12 units over 2 weeks = 6 a week: start 12; after 3+3 sold stock 6 is not below 6;
    # after the third sale (3 left) it is replenished to 12.
    assert [(u.on_hand, u.reorder_point) for u in updates] == [(12, 6), (12, 6)]
    assert updates[0].rule.startswith("initial") and updates[1].rule.startswith("replenished")
    assert updates[1].timestamp == baskets[2].timestamp


@pytest.mark.slow
def test_live_stream_demo_puts_a_new_customer_online(service_env, warehouse_env):
    """The demo's live stream: a few hundred sample baskets reach the warehouse and one
    customer, unknown before, is readable online afterwards with the baskets counted."""
    from pipelines.jobs.stream import live_stream_demo

    result = live_stream_demo(baskets=200, households=20, rate=500)
    assert result["produced"].baskets == 200
    assert result["consumed"].baskets == 200
    assert result["before"] is None
    assert result["after"]["frequency"] >= 1
    assert _counts(warehouse_env)["transactions"] == 200
    # a second run reads on from the first one's offsets: only its own messages, all new
    again = live_stream_demo(baskets=20, households=20, rate=500)
    assert again["consumed"].messages == again["produced"].baskets + again["produced"].inventory
    assert again["consumed"].baskets == 20 and again["consumed"].duplicates == 0
    assert _counts(warehouse_env)["transactions"] == 220


def test_sample_baskets_skip_households_already_streamed():
    """Each demo run streams households the warehouse does not know yet: with the first ones
    excluded, the next ones come, in time order (a 4th `make demo` found none left before)."""
    from pipelines.stream_producer import load_baskets

    first, _ = load_baskets(households=3)
    firsts = sorted(first["household_id"].unique())
    following, weekly = load_baskets(households=3, exclude=firsts)
    assert len(firsts) == 3 and not set(following["household_id"]) & set(firsts)
    assert following["household_id"].nunique() == 3 and len(weekly) > 0
    assert following["household_id"].min() > max(firsts)  # the next ids, not random ones
    stamps = following["transaction_timestamp"].to_numpy()
    assert (stamps[1:] >= stamps[:-1]).all()
