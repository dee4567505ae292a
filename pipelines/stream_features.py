"""Fresh RFM features of the customers a stream batch touched, written to the online store.

The batch job (features/rfm.py) snapshots every customer at month ends; the stream recomputes
only the customers whose baskets a batch inserted, at the stream's clock (the newest basket time
of the batch, + 1 s, under the same strict `transaction_timestamp < as_of` rule), and writes
them in Feast's Redis layout (features/online.py documents it) so serving reads them at once.
Like Feast's own writer, a row older than the one already online is not written.
The offline table `customer_rfm` is not touched: the next batch snapshot covers these baskets.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime

import psycopg
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from features.catalog import CUSTOMER_RFM, SEGMENTER_FEATURES
from features.online import KeyEncoder, decode_timestamp, feature_field

# The same definitions as features/rfm.py's _INSERT, for a set of customers at one as-of time.
_RFM_FOR = """
WITH c AS (SELECT DISTINCT unnest(%(customers)s::bigint[]) AS customer_id),
t AS (
    SELECT t.customer_id, t.transaction_id, t.transaction_timestamp AS ts, t.total_sales,
           t.item_count, t.store_id
    FROM transactions t JOIN c USING (customer_id)
    WHERE t.tenant_id = %(tenant)s AND t.transaction_timestamp < %(as_of)s
),
li AS (
    SELECT t.customer_id, i.transaction_id, i.product_id, i.sales_value, i.retail_disc,
           i.coupon_disc
    FROM t JOIN transaction_items i
      ON i.tenant_id = %(tenant)s AND i.transaction_id = t.transaction_id
),
l AS (
    SELECT customer_id,
           sum(sales_value)::float8 AS line_sales,
           sum(retail_disc)::float8 AS retail_disc,
           count(DISTINCT transaction_id) FILTER (WHERE coupon_disc > 0) AS coupons,
           count(DISTINCT product_id) AS products
    FROM li GROUP BY 1
)
SELECT t.customer_id,
       extract(epoch FROM %(as_of)s - max(t.ts))::float8 / 86400.0,
       count(*)::float8,
       sum(t.total_sales)::float8,
       coalesce(sum(t.total_sales)::float8 / nullif(count(*), 0), 0),
       coalesce(sum(t.item_count)::float8 / nullif(count(*), 0), 0),
       coalesce(max(l.products), 0)::float8,
       coalesce(max(l.retail_disc) / nullif(max(l.line_sales) + max(l.retail_disc), 0), 0),
       coalesce(max(l.coupons)::float8 / nullif(count(*), 0), 0),
       extract(epoch FROM %(as_of)s - min(t.ts))::float8 / 86400.0,
       coalesce(count(*) FILTER (
           WHERE extract(isodow FROM t.ts AT TIME ZONE 'UTC') >= 6)::float8 / count(*), 0),
       count(DISTINCT t.store_id)::float8
FROM t LEFT JOIN l USING (customer_id)
GROUP BY t.customer_id
"""

_DOUBLE = struct.Struct("<Bd")
_DOUBLE_TAG = 0x29  # Value.double_val (field 5, fixed64): what Feast writes for Float64


def rfm_for_customers(
    conn: psycopg.Connection, *, tenant: str, customers: Sequence[int], as_of: datetime
) -> dict[int, list[float]]:
    """RFM features (SEGMENTER_FEATURES order) of `customers` at `as_of`, from the warehouse."""
    if not customers:
        return {}
    rows = conn.execute(
        _RFM_FOR, {"tenant": tenant, "customers": list(customers), "as_of": as_of}
    ).fetchall()
    return {int(r[0]): [float(v) for v in r[1:]] for r in rows}


class OnlineRfmWriter:
    """Writes customer RFM rows into Feast's Redis layout for one Feast project."""

    def __init__(self, client: redis.Redis, project: str) -> None:
        self._client = client
        self._key = KeyEncoder(CUSTOMER_RFM.join_keys, CUSTOMER_RFM.key_types, project)
        self._fields = [feature_field(CUSTOMER_RFM.name, f) for f in SEGMENTER_FEATURES]
        self._ts_field = f"_ts:{CUSTOMER_RFM.name}".encode()

    def write(self, rows: dict[int, list[float]], as_of: datetime) -> int:
        """HSET each customer's features and event time unless a newer row is online; returns
        the number of customers written."""
        if not rows:
            return 0
        keys = {customer: self._key(customer) for customer in rows}
        stamp = Timestamp()
        stamp.FromDatetime(as_of)
        new_ts = stamp.seconds + stamp.nanos / 1e9
        ts_bytes = stamp.SerializeToString()
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys.values():
                pipe.hget(key, self._ts_field)
            previous = pipe.execute()
        written = 0
        with self._client.pipeline(transaction=False) as pipe:
            for (customer, key), prev in zip(keys.items(), previous, strict=True):
                old = decode_timestamp(prev)
                if old is not None and old > new_ts:
                    continue  # a newer snapshot (e.g. a later batch materialize) is online
                mapping = {
                    f: _DOUBLE.pack(_DOUBLE_TAG, v)
                    for f, v in zip(self._fields, rows[customer], strict=True)
                }
                mapping[self._ts_field] = ts_bytes
                pipe.hset(key, mapping=mapping)
                written += 1
            pipe.execute()
        return written
