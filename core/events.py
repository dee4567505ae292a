"""What happened to a tenant's data: the event every writer announces after it lands.

Writers of sales (Complete Journey ingest, file import, the stream consumer) and batch scoring
describe what they changed as a `Landed`; `pipelines/hooks.py` hands it to the analytics rollups
(inside the writer's transaction) and, after the commit, to the analytics cache and the alert
engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Landed:
    """New data for one tenant.

    `first_day`/`last_day` bound the sale days touched (both None: anything may have changed,
    as after a full load); `stores` the stores touched (None: any).
    """

    tenant: str
    source: str  # "completejourney", "file", "stream" or "score"
    first_day: date | None = None
    last_day: date | None = None
    stores: frozenset[str] | None = None
    transactions: int = 0  # new baskets written
    revenue: float | None = None  # their sales value, when the writer knows it
    model: str | None = None  # for "score": the model key scored
    details: tuple[tuple[str, object], ...] = ()

    @property
    def everything(self) -> bool:
        """True when the change is not bounded to a day range."""
        return self.first_day is None or self.last_day is None
