"""Segment profile: how many customers each segment has, and how they spend and shop.

Segments come from the segmenter's batch scores (`predictions` of model "segmenter", entity =
customer id, payload `{segmentId, label}`, newest version), or, when there are none (or
`source=rfm`), from a visible rule on the period's own baskets: recency and frequency tertiles
(1 = lowest third … 3 = highest, recency counted from the end of the period) named by
`RFM_NAMES`. Spend and baskets are always those of the period (`transactions`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

import psycopg

from reports.document import Chart, Column, Kpi, Section, Table
from reports.params import Period, SegmentProfileParams

Step = Callable[[str], None]
RFM_NAMES = {
    (3, 3): "Champions",
    (3, 2): "Loyal",
    (2, 3): "Loyal",
    (2, 2): "Steady",
    (3, 1): "Recent, light",
    (2, 1): "Occasional",
    (1, 3): "At risk (were frequent)",
    (1, 2): "At risk",
    (1, 1): "Lapsing",
}
RFM_RULE = (
    "Segments by rule (no segmenter scores used): customers with baskets in the period are "
    "split into thirds by days since their last basket (recency) and by basket count "
    "(frequency); 3/3 = Champions, 3/2 and 2/3 = Loyal, 2/2 = Steady, 3/1 = Recent, light, "
    "2/1 = Occasional, 1/3 = At risk (were frequent), 1/2 = At risk, 1/1 = Lapsing."
)
_PERIOD = """
    t.tenant_id = %(tenant)s AND t.transaction_timestamp >= %(lower)s
    AND t.transaction_timestamp < %(upper)s
    AND (%(stores)s::text[] IS NULL OR t.store_id = ANY(%(stores)s::text[]))
"""


def segmenter_version(conn: psycopg.Connection, *, tenant: str) -> int | None:
    """The newest segmenter version with stored scores."""
    row = conn.execute(
        "SELECT max(model_version) FROM predictions WHERE tenant_id = %s AND model = 'segmenter'",
        (tenant,),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def customer_activity(conn: psycopg.Connection, *, tenant: str, period: Period,
                      stores: list[str] | None) -> dict[int, dict[str, float]]:  # fmt: skip
    """Per customer with baskets in the period: spend, baskets, discounts, days since last."""
    rows = conn.execute(
        "SELECT t.customer_id, sum(t.total_sales), count(*), sum(t.total_discount),"
        " extract(epoch FROM (%(upper)s - max(t.transaction_timestamp))) / 86400"
        " FROM transactions t WHERE" + _PERIOD + " GROUP BY t.customer_id",
        {"tenant": tenant, "lower": period.lower, "upper": period.upper, "stores": stores},
    ).fetchall()
    keys = ("spend", "baskets", "discounts", "recency_days")
    return {
        int(r[0]): dict(
            zip(keys, (float(v) if isinstance(v, Decimal | int) else v for v in r[1:]), strict=True)
        )  # fmt: skip
        for r in rows
    }


def segmenter_labels(conn: psycopg.Connection, *, tenant: str, version: int) -> dict[int, str]:
    """customer id → segment label of a segmenter version's scores."""
    rows = conn.execute(
        "SELECT entity::bigint, coalesce(payload->>'label', 'segment ' || (payload->>'segmentId'))"
        " FROM predictions WHERE tenant_id = %s AND model = 'segmenter' AND model_version = %s"
        " AND entity ~ '^[0-9]+$'",
        (tenant, version),
    ).fetchall()
    return {int(c): str(label) for c, label in rows}


def rfm_labels(activity: dict[int, dict[str, float]]) -> dict[int, str]:
    """Recency/frequency tertile names (ties broken by customer id, like SQL's ntile)."""
    ids = sorted(activity)
    n = len(ids)

    def tertile(order: list[int]) -> dict[int, int]:
        # ntile(3): the first n % 3 groups get one extra member
        sizes = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
        out, pos = {}, 0
        for group, size in enumerate(sizes, start=1):
            for cid in order[pos : pos + size]:
                out[cid] = group
            pos += size
        return out

    recency = tertile(sorted(ids, key=lambda c: (-activity[c]["recency_days"], c)))
    frequency = tertile(sorted(ids, key=lambda c: (activity[c]["baskets"], c)))
    return {c: RFM_NAMES[(recency[c], frequency[c])] for c in ids}


def segment_profile(conn: psycopg.Connection, *, tenant: str, params: SegmentProfileParams,
                    period: Period, step: Step) -> list[Section]:  # fmt: skip
    """Sections of the segment profile: KPIs, one row per segment, and the customers."""
    step("customer activity")
    activity = customer_activity(conn, tenant=tenant, period=period, stores=params.stores)
    version = None if params.source == "rfm" else segmenter_version(conn, tenant=tenant)
    if params.source == "segmenter" and version is None:
        note = (f"There are no segmenter scores for tenant {tenant} yet: run `retailpulse score "
                "segments` (or ask for source=rfm).")  # fmt: skip
        return [Section(heading="Segments", notes=[note])]
    step("segments")
    if version is not None:
        labels = segmenter_labels(conn, tenant=tenant, version=version)
        if params.stores:  # only customers who shopped in those stores in the period
            labels = {c: s for c, s in labels.items() if c in activity}
        source = (f"Segments: the segmenter's batch scores (version {version}); spend and "
                  "baskets are those of the period.")  # fmt: skip
    else:
        labels = rfm_labels(activity)
        source = RFM_RULE
    if not labels:
        return [
            Section(heading="Segments", notes=[source, f"No customers with baskets from {period}."])
        ]
    groups: dict[str, list[int]] = defaultdict(list)
    for cid, label in labels.items():
        groups[label].append(cid)
    total_customers = len(labels)
    total_spend = sum(a["spend"] for c, a in activity.items() if c in labels)
    rows = []
    for label, members in groups.items():
        act = [activity[c] for c in members if c in activity]
        spend = sum(a["spend"] for a in act)
        baskets = sum(a["baskets"] for a in act)
        discounts = sum(a["discounts"] for a in act)
        rows.append([
            label, len(members), len(members) / total_customers, len(act), spend,
            spend / total_spend if total_spend else None, spend / len(members),
            baskets / len(members), spend / baskets if baskets else None,
            discounts / (spend + discounts) if spend + discounts else None,
            sum(a["recency_days"] for a in act) / len(act) if act else None,
        ])  # fmt: skip
    rows.sort(key=lambda r: (-r[4], r[0]))
    table = Table(
        name="segments",
        title="Segments, largest spend first",
        main=True,
        columns=[
            Column(key="segment", label="Segment"),
            Column(key="customers", label="Customers", kind="int"),
            Column(key="customer_share", label="Share of customers", kind="pct"),
            Column(key="active_customers", label="With baskets in period", kind="int"),
            Column(key="spend", label="Spend", kind="money"),
            Column(key="spend_share", label="Share of spend", kind="pct"),
            Column(key="spend_per_customer", label="Spend per customer", kind="money"),
            Column(key="baskets_per_customer", label="Baskets per customer", kind="float"),
            Column(key="avg_basket", label="Average basket", kind="money"),
            Column(key="discount_rate", label="Discount rate", kind="pct"),
            Column(key="days_since_last", label="Days since last basket", kind="float"),
        ],
        rows=rows,
    )
    customers = Table(
        name="customers",
        title="Customers",
        columns=[
            Column(key="customer_id", label="Customer"),
            Column(key="segment", label="Segment"),
            Column(key="spend", label="Spend", kind="money"),
            Column(key="baskets", label="Baskets", kind="int"),
            Column(key="days_since_last", label="Days since last basket", kind="float"),
        ],
        rows=[
            [
                str(c),
                labels[c],
                activity.get(c, {}).get("spend", 0.0),
                activity.get(c, {}).get("baskets", 0),
                activity.get(c, {}).get("recency_days"),
            ]
            for c in sorted(labels, key=lambda c: (-activity.get(c, {}).get("spend", 0.0), c))
        ],  # fmt: skip
    )
    chart = Chart(
        title="Share of customers and of spend by segment (%)",
        kind="bar",
        x=[r[0] for r in rows],
        series={
            "Customers": [r[2] * 100 for r in rows],
            "Spend": [(r[5] or 0) * 100 for r in rows],
        },  # fmt: skip
        y_label="% of total",
    )
    kpis = [
        Kpi(label="Customers", value=total_customers, kind="int"),
        Kpi(label="Segments", value=len(rows), kind="int"),
        Kpi(label="Spend", value=round(total_spend, 2), kind="money"),
        Kpi(label=f"Top segment ({rows[0][0]}) share of spend", value=rows[0][5], kind="pct"),
    ]
    return [Section(heading="Segments", notes=[source], kpis=kpis, charts=[chart],
                    tables=[table, customers])]  # fmt: skip
