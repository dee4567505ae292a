"""Rollup tables at each analytics query's grain, refreshed from the warehouse.

Grains (chosen because they aggregate Complete Journey's 1.47M line items, DESIGN §6):
`sales_hourly` store × day × hour (126k rows), `sales_daily` store × day (38.5k),
`product_weekly` product × week (595k), `category_daily` department × category × day (83k),
and `basket_sets` (per store × day, every basket's distinct category ids, packed for numpy) with
its id table `analytics_categories`. A store × product grain is deliberately absent: it barely
aggregates this data (1.34M rows at × week).

Days are business days, as in `store_daily_sales`: transaction time (UTC) − 5 h; weeks start on
the Monday of the business day; hours are business-local.

`refresh` runs inside the writer's transaction, so rollups change with the data or not at all.
Three ways share one set of statements (staged baskets → per basket × category → one insert
per table); a fourth, for a tenant's first load, aggregates the writer's frames instead:

- delta (`add_baskets`): the writer staged exactly the baskets it inserted (`Landed.new_baskets`,
  core/events.py; re-deliveries it skipped are not among them). Only those baskets and their
  lines are read, and every table is upserted additively (`revenue = revenue + excluded.revenue`
  ...; `basket_sets` appends the baskets' packed sizes and ids — readers never depend on basket
  order, analytics/baskets.py). The one non-additive column, `sales_daily.customers`, counts a
  new basket's customer only when no other basket of that customer at that store-day exists
  (a probe of `ix_transactions_customer_ts` per basket). Cost follows the batch, not the days
  it touches: into the full Complete Journey tenant, a 5,000-basket stream batch took 0.8 s
  (recomputing its days: 1.7-2.0 s), 500 baskets 0.2 s (1.2-2.2 s), a 50k-line file import of
  households spanning both years 1.6 s (14-15 s). Exact as long as the rollups were exact
  before, which every writer keeps (all of them refresh in their transaction, one tenant at a
  time under an advisory lock); tests/integration/test_rollups_delta.py compares with rebuilds.
- window (`rebuild` with a `Window`): the writer did not say which baskets are new (a stream
  or POS batch mixing re-deliveries with new baskets; a tenant's first file import, where this
  was faster than a delta of everything). The business days `landed` touched (its
  UTC days and the day before, since a UTC day's first hours belong to the previous business
  day) are deleted and recomputed from the base tables, for the stores it touched in the
  store-grained tables and for every store in the tenant-wide ones (`product_weekly`: whole
  weeks). A re-delivered batch changes nothing.
- full (`landed.everything`, a first or full load): the tenant's rows are rebuilt.
- first load from the writer's frames (`landed.first_load`: a file import or Complete Journey
  ingest into a tenant without baskets): the same rows aggregated in memory and COPYed
  (analytics/rollup_frames.py), once `transactions` is seen to hold exactly those baskets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from analytics import rollup_frames
from analytics import rollup_sql as q
from analytics.rollup_sql import MAX_CATEGORY_ID
from core.events import Landed
from features.store_daily import BUSINESS_DAY_HOURS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Business days to recompute (None: all of the tenant's) and stores (None: every store)."""

    first: date | None = None
    last: date | None = None
    stores: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.first is None or self.last is None

    @property
    def weeks(self) -> tuple[date, date]:
        """Mondays of the first and last touched weeks."""
        assert self.first is not None and self.last is not None
        return (
            self.first - timedelta(days=self.first.weekday()),
            self.last - timedelta(days=self.last.weekday()),
        )


def window_of(landed: Landed) -> Window:
    """The business days (and stores) `landed` may have changed."""
    if landed.everything:
        return Window()
    assert landed.first_day is not None and landed.last_day is not None
    # a UTC day's first BUSINESS_DAY_HOURS hours belong to the previous business day
    return Window(landed.first_day - timedelta(days=1), landed.last_day, landed.stores)


def refresh(conn: psycopg.Connection, landed: Landed) -> None:
    """Bring the rollups up to date with what `landed` changed, inside the caller's
    transaction: by delta when the writer staged its new baskets, else by recomputing."""
    if not landed.everything and landed.stores is not None and not landed.stores:
        return  # a batch that inserted nothing
    clock = time.perf_counter()
    if landed.first_load is not None and rollup_frames.holds_every_basket(
        conn, landed.tenant, landed.first_load[0]
    ):
        rollup_frames.load(conn, landed.tenant, *landed.first_load)
        how = "first load, from the writer's frames"
    elif landed.new_baskets is not None and not landed.everything:
        prepared = add_baskets(conn, tenant=landed.tenant, new_baskets=landed.new_baskets)
        how = f"delta {landed.first_day}..{landed.last_day}" + (", prepared" if prepared else "")
    else:
        rebuild(conn, tenant=landed.tenant, window=window_of(landed))
        how = "full" if landed.everything else f"{landed.first_day}..{landed.last_day}"
    log.info("analytics rollups for %s (%s, %s): %.2f s", landed.tenant, landed.source, how,
             time.perf_counter() - clock)  # fmt: skip


def prepare(conn: psycopg.Connection, landed: Landed) -> None:
    """Before the writer takes the tenant's lock (`core.events.prepare`): stage what reads only
    the baskets staged in `landed.new_baskets` and their lines, which no other writer changes,
    for the `add_baskets` of the same transaction: the baskets (their business day, hour and
    week; whether each customer is new to its store-day reads other writers' baskets and is
    left to `add_baskets`), per basket × category their lines, and their product × week sums.
    The stream consumer overlaps this with the previous batch's rollups; under the lock there
    remain the new-customer probe and the upserts."""
    if landed.new_baskets is None or landed.everything:
        return
    new = landed.new_baskets
    params = {"tenant": landed.tenant}
    with _delta_settings(conn):
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(_PREPARED)}")
        conn.execute(q.STAGE.format(into="_rp_baskets_pre", source=q.EACH_BASKET.format(new=new),
                                    window="", new_customer="NULL::boolean"), params)  # fmt: skip
        conn.execute(q.BASKET_CATEGORIES.format(into="_rp_bc_pre", baskets=new, items=q.EACH_ITEMS,
                                                categories="LEFT"), params)  # fmt: skip
        conn.execute(q.PRODUCT_WEEKLY_PRE.format(items=q.EACH_ITEMS), params)
        conn.execute(f"CREATE TEMP TABLE _rp_pre_of ON COMMIT DROP AS"
                     f" SELECT count(*) AS n, sum(transaction_id) AS ids FROM {new}")  # fmt: skip


# what `prepare` stages: baskets (without the new-customer probe), basket x category, product x
# week, and which baskets it was made for
_PREPARED = ("_rp_baskets_pre", "_rp_bc_pre", "_rp_pw_pre", "_rp_pre_of")


def _take_prepared(conn: psycopg.Connection, new_baskets: str) -> bool:
    """Whether `prepare`'s staging was made for the baskets staged now: then its basket x
    category rows become `_rp_bc` and its `_rp_baskets_pre` and `_rp_pw_pre` stay for
    `_stage` and `add_baskets` (which drop them); otherwise all of it is dropped."""
    if not conn.execute("SELECT to_regclass('pg_temp._rp_pre_of') IS NOT NULL").fetchone()[0]:
        return False
    same = conn.execute(f"SELECT (SELECT (n, ids) FROM _rp_pre_of) IS NOT DISTINCT FROM"
                        f" (SELECT (count(*), sum(transaction_id)) FROM {new_baskets})").fetchone()[0]  # fmt: skip
    if same:
        conn.execute("DROP TABLE _rp_pre_of")
        conn.execute("ALTER TABLE _rp_bc_pre RENAME TO _rp_bc")
    else:
        conn.execute(f"DROP TABLE {', '.join(_PREPARED)}")
    return bool(same)


@contextmanager
def _delta_settings(conn: psycopg.Connection) -> Iterator[None]:
    # The nested loops' estimates pass jit_above_cost: compiling them took longer (~0.6 s) than
    # running them. Set for these statements only: the writer's transaction goes on after them.
    before = conn.execute("SELECT current_setting('jit'), current_setting('work_mem')").fetchone()
    conn.execute("SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)")
    yield
    conn.execute("SELECT set_config('jit', %s, true), set_config('work_mem', %s, true)", before)


def add_baskets(conn: psycopg.Connection, *, tenant: str, new_baskets: str) -> bool:
    """Add the baskets listed in the temporary table `new_baskets` (transaction_id; inserted by
    this transaction, so in no rollup yet) to the tenant's rollups; returns whether `prepare`'s
    staging of them was used."""
    lock_tenant(conn, tenant)
    params = {"tenant": tenant}
    with _delta_settings(conn):
        # no ANALYZE of the staged tables: a batch's few thousand rows are hash-joined whatever
        # their statistics, and three ANALYZEs cost ~10% of a 5,000-basket delta
        prepared = _stage(conn, params, source=q.EACH_BASKET.format(new=new_baskets),
                          items=q.EACH_ITEMS, analyze=False, probe_categories=new_baskets,
                          new_customer=q.FIRST_AT_STORE_DAY.format(new=new_baskets))  # fmt: skip
        for name, (statement, adding) in q.INSERTS.items():
            if prepared and name == "product_weekly":
                statement = q.PRODUCT_WEEKLY_PREPARED
            conn.execute(statement.format(days="", stores="", items=q.EACH_ITEMS, conflict=adding),
                         params)  # fmt: skip
        conn.execute("DROP TABLE _rp_baskets, _rp_bc, _rp_units"
                     + (", _rp_baskets_pre, _rp_pw_pre" if prepared else ""))  # fmt: skip
    return prepared


def rebuild(conn: psycopg.Connection, *, tenant: str, window: Window | None = None) -> None:
    """Delete and recompute the tenant's rollup rows inside `window` (default: all of them)."""
    window = window or Window()
    lock_tenant(conn, tenant)
    # the product × week aggregate holds ~600k groups of numeric sums (~500 MB on full data)
    conn.execute("SET LOCAL work_mem = '512MB'")
    params: dict[str, object] = {"tenant": tenant}
    if window.everything:
        stage_window, days, week_days, stores = "", "", "", ""
    else:
        w0, w1 = window.weeks
        params.update(
            first=window.first,
            last=window.last,
            w0=w0,
            w1=w1,
            lo=w0,
            hi=w1 + timedelta(days=7),
            hours=BUSINESS_DAY_HOURS,
        )
        # whole weeks staged (product_weekly), narrowed to the touched days below
        stage_window = (
            "AND t.transaction_timestamp >= (%(lo)s::date + make_interval(hours => %(hours)s))"
            " AT TIME ZONE 'UTC'"
            " AND t.transaction_timestamp < (%(hi)s::date + make_interval(hours => %(hours)s))"
            " AT TIME ZONE 'UTC'"
        )
        days = "AND b.day BETWEEN %(first)s AND %(last)s"
        week_days = "AND day BETWEEN %(first)s AND %(last)s"
        stores = ""
        if window.stores is not None:
            params["stores"] = sorted(window.stores)
            stores = "AND b.store_id = ANY(%(stores)s)"
    store_filter = stores.replace("b.", "")

    _stage(conn, params, source="transactions t", window=stage_window, items=q.ALL_ITEMS)
    for table in ("sales_hourly", "sales_daily", "basket_sets"):
        conn.execute(f"DELETE FROM {table} WHERE tenant_id = %(tenant)s {week_days} {store_filter}",
                     params)  # fmt: skip
    conn.execute(f"DELETE FROM category_daily WHERE tenant_id = %(tenant)s {week_days}", params)
    weeks = "" if window.everything else "AND week BETWEEN %(w0)s AND %(w1)s"
    conn.execute(f"DELETE FROM product_weekly WHERE tenant_id = %(tenant)s {weeks}", params)
    for statement, _ in q.INSERTS.values():  # product_weekly: whole weeks, every store
        conn.execute(statement.format(days=days, stores=stores, items=q.ALL_ITEMS, conflict=""),
                     params)  # fmt: skip
    conn.execute("DROP TABLE _rp_baskets, _rp_bc, _rp_units")


def lock_tenant(conn: psycopg.Connection, tenant: str) -> None:
    """One refresh per tenant at a time: two rebuilds of the same days would both delete and
    then collide on insert, and a delta must see every basket committed before it (its
    customer counts probe them). Held to the end of the caller's transaction; a writer may take
    it before its refresh to order itself (the stream consumer's writers do)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"analytics:{tenant}",))


def _stage(
    conn: psycopg.Connection,
    params: dict[str, object],
    *,
    source: str,
    items: str,
    window: str = "",
    new_customer: str = "true",
    analyze: bool = True,
    probe_categories: str | None = None,
) -> bool:
    """Stage the baskets of `source` (`t`: transactions) in `window`, new categories, and per
    basket × category (lines by `items`) its units, revenue and lines; `analyze` the staged
    tables for the statements that join them. `probe_categories` (a delta, its new-baskets
    table: few lines, a whole catalog): take `prepare`'s staging if it was made for them, and
    look for new categories only when a line's category has no id yet (at 37k products the
    look cost ~7 ms per stream batch). Returns whether `prepare`'s staging was taken: its
    baskets, probed here for `new_customer` (FIRST_AT_STORE_DAY_STAGED), and its product x week
    rows (`_rp_pw_pre`, for the caller)."""
    conn.execute("DROP TABLE IF EXISTS _rp_baskets, _rp_bc, _rp_units")
    prepared = bool(probe_categories) and _take_prepared(conn, probe_categories)
    if prepared:
        probe = q.FIRST_AT_STORE_DAY_STAGED.format(new=probe_categories)
        conn.execute(q.STAGE_PREPARED.format(new_customer=probe), params)
    else:
        conn.execute(q.STAGE.format(into="_rp_baskets", source=source, window=window,
                                    new_customer=new_customer), params)  # fmt: skip
    if analyze:
        conn.execute("ANALYZE _rp_baskets")
    missing = True
    if probe_categories:  # new categories (scanning every product) only if a line lacks one
        if not prepared:
            conn.execute(q.BASKET_CATEGORIES.format(into="_rp_bc", baskets="_rp_baskets",
                                                    items=items, categories="LEFT"), params)  # fmt: skip
        missing = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM _rp_bc WHERE category_id IS NULL)"
        ).fetchone()[0]
        if missing:
            conn.execute("DROP TABLE _rp_bc")
    if missing:
        conn.execute(q.NEW_CATEGORIES, params)
        tenant = params["tenant"]
        top = conn.execute(
            "SELECT max(category_id) FROM analytics_categories WHERE tenant_id = %s", (tenant,)
        ).fetchone()[0]
        if top is not None and top > MAX_CATEGORY_ID:  # pragma: no cover - taxonomies of 32k+
            raise ValueError(f"tenant {tenant} has more than {MAX_CATEGORY_ID} product categories")
        conn.execute(q.BASKET_CATEGORIES.format(into="_rp_bc", baskets="_rp_baskets", items=items,
                                                categories=""), params)  # fmt: skip
    if analyze:
        conn.execute("ANALYZE _rp_bc")
    conn.execute(q.UNITS, params)
    if analyze:
        conn.execute("ANALYZE _rp_units")
    return prepared
