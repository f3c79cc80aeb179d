"""The second factor: TOTP secrets (RFC 6238), their encryption at rest, recovery codes, the QR code.

The database keeps a secret only sealed (core_app.sealing): a stolen backup or a reader of the
table does not get codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp

from core_app import sealing

ISSUER = "KNTC"
STEP_SECONDS = 30
# One step either side: a phone's clock a little off, a code typed as it turned over.
DRIFT_STEPS = 1
RECOVERY_CODES = 10


SEALED_AS = "totp secret"


def seal(keys: sealing.Keys, totp_secret: str, account_id: int) -> bytes:
    return sealing.seal(keys, SEALED_AS, totp_secret.encode(), str(account_id))


def unseal(keys: sealing.Keys, sealed: bytes, account_id: int) -> str:
    return sealing.unseal(keys, SEALED_AS, sealed, str(account_id)).decode()


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def provisioning_uri(totp_secret: str, username: str) -> str:
    return pyotp.TOTP(totp_secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """An inline SVG (no image file, no CDN): the page embeds it as it is."""
    import segno

    return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111", light="#fff")


def matching_step(totp_secret: str, code: str, after_step: int, now: float | None = None) -> int | None:
    """The 30-second step whose code `code` is, if within the drift and later than `after_step`
    (a code is good once: RFC 6238, section 5.2); None otherwise."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(totp_secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Compare every candidate, so the time taken does not say which step matched.
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code) and step > after_step:
            found = step
    return found


@dataclass(frozen=True)
class Recovery:
    codes: list[str]  # shown once to the officer
    hashes: list[bytes]  # kept


def new_recovery_codes(n: int = RECOVERY_CODES) -> Recovery:
    """Ten codes of 80 random bits each (xxxx-xxxx-xxxx-xxxx, base32): a SHA-256 is enough to keep them."""
    codes = []
    for _ in range(n):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
        codes.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
    return Recovery(codes, [recovery_hash(c) for c in codes])


def recovery_hash(code: str) -> bytes:
    return hashlib.sha256(code.strip().lower().replace("-", "").replace(" ", "").encode()).digest()


def looks_like_recovery(code: str) -> bool:
    return len(code.strip().replace("-", "").replace(" ", "")) == 16
