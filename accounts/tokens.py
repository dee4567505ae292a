"""Access tokens (PyJWT, HS256) and opaque refresh / reset tokens.

An access token lives `access_token_minutes` (15) and carries `sub` (user id), `tenant`,
`role`, `stores` (null: every store), `sid` (the session, whose Redis key must still exist),
`iat`, `exp` and a unique `jti`. Only HS256 is accepted when decoding (no `alg: none`, no
algorithm confusion), and `iss` / `typ` must be ours.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

from accounts.permissions import ROLES, permissions_of
from accounts.principal import Principal
from core.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "retailpulse"
TOKEN_TYPE = "access"
LEEWAY_S = 5  # clock skew between replicas
_REQUIRED = ["sub", "tenant", "role", "sid", "exp", "iat", "jti", "iss"]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int  # unix seconds
    jti: str


def issue_access_token(
    *,
    secret: str,
    user_id: str,
    tenant: str,
    role: str,
    stores: list[str] | None,
    session_id: str,
    minutes: int,
    email: str | None = None,
    now: float | None = None,
) -> IssuedToken:
    """A signed access token for the user (`now`: unix seconds, for tests of expiry)."""
    issued = int(now if now is not None else time.time())
    expires = issued + minutes * 60
    jti = uuid.uuid4().hex
    claims = {
        "iss": ISSUER,
        "typ": TOKEN_TYPE,
        "sub": user_id,
        "tenant": tenant,
        "role": role,
        "stores": sorted(stores) if stores is not None else None,
        "sid": session_id,
        "email": email,
        "iat": issued,
        "exp": expires,
        "jti": jti,
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm=ALGORITHM), expires, jti)


def decode_access_token(token: str, *, secret: str) -> Principal:
    """The principal of a valid token; Unauthorized (401) naming why for any other."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "the access token has expired: refresh it at /api/v1/users/token/refresh",
            code="TOKEN_EXPIRED",
            invalid_token=True,
        ) from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(
            f"invalid access token ({type(exc).__name__})",
            code="INVALID_TOKEN",
            invalid_token=True,
        ) from None
    role, stores = claims.get("role"), claims.get("stores")
    fields_ok = (
        claims.get("typ") == TOKEN_TYPE
        and role in ROLES
        and all(isinstance(claims[k], str) for k in ("sub", "tenant", "sid"))
        and (
            stores is None or (isinstance(stores, list) and all(isinstance(s, str) for s in stores))
        )
    )
    if not fields_ok:
        raise Unauthorized(
            "invalid access token (claims)", code="INVALID_TOKEN", invalid_token=True
        )
    return Principal(
        user_id=claims["sub"],
        tenant=claims["tenant"],
        role=role,
        permissions=permissions_of(role),
        stores=frozenset(stores) if stores is not None else None,
        session_id=claims["sid"],
        email=claims.get("email"),
        expires_at=float(claims["exp"]),
    )


def new_opaque_token() -> str:
    """A random token for refresh and password reset (stored only as its SHA-256)."""
    return secrets.token_urlsafe(32)
