"""CLI options shared by several sub-apps."""

from __future__ import annotations

from typing import Annotated

import typer

from core.errors import ValidationFailed
from core.tenants import validate_tenant


def _check_tenant(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_tenant(value)
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.message) from exc


TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Tenant id (default: RETAILPULSE_TENANT or 'default').",
        callback=_check_tenant,
    ),
]
