"""Server-side keys: the JWT signing key and the key that encrypts stored MFA secrets.

Each comes from settings (`RETAILPULSE_JWT_SECRET`, `RETAILPULSE_DATA_KEY`) or, when unset, is
generated once and persisted under `RETAILPULSE_HOME/secrets/` with mode 0600, so a restart and
every Serve replica on the same node agree on it (the file is created atomically: two processes
starting together both end up reading the winner's key).

On a multi-node cluster the nodes do not share `RETAILPULSE_HOME`: set both keys explicitly
(the same value on every node, e.g. from a secret store), or tokens signed by one node are
rejected by the others and MFA secrets written by one cannot be read by another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.settings import get_settings


def persisted_secret(home: Path, name: str) -> str:
    """The secret `name` under `home/secrets/`, generated (0600, atomically) on first use."""
    folder = home / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(48).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process won the race: read theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it to generate a new key")
    return value


@lru_cache(maxsize=4)
def _jwt_secret_for(configured: str | None, home: str) -> str:
    return configured or persisted_secret(Path(home), "jwt_secret")


def jwt_secret() -> str:
    """The HS256 key of access tokens (cached per configured value and home)."""
    s = get_settings()
    configured = s.jwt_secret.get_secret_value() if s.jwt_secret else None
    return _jwt_secret_for(configured, str(s.home_dir))


@lru_cache(maxsize=4)
def _fernet_for(configured: str | None, home: str) -> Fernet:
    raw = configured or persisted_secret(Path(home), "data_key")
    key = hashlib.sha256(b"retailpulse data key\0" + raw.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _fernet() -> Fernet:
    s = get_settings()
    configured = s.data_key.get_secret_value() if s.data_key else None
    return _fernet_for(configured, str(s.home_dir))


def encrypt(text: str) -> str:
    """`text` encrypted and authenticated with the data key (for MFA secrets at rest)."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str | None:
    """The plain text of `encrypt`'s output, or None if the data key changed or it was altered."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 of `value` under the data key (recovery codes: high-entropy, one-time)."""
    s = get_settings()
    configured = s.data_key.get_secret_value() if s.data_key else None
    raw = configured or persisted_secret(s.home_dir, "data_key")
    return hmac.new(raw.encode(), value.encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """SHA-256 of an opaque random token (refresh and reset tokens are stored only hashed)."""
    return hashlib.sha256(token.encode()).hexdigest()
