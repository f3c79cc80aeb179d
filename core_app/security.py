"""Passwords (argon2id, a strength policy), initial passwords, session tokens and the lookup secret."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# An officer's own password: OWASP's argon2id setting (19 MiB, 2 passes, 1 lane). The library's
# default (64 MiB, 3 passes, 4 lanes) costs 190 ms of a core here against 57 ms: at the busy day's
# 25 logins/s that is 4.7 cores of the application tier against 1.4, for a password that the
# strength policy below already keeps out of any guessing list. `make bench-login` measures it.
OFFICER_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# A one-time initial password is 100 random bits: no guessing succeeds whatever the work factor,
# so its hash costs about a millisecond and a province's roster is hashed in a blink. It is good
# for one login, which must replace it (kntc.account.must_change_password).
INITIAL_HASHER = PasswordHasher(time_cost=1, memory_cost=1_024, parallelism=1)
# Verifying against this hash when the username is unknown keeps both answers equally slow.
_DUMMY_HASH = OFFICER_HASHER.hash(secrets.token_hex(16))
MIN_LENGTH = 10
# zxcvbn's score 3: "safely unguessable: moderate protection from offline slow-hash scenario".
MIN_SCORE = 3
# Words an insider would try first against any officer of this system.
CONTEXT_WORDS = ("kntc", "thanhtra", "thanh tra", "tiepdan", "khieunai", "totocao", "tocao", "matkhau", "vietnam")


def hash_password(password: str) -> str:
    return OFFICER_HASHER.hash(password)


def hash_initial_password(password: str) -> str:
    return INITIAL_HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(ok, new_hash): new_hash is set when the stored hash should be upgraded to today's cost.

    An initial password's cheap hash is never "upgraded": logging in with it only opens the setup
    in which the officer replaces it."""
    try:
        OFFICER_HASHER.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    if _is_initial(stored) or not OFFICER_HASHER.check_needs_rehash(stored):
        return True, None
    return True, OFFICER_HASHER.hash(password)


def _is_initial(stored: str) -> bool:
    return f"m={INITIAL_HASHER.memory_cost},t={INITIAL_HASHER.time_cost}," in stored


def password_problem(password: str, context: Iterable[str] = ()) -> str | None:
    """Why `password` is refused (Vietnamese / English), or None.

    `context`: the officer's username, name and unit, which zxcvbn treats as the first guesses."""
    if len(password) < MIN_LENGTH:
        return f"mật khẩu cần ít nhất {MIN_LENGTH} ký tự / the password needs at least {MIN_LENGTH} characters"
    if len(password) > 256:
        return "mật khẩu dài quá 256 ký tự / the password is longer than 256 characters"
    from zxcvbn import zxcvbn

    lowered = password.lower()
    if any(len(c) >= 4 and c.lower() in lowered for c in context if c):
        return ("mật khẩu không được chứa tên đăng nhập hay họ tên / "
                "the password must not contain the username or the name")
    words = [w for c in context if c for w in re.split(r"[\s._@-]+", c.lower()) if len(w) >= 3]
    # zxcvbn's time grows with the length; past 100 characters the score is maximal anyway.
    result = zxcvbn(password[:100], user_inputs=[*CONTEXT_WORDS, *words])
    if result["score"] >= MIN_SCORE:
        return None
    warning = result["feedback"].get("warning") or "it is easy to guess"
    return ("mật khẩu dễ đoán (mật khẩu phổ biến, tên, ngày tháng, chuỗi bàn phím hoặc biến thể của chúng); "
            f"hãy dùng một cụm nhiều từ không liên quan / the password is easy to guess ({warning.rstrip('.')}): "
            "use several unrelated words")


def new_initial_password() -> str:
    """100 random bits as five groups of four base32 characters (capitals and 2-7: easy to type from paper)."""
    raw = base64.b32encode(secrets.token_bytes(15)).decode()[:20]
    return "-".join(raw[i:i + 4] for i in range(0, 20, 4))


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_lookup_secret() -> str:
    """120 random bits, printed on the receipt as six groups of four base32 characters."""
    raw = base64.b32encode(secrets.token_bytes(15)).decode()
    return "-".join(raw[i:i + 4] for i in range(0, 24, 4))


def normalise_lookup_secret(s: str) -> str:
    s = re.sub(r"[\s-]", "", s).upper()
    return "-".join(s[i:i + 4] for i in range(0, len(s), 4))
