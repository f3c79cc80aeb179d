"""The client certificate: from the header the TLS terminator sets, to the thumbprint we register.

nginx (`ssl_verify_client optional_no_ca`) checks that the client holds the certificate's key and
passes the certificate, URL-escaped PEM (`$ssl_client_escaped_cert`), in X-Client-Cert. The header
is believed only from the configured proxies (the same list as X-Real-IP) and nginx always
overwrites it, so a client cannot name a certificate it does not hold. What we compare is the
SHA-256 of the certificate's DER (RFC 8705 `x5t#S256`), so another body needs no certificate of ours.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import unquote

from cryptography import x509
from fastapi import Request

from core_app import throttle

HEADER = "x-client-cert"


def thumbprint(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the DER encoding."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def load_pem(pem: bytes) -> x509.Certificate:
    """One certificate from PEM; ValueError if it is not one."""
    return x509.load_pem_x509_certificate(pem)


def x5t_s256(hex_thumbprint: str) -> str:
    """The thumbprint as RFC 8705 writes it in `cnf`: base64url without padding."""
    return base64.urlsafe_b64encode(bytes.fromhex(hex_thumbprint)).decode().rstrip("=")


def presented(request: Request) -> str | None:
    """Thumbprint of the certificate the TLS terminator saw, or None (no proxy, no certificate, not one)."""
    peer = request.client.host if request.client else ""
    if not throttle.is_trusted_proxy(request, peer):
        return None
    raw = request.headers.get(HEADER, "").strip()
    if not raw:
        return None
    try:
        return thumbprint(load_pem(unquote(raw).encode()))
    except ValueError:
        return None
