"""Small secrets the database keeps but must not be able to read: sealed with AES-GCM under a key
derived (HKDF) from the application's secret, one key per purpose, bound to the row they belong to.
The keys are a ring: the first seals, every one opens. Rotating the secret without locking
anyone out: add the new key to the ring everywhere, then make it the first, reseal what is kept
(`kntc accounts reseal`), then drop the old one (runbooks/accounts.md, "Rotating the secret key").
"""

from __future__ import annotations

import functools
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@functools.lru_cache(maxsize=64)
def _key(secret_key: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"kntc {purpose} v1".encode()).derive(secret_key.encode())


# One secret, or a ring of them (the first seals, each opens).
Keys = str | tuple[str, ...]


def ring(keys: Keys) -> tuple[str, ...]:
    return (keys,) if isinstance(keys, str) else keys


def seal(keys: Keys, purpose: str, plaintext: bytes, bound_to: str) -> bytes:
    """`bound_to` (an account id): a sealed value copied to another row does not open there."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_key(ring(keys)[0], purpose)).encrypt(nonce, plaintext, bound_to.encode())


def unseal(keys: Keys, purpose: str, sealed: bytes, bound_to: str) -> bytes:
    """The plaintext, opened by whichever key of the ring sealed it; InvalidTag when none did."""
    return _open(keys, purpose, sealed, bound_to)[0]


def opened(keys: Keys, purpose: str, sealed: bytes, bound_to: str) -> tuple[bytes, bool]:
    """(the plaintext, whether the ring's first key sealed it); InvalidTag when no key did."""
    plaintext, index = _open(keys, purpose, sealed, bound_to)
    return plaintext, index == 0


def current(keys: Keys, purpose: str, sealed: bytes, bound_to: str) -> bool:
    """True when the ring's first key sealed it (nothing to reseal)."""
    return _open(keys, purpose, sealed, bound_to)[1] == 0


def _open(keys: Keys, purpose: str, sealed: bytes, bound_to: str) -> tuple[bytes, int]:
    for i, key in enumerate(ring(keys)):
        try:
            return AESGCM(_key(key, purpose)).decrypt(sealed[:12], sealed[12:], bound_to.encode()), i
        except InvalidTag:
            continue
    raise InvalidTag
