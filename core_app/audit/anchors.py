"""Signed anchors of the audit chains: each chain's head (id, hash) and the time, signed with an
Ed25519 key that lives on a backup host and never in the database.

An owner who rewrites the log and recomputes every hash, or deletes the newest rows, leaves chains
that are consistent in themselves; an anchor written before that no longer matches them. Both
sites' backup hosts write one every hour, each with its own key (see runbooks/audit.md).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "kntc-anchor-"
VERSION = 1


class AnchorError(Exception):
    """A key or an anchor file that cannot be used, said in one line."""


@dataclass(frozen=True)
class Anchor:
    name: str
    at: str
    heads: list[tuple[int, int, bytes]]  # (chain, id, hash)


def keygen(private: Path, public: Path) -> None:
    if private.exists() or public.exists():
        raise AnchorError(f"{private if private.exists() else public} exists: a key is never overwritten")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise AnchorError(f"cannot read the private key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AnchorError(f"cannot read the public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorError(f"{path} is not an Ed25519 public key")
    return key


def _signed_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def write(directory: Path, key: Ed25519PrivateKey, database: str, heads: list[tuple[int, int, bytes]],
          now: datetime | None = None) -> Path:
    """Sign the heads and write them atomically (a reader never sees half a file)."""
    now = now or datetime.now(UTC)
    payload = {"version": VERSION, "database": database, "at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
               "heads": [{"chain": c, "id": i, "hash": h.hex()} for c, i, h in heads]}
    doc = {**payload, "signature": base64.b64encode(key.sign(_signed_bytes(payload))).decode()}
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, target)
    return target


def read_all(directory: Path, public: Ed25519PublicKey) -> tuple[list[Anchor], list[str]]:
    """Every anchor in the folder, oldest first, and the files that fail (bad signature, unreadable)."""
    anchors: list[Anchor] = []
    bad: list[str] = []
    for path in sorted(directory.glob(f"{PREFIX}*.json")):
        try:
            doc = json.loads(path.read_text())
            signature = base64.b64decode(doc.pop("signature"))
            public.verify(signature, _signed_bytes(doc))
            heads = [(int(h["chain"]), int(h["id"]), bytes.fromhex(h["hash"])) for h in doc["heads"]]
        except InvalidSignature:
            bad.append(f"{path.name}: signature does not match the public key / chữ ký không hợp lệ")
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            bad.append(f"{path.name}: unreadable anchor ({type(exc).__name__})")
            continue
        anchors.append(Anchor(path.name, str(doc.get("at")), heads))
    return anchors, bad


def wanted(anchors: list[Anchor]) -> tuple[dict[tuple[int, int], tuple[bytes, str]], list[str]]:
    """(chain, id) -> (hash, the first anchor that signed it); and the anchors that contradict an
    earlier one about the same row (only a holder of the private key could have signed both)."""
    out: dict[tuple[int, int], tuple[bytes, str]] = {}
    conflicts: list[str] = []
    for a in anchors:
        for c, i, h in a.heads:
            prior = out.get((c, i))
            if prior is None:
                out[(c, i)] = (h, a.name)
            elif prior[0] != h:
                conflicts.append(f"{a.name}: chain {c} id {i} signed with another hash than in {prior[1]}")
    return out, conflicts
