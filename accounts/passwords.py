"""Password hashing (argon2id, argon2-cffi) and the password rule."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import ValidationFailed
from core.settings import get_settings

MAX_PASSWORD_LENGTH = 256  # hashing cost is per byte of input too: bound it


@lru_cache(maxsize=4)
def _hasher_for(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher() -> PasswordHasher:
    """The argon2id hasher with the settings' cost (defaults: OWASP's 19 MiB, 2 passes, 1 lane)."""
    s = get_settings()
    return _hasher_for(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    """True if `password` matches `hashed`. With no hash (unknown user) a dummy hash is still
    verified, so a login for an unknown address costs as much as a wrong password."""
    try:
        return hasher().verify(hashed or _dummy_hash(), password) and hashed is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    """True when `hashed` was made with other cost parameters than today's settings."""
    try:
        return hasher().check_needs_rehash(hashed)
    except InvalidHashError:
        return True


def _dummy_hash() -> str:
    s = get_settings()
    return _dummy_for(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


@lru_cache(maxsize=4)
def _dummy_for(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher_for(time_cost, memory_kib, parallelism).hash("not a password of anyone")


def check_password_rule(password: str, *, email: str | None = None) -> None:
    """Raise ValidationFailed naming the rule a new password breaks."""
    shortest = get_settings().password_min_length
    problem = None
    if len(password) < shortest:
        problem = f"at least {shortest} characters"
    elif len(password) > MAX_PASSWORD_LENGTH:
        problem = f"at most {MAX_PASSWORD_LENGTH} characters"
    elif len(set(password)) < 4:
        problem = "at least 4 different characters"
    elif email and password.strip().lower() == email.strip().lower():
        problem = "not the e-mail address"
    if problem:
        raise ValidationFailed(
            f"the password must have {problem}", details={"field": "password", "rule": problem}
        )
