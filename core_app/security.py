"""Passwords (argon2id), session tokens and the citizen's lookup secret."""

from __future__ import annotations

import base64
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verifying against this hash when the username is unknown keeps both answers equally slow.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(ok, new_hash): new_hash is set when the stored hash should be upgraded."""
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


def password_problem(password: str) -> str | None:
    if len(password) < 10:
        return "mật khẩu cần ít nhất 10 ký tự / the password needs at least 10 characters"
    if password.isdigit() or password.isalpha():
        return "mật khẩu cần cả chữ và số / the password needs letters and digits"
    return None


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_lookup_secret() -> str:
    """120 random bits, printed on the receipt as six groups of four base32 characters."""
    raw = base64.b32encode(secrets.token_bytes(15)).decode()
    return "-".join(raw[i:i + 4] for i in range(0, 24, 4))


def normalise_lookup_secret(s: str) -> str:
    s = re.sub(r"[\s-]", "", s).upper()
    return "-".join(s[i:i + 4] for i in range(0, len(s), 4))
