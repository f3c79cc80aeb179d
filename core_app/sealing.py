"""Small secrets the database keeps but must not be able to read: sealed with AES-GCM under a key
derived (HKDF) from the application's secret, one key per purpose, bound to the row they belong to.
Rotating `KNTC_SECRET_KEY` makes what was sealed unreadable (factors must then be enrolled again).
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _key(secret_key: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"kntc {purpose} v1".encode()).derive(secret_key.encode())


def seal(secret_key: str, purpose: str, plaintext: bytes, bound_to: str) -> bytes:
    """`bound_to` (an account id): a sealed value copied to another row does not open there."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_key(secret_key, purpose)).encrypt(nonce, plaintext, bound_to.encode())


def unseal(secret_key: str, purpose: str, sealed: bytes, bound_to: str) -> bytes:
    return AESGCM(_key(secret_key, purpose)).decrypt(sealed[:12], sealed[12:], bound_to.encode())
