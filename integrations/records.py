"""Records of the integration API: the CRM customer schema, and record-by-record validation that
names, for every rejected record, its index, the field, the value, the rule and the message
(the file import's report, with a batch index in place of a file row).

POS baskets and inventory levels use the stream's schemas (`integrations.messages`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from integrations.messages import EventTime, Text

M = TypeVar("M", bound=BaseModel)
VALUE_CHARS = 200  # a rejected value longer than this (as JSON) is cut
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Rules of records skipped rather than rejected (they are valid; the warehouse already knows)
DUPLICATE_RULES = {
    "duplicate_in_batch": "the same key appears earlier in the batch",
    "already_loaded": "the warehouse already has this record, unchanged",
    "stale": "the warehouse (or a later record of the batch) has a newer one",
}

Text64 = Field(default=None, max_length=64)


class CustomerRecord(BaseModel):
    """A customer from a CRM: contact, loyalty tier and demographics (Complete Journey's
    household columns). A field left out or null keeps the value the warehouse has."""

    model_config = ConfigDict(extra="forbid")

    customer_id: int = Field(ge=0, le=2**62, description="Household / loyalty-card id")
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    email: Text | None = Field(default=None, max_length=254, description="An e-mail address")
    loyalty_tier: Text | None = Field(default=None, min_length=1, max_length=32)
    age: Text | None = Field(default=None, max_length=64, description="Age band, e.g. 45-54")
    income: Text | None = Field(default=None, max_length=64, description="e.g. 50-74K")
    home_ownership: Text | None = Text64
    marital_status: Text | None = Text64
    household_size: Text | None = Text64
    household_comp: Text | None = Text64
    kids_count: Text | None = Text64
    updated_at: EventTime | None = Field(
        default=None,
        description="When the CRM last changed the record (default: when received); an older "
        "record than the warehouse's is skipped as stale",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address (name@domain)")
        return value.lower() if value else value


PROFILE_FIELDS = ("name", "email", "loyalty_tier")
DEMOGRAPHIC_FIELDS = (
    "age",
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)


@dataclass
class Checked(Generic[M]):
    """The outcome of validating a batch: valid records by index, and problems."""

    valid: list[tuple[int, M]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    rejected: set[int] = field(default_factory=set)


def shown(value: Any) -> Any:
    """A rejected value as the report shows it: JSON scalars as they are, the rest as JSON text
    cut to VALUE_CHARS; NUL characters and lone surrogates (which the stored report, JSONB,
    cannot hold) replaced by U+FFFD."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    text = text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"
    return _storable(text)


def _storable(text: str) -> str:
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def problems_of(index: int, exc: ValidationError) -> list[dict[str, Any]]:
    """One report row per failed field of record `index`."""
    rows = []
    for err in exc.errors(include_url=False):
        where = _storable(".".join(str(p) for p in err["loc"]) or "(record)")
        missing = err["type"] == "missing"
        rows.append(
            {
                "index": index,
                "field": where,
                "value": None if missing else shown(err.get("input")),
                "rule": err["type"],
                "message": err["msg"],
            }
        )
    return rows


def validate(model: type[M], records: Sequence[Any]) -> Checked[M]:
    """Validate every record on its own against `model`."""
    out: Checked[M] = Checked()
    for index, raw in enumerate(records):
        try:
            out.valid.append((index, model.model_validate(raw)))
        except ValidationError as exc:
            out.problems.extend(problems_of(index, exc))
            out.rejected.add(index)
    return out


def rule_counts(problems: Sequence[dict[str, Any]], skipped: Counter[str]) -> dict[str, int]:
    """Records per rule: each failed rule of a rejected record, and why others were skipped."""
    counts = Counter(p["rule"] for p in problems)
    counts.update(skipped)
    return dict(counts.most_common())
