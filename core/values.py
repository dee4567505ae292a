"""Value types shared by every edge (HTTP schemas, stream messages, sync records): strings and
timestamps the warehouse can store, so that a value PostgreSQL would refuse is a validation
error naming its field, not a failed write.

PostgreSQL text cannot hold NUL characters, psycopg cannot encode a lone surrogate as UTF-8,
and `timestamptz` refuses a UTC offset of 16 hours or more; the date range keeps arithmetic on
a value (periods before it, pandas' nanosecond timestamps) within bounds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

# An e-mail address as the API takes it and the CLI checks it (accounts.users.check_email).
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_OFFSET = timedelta(hours=16)


def storable_time(value: datetime) -> datetime:
    """`value` if the warehouse can store it (1900–2199, UTC offset under 16 hours; a naive
    value is taken as UTC)."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) >= MAX_OFFSET:
        raise ValueError("UTC offset must be less than 16 hours")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError("must be from 1900-01-01 to 2199-12-31")
    return value


def storable_text(value: str) -> str:
    """`value` if the warehouse can store it (valid UTF-8, no NUL characters)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate is not)") from None
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(storable_time)]
"""An aware timestamp the warehouse can store (1900–2199, UTC offset under 16 hours)."""
QueryTime = Annotated[datetime, AfterValidator(storable_time)]
"""A timestamp a query may compare with (as EventTime; without a zone it is read as UTC)."""
Text = Annotated[str, AfterValidator(storable_text)]
"""A string the warehouse can store (UTF-8, no NUL characters)."""
