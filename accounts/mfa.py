"""TOTP second factor (pyotp, RFC 6238: 30 s steps, 6 digits) and one-time recovery codes:
the codes, and enrolment (`enrol` → `enable` with a current code → recovery codes) and
`disable`."""

from __future__ import annotations

import secrets

import psycopg
import pyotp

from accounts import passwords, repo
from accounts.audit import RequestMeta, record
from accounts.principal import Principal
from accounts.secrets import decrypt, encrypt, keyed_hash
from core.errors import Conflict, Forbidden, NotFoundError, ValidationFailed

ISSUER = "RetailPulse"
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app scans (as a QR code) or takes by hand."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def totp_ok(secret: str, code: str) -> bool:
    """True if `code` is the current code (or the previous / next one: clock drift)."""
    code = code.strip().replace(" ", "")
    return code.isdigit() and len(code) == 6 and pyotp.TOTP(secret).verify(code, valid_window=1)


def new_recovery_codes(n: int = RECOVERY_CODES) -> list[str]:
    """`n` random codes like `k7pqx-3mzta` (~49 bits each), shown to the user once."""
    return [
        "".join(secrets.choice(_ALPHABET) for _ in range(5))
        + "-"
        + "".join(secrets.choice(_ALPHABET) for _ in range(5))
        for _ in range(n)
    ]


def normalize_recovery_code(code: str) -> str:
    return code.strip().lower().replace(" ", "")


def recovery_hash(code: str) -> str:
    return keyed_hash("recovery:" + normalize_recovery_code(code))


def _own_account(conn: psycopg.Connection, actor: Principal) -> repo.User:
    user = repo.get_user(conn, tenant=actor.tenant, user_id=actor.user_id)
    if user is None:
        raise NotFoundError("the account of this token is gone", details={"userId": actor.user_id})
    return user


def enrol(conn: psycopg.Connection, *, actor: Principal, meta: RequestMeta) -> dict[str, str]:
    """Start TOTP enrolment: a new secret (shown once) that `mfa_verify` switches on."""
    user = _own_account(conn, actor)
    if user.mfa_enabled:
        raise Conflict(
            "two-factor sign-in is already on: disable it first to enrol a new device",
            details={"mfaEnabled": True},
        )
    secret = new_secret()
    with conn.transaction():
        repo.update_user(
            conn, tenant=user.tenant_id, user_id=user.user_id, mfa_secret=encrypt(secret)
        )
        record(
            conn,
            tenant=user.tenant_id,
            action="mfa.enrol",
            outcome="ok",
            meta=meta,
            actor=actor,
            target=user.user_id,
        )
    return {"secret": secret, "otpauthUri": provisioning_uri(secret, user.email)}


def enable(
    conn: psycopg.Connection, *, actor: Principal, code: str, meta: RequestMeta
) -> list[str]:
    """Confirm enrolment with a current code: MFA is on, and the recovery codes (shown once)
    come back."""
    user = _own_account(conn, actor)
    secret = decrypt(user.mfa_secret) if user.mfa_secret else None
    if user.mfa_enabled or secret is None:
        raise Conflict(
            "nothing to verify: start with POST /api/v1/users/mfa/enrol",
            details={"mfaEnabled": user.mfa_enabled},
        )
    if not totp_ok(secret, code):
        record(
            conn,
            tenant=user.tenant_id,
            action="mfa.enable",
            outcome="failed",
            meta=meta,
            actor=actor,
            target=user.user_id,
        )
        raise ValidationFailed(
            "wrong code: enter the 6 digits the authenticator shows now",
            details={"field": "code"},
        )
    codes = new_recovery_codes()
    with conn.transaction():
        repo.update_user(
            conn,
            tenant=user.tenant_id,
            user_id=user.user_id,
            mfa_enabled=True,
            recovery_code_hashes=[recovery_hash(c) for c in codes],
        )
        record(
            conn,
            tenant=user.tenant_id,
            action="mfa.enable",
            outcome="ok",
            meta=meta,
            actor=actor,
            target=user.user_id,
        )
    return codes


def disable(
    conn: psycopg.Connection,
    *,
    actor: Principal,
    password: str,
    code: str,
    meta: RequestMeta,
) -> None:
    """Switch two-factor sign-in off: needs the password and a current code or a recovery
    code."""
    user = _own_account(conn, actor)
    if not user.mfa_enabled:
        raise Conflict("two-factor sign-in is not on", details={"mfaEnabled": False})
    secret = decrypt(user.mfa_secret) if user.mfa_secret else None
    ok = passwords.verify_password(user.hashed_password, password) and (
        (secret is not None and totp_ok(secret, code))
        or repo.use_recovery_code(
            conn,
            tenant=user.tenant_id,
            user_id=user.user_id,
            code_hash=recovery_hash(code),
        )
    )
    if not ok:
        record(
            conn,
            tenant=user.tenant_id,
            action="mfa.disable",
            outcome="failed",
            meta=meta,
            actor=actor,
            target=user.user_id,
        )
        raise Forbidden("wrong password or code: both are needed to switch two-factor sign-in off")
    with conn.transaction():
        repo.update_user(
            conn,
            tenant=user.tenant_id,
            user_id=user.user_id,
            mfa_enabled=False,
            mfa_secret=None,
            recovery_code_hashes=[],
        )
        record(
            conn,
            tenant=user.tenant_id,
            action="mfa.disable",
            outcome="ok",
            meta=meta,
            actor=actor,
            target=user.user_id,
        )
