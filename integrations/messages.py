"""Message schemas of the streaming topics (docs/streaming.md documents them).

`transactions.new`     one basket per message (JSON, `BasketMessage`), keyed by customer id
`inventory.updates`    one stock level per message (JSON, `InventoryMessage`), keyed by store:product
`transactions.rejected` a message that failed validation or could not be written: the original
                       bytes (as text), where it came from and the reason (`RejectedMessage`)

Values are validated with pydantic at the edge; a rejected message names the field and why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs it (not typing's) before 3.12

from core.values import EventTime, Text

TRANSACTIONS_TOPIC = "transactions.new"
INVENTORY_TOPIC = "inventory.updates"
REJECTED_TOPIC = "transactions.rejected"
TOPICS = (TRANSACTIONS_TOPIC, INVENTORY_TOPIC, REJECTED_TOPIC)

# What the warehouse's columns hold (core/schema/warehouse.py): a value past them is rejected here, with
# its field named, rather than failing the batch's write.
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
SMALLINT_MAX = 2**15 - 1
AMOUNT_LIMIT = 1e10  # numeric(12,2): a basket's totals stay below this
UNIT_PRICE_LIMIT = 1e8  # numeric(12,4): the shelf price per unit


class BasketLine(BaseModel):
    """One line item of a basket; discounts are positive amounts taken off the shelf price."""

    model_config = ConfigDict(extra="forbid")

    product_id: int = Field(
        ge=0, le=BIGINT_MAX, description="Product code (Complete Journey product_id)"
    )
    quantity: int = Field(
        ge=-1_000_000, le=1_000_000, description="Units sold; negative for a return"
    )
    sales_value: float = Field(ge=-1e9, le=1e9, description="Amount paid for the line")
    retail_disc: float = Field(default=0.0, ge=0, le=1e9, description="Loyalty-card discount")
    coupon_disc: float = Field(
        default=0.0, ge=0, le=1e9, description="Manufacturer coupon discount"
    )
    coupon_match_disc: float = Field(default=0.0, ge=0, le=1e9, description="Retailer coupon match")

    @model_validator(mode="after")
    def _unit_price_fits(self) -> BasketLine:
        if not _unit_price_fits(
            self.quantity, self.sales_value, self.retail_disc, self.coupon_match_disc
        ):
            raise ValueError("shelf price per unit must be below 100,000,000")
        return self


def _unit_price_fits(quantity: int, sales: float, retail: float, match: float) -> bool:
    return quantity <= 0 or abs((sales + retail + match) / quantity) < UNIT_PRICE_LIMIT


def _totals_fit(sales: float, disc: float) -> bool:
    return abs(sales) < AMOUNT_LIMIT and disc < AMOUNT_LIMIT


def line_totals(lines: Sequence[Any]) -> tuple[int, float, float]:
    """(item_count, total_sales, total_discount) of basket lines (`BasketLine`s or the dicts of
    `parse_baskets`), as the warehouse stores them."""
    if lines and isinstance(lines[0], dict):
        sales = round(sum(li["sales_value"] for li in lines), 2)
        disc = round(sum(li["retail_disc"] + li["coupon_disc"] + li["coupon_match_disc"]
                         for li in lines), 2)  # fmt: skip
    else:
        sales = round(sum(li.sales_value for li in lines), 2)
        disc = round(sum(li.retail_disc + li.coupon_disc + li.coupon_match_disc for li in lines), 2)
    return len(lines), sales, disc


class BasketMessage(BaseModel):
    """A basket (one POS transaction) on `transactions.new`."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    transaction_id: int = Field(ge=0, le=BIGINT_MAX, description="Basket id, unique per tenant")
    store_id: Text = Field(min_length=1, max_length=64)
    customer_id: int = Field(ge=0, le=BIGINT_MAX, description="Household / loyalty-card id")
    timestamp: EventTime = Field(description="When the basket was paid (ISO 8601, with zone)")
    week: int | None = Field(
        default=None, ge=0, le=SMALLINT_MAX, description="Retail week number, if known"
    )
    lines: list[BasketLine] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _totals_fit(self) -> BasketMessage:
        _, sales, disc = self.totals()
        if not _totals_fit(sales, disc):
            raise ValueError("basket totals must be below 10,000,000,000")
        return self

    def totals(self) -> tuple[int, float, float]:
        """(item_count, total_sales, total_discount) as the warehouse stores them."""
        return line_totals(self.lines)


class InventoryMessage(BaseModel):
    """The stock level of one product at one store on `inventory.updates`."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    store_id: Text = Field(min_length=1, max_length=64)
    product_id: int = Field(ge=0, le=BIGINT_MAX)
    on_hand: int = Field(ge=0, le=INT_MAX, description="Units on the shelf and in the back room")
    timestamp: EventTime
    reorder_point: int | None = Field(default=None, ge=0, le=INT_MAX)
    rule: Text = Field(default="stream", max_length=200, description="Where the level came from")


class RejectedMessage(BaseModel):
    """What `transactions.rejected` carries for a message the consumer could not accept."""

    model_config = ConfigDict(extra="forbid")

    topic: str
    partition: int
    offset: int
    key: str | None
    original: str = Field(description="The message value as received (UTF-8, lossy)")
    reason: str = Field(description="Field and rule that failed, readable by a person")
    rejected_at: AwareDatetime


def explain(exc: ValidationError) -> str:
    """One line per failed field: `lines.0.quantity: Input should be a valid integer`."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse(model: type[BaseModel], raw: bytes | None) -> tuple[Any | None, str | None]:
    """(message, None) when `raw` is a valid `model`, else (None, reason)."""
    if raw is None:
        return None, "(message): empty value (tombstone)"
    try:
        return model.model_validate_json(raw), None
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return None, f"(message): not valid JSON ({exc.errors()[0]['msg']})"
        return None, explain(exc)


# The fast path of the stream consumer: the same field rules as the models (built from their
# fields, so they cannot drift apart), validated into plain dicts, which pydantic-core builds
# ~4x faster than a model with its line models. The models' cross-field checks run after, in
# Python; a value that fails anything is re-parsed with the model for its canonical reason.
def _as_typed_dict(model: type[BaseModel], name: str, **override: Any) -> type:
    fields: dict[str, Any] = {}
    for fname, info in model.model_fields.items():
        kind = override.get(fname, info.annotation)
        kind = Annotated[(kind, *info.metadata)] if info.metadata else kind
        fields[fname] = kind if info.is_required() else NotRequired[kind]
    return with_config(ConfigDict(extra="forbid"))(TypedDict(name, fields))


_LINE_DICT = _as_typed_dict(BasketLine, "BasketLineDict")
_BASKET_DICT = _as_typed_dict(BasketMessage, "BasketDict", lines=list[_LINE_DICT])
_BASKET_FAST = TypeAdapter(_BASKET_DICT)
_LINE_DEFAULTS = {
    name: info.default for name, info in BasketLine.model_fields.items() if not info.is_required()
}


def _fast_basket(raw: bytes) -> dict | None:
    """The basket as a dict (defaults filled in) when `raw` is valid, else None."""
    try:
        basket = _BASKET_FAST.validate_json(raw)
    except ValidationError:
        return None
    for li in basket["lines"]:
        for name, default in _LINE_DEFAULTS.items():
            li.setdefault(name, default)
        if not _unit_price_fits(
            li["quantity"], li["sales_value"], li["retail_disc"], li["coupon_match_disc"]
        ):
            return None
    _, sales, disc = line_totals(basket["lines"])
    if not _totals_fit(sales, disc):
        return None
    basket.setdefault("week", None)
    basket.setdefault("schema_version", 1)
    return basket


def parse_baskets(raws: Sequence[bytes | None]) -> list[tuple[dict | None, str | None]]:
    """`parse(BasketMessage, raw)` of each value, giving each valid basket as the dict of
    `BasketMessage.model_dump()` (lines as dicts); a rejected one's reason is the model's."""
    out: list[tuple[dict | None, str | None]] = []
    for raw in raws:
        basket = _fast_basket(raw) if raw is not None else None
        if basket is None:
            msg, reason = parse(BasketMessage, raw)
            basket = msg.model_dump() if msg is not None else None
            out.append((basket, reason))
        else:
            out.append((basket, None))
    return out


def json_schemas() -> dict[str, dict]:
    """The JSON Schema of each topic's messages (for docs and other producers)."""
    return {
        TRANSACTIONS_TOPIC: BasketMessage.model_json_schema(),
        INVENTORY_TOPIC: InventoryMessage.model_json_schema(),
        REJECTED_TOPIC: RejectedMessage.model_json_schema(),
    }


if __name__ == "__main__":  # pragma: no cover - `python -m integrations.messages` prints them
    print(json.dumps(json_schemas(), indent=2))
