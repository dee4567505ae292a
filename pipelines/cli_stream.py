"""`retailpulse consume` and `retailpulse produce-sample`: the live POS stream."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.console import console
from pipelines.options import TenantOpt
from pipelines.stream_config import ConsumeConfig


def consume_cmd(
    tenant: TenantOpt = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many messages (default: never).")
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Stop after this many seconds without a message."),
    ] = None,
    group: Annotated[
        str, typer.Option(help="Kafka consumer group (consumers of one group share the work).")
    ] = "retailpulse-warehouse",
    max_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most messages written in one database transaction; a batch grows only while"
            " the writers are busy. Smaller: fresher features; bigger: more messages/s.",
        ),
    ] = ConsumeConfig.model_fields["max_batch"].default,
    writers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Batches written at once, each on its own database connection: one merges"
            " while the one before it refreshes the rollups and commits.",
        ),
    ] = ConsumeConfig.model_fields["writers"].default,
) -> int:
    """Consume transactions.new and inventory.updates into the warehouse and the online store.

    Invalid messages go to transactions.rejected with the reason; offsets are committed only
    after the warehouse commit, so a crash re-delivers, and a re-delivered basket changes
    nothing. Stop with Ctrl-C.
    """
    from pipelines.jobs import stream as jobs

    def show(stats) -> None:
        console.print(
            f"\r{stats.messages} messages: {stats.baskets} new baskets, "
            f"{stats.duplicates} duplicates, {stats.inventory} inventory, "
            f"{stats.rejected} rejected, {stats.customers_pushed} customers pushed online"
            + (f", lag {stats.last_lag:.1f} s" if stats.last_lag is not None else ""),
            end="",
        )

    console.print("consuming transactions.new, inventory.updates (Ctrl-C stops) …")
    stats = jobs.consume(
        tenant,
        max_messages=max_messages,
        idle_timeout_s=idle_timeout,
        on_batch=show,
        group_id=group,
        max_batch=max_batch,
        writers=writers,
    )
    console.print()
    console.print(
        f"done: {stats.messages} messages in {stats.batches} batches; {stats.baskets} baskets "
        f"written, {stats.duplicates} duplicates skipped, {stats.inventory} inventory levels, "
        f"{stats.rejected} rejected, {stats.db_retries} database retries"
    )
    return 0


def produce_sample_cmd(
    rate: Annotated[
        float, typer.Option(min=0.001, help="Baskets per second onto transactions.new.")
    ] = 50.0,
    baskets: Annotated[
        int | None, typer.Option(min=1, help="How many baskets (default: all selected).")
    ] = None,
    households: Annotated[
        int | None, typer.Option(min=1, help="Only the first H households (by id).")
    ] = None,
    inventory: Annotated[
        bool, typer.Option(help="Also send the rule-derived inventory.updates.")
    ] = True,
) -> int:
    """Replay Complete Journey baskets onto transactions.new in time order.

    Inventory levels (Complete Journey has none) follow a visible rule: starting stock = 2 weeks
    of the (store, product) average weekly units, replenished to 2 weeks when below 1 week
    (docs/streaming.md).
    """
    from rich.progress import Progress

    from pipelines.jobs import stream as jobs

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("producing baskets", total=baskets)
        stats = jobs.produce_sample(
            rate=rate,
            baskets=baskets,
            households=households,
            inventory=inventory,
            on_basket=lambda n: progress.update(task, completed=n),
        )
    console.print(
        f"sent {stats.baskets} baskets and {stats.inventory} inventory updates "
        f"in {stats.seconds:.1f} s ({stats.baskets / max(stats.seconds, 1e-9):.0f} baskets/s)"
    )
    return 0
