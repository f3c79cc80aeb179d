"""The exchange API from the client's side: token, submissions with retries, the feed."""

from __future__ import annotations

import json
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

# Answers worth a retry with the same Idempotency-Key: in flight elsewhere, throttled, unavailable.
RETRY_STATUSES = (409, 429, 502, 503, 504)


class ExchangeError(Exception):
    """The server refused: its status and RFC 9457 problem (or RFC 6749 error) body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


class Connection:
    """One connected system: its client_id, certificate and key, and the server's CA."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        cert: str | Path,
        key: str | Path,
        ca: str | Path | bool = True,
        scopes: str = "",
        timeout: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self.client_id, self.scopes = client_id, scopes
        self.retries, self.backoff_s = retries, backoff_s
        # The certificate is presented in the TLS handshake: the server reads nothing else of it.
        tls = ssl.create_default_context(cafile=str(ca)) if isinstance(ca, str | Path) else ssl.create_default_context()
        if ca is False:
            raise ValueError("the server's certificate is always verified: give its CA bundle")
        tls.load_cert_chain(str(cert), str(key))
        self.http = httpx.Client(base_url=base_url.rstrip("/"), verify=tls, timeout=timeout)
        self._token: str | None = None
        self._token_until = 0.0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- token ------------------------------------------------------------------------------
    def token(self, *, fresh: bool = False) -> str:
        """A valid access token, renewed 30 seconds before it ends."""
        if fresh or self._token is None or time.monotonic() > self._token_until:
            form = {"grant_type": "client_credentials", "client_id": self.client_id}
            if self.scopes:
                form["scope"] = self.scopes
            r = self.http.post("/api/v1/oauth/token", data=form)
            if r.status_code != 200:
                raise ExchangeError(r.status_code, _body(r))
            answer = r.json()
            self._token = answer["access_token"]
            self._token_until = time.monotonic() + max(0, answer["expires_in"] - 30)
        assert self._token is not None
        return self._token

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One call with retries: a new token on 401 (once), the same request again on RETRY_STATUSES
        and on connection errors, with exponential back-off (honouring Retry-After)."""
        renewed = False
        for attempt in range(self.retries + 1):
            h = {"Authorization": f"Bearer {self.token()}", **(headers or {})}
            content = None
            if body is not None:
                h["Content-Type"] = "application/json"
                content = json.dumps(body, ensure_ascii=False).encode()
            try:
                r = self.http.request(method, path, headers=h, params=params, content=content)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff_s * 2**attempt)
                continue
            if r.status_code == 401 and not renewed:
                self.token(fresh=True)
                renewed = True
                continue
            if r.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = r.headers.get("Retry-After")
                time.sleep(min(60.0, float(wait)) if wait and wait.isdigit() else self.backoff_s * 2**attempt)
                continue
            return r
        return r

    # -- writes -----------------------------------------------------------------------------
    def submit(self, item: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """One petition or case; the same key is kept across retries, so it is stored once."""
        return self._write("/api/v1/petitions", item, key)

    def submit_batch(self, items: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
        """Up to 100; the answer has a result per item (refused ones carry a problem)."""
        return self._write("/api/v1/batches", {"items": items}, key)

    def _write(self, path: str, body: Any, key: str | None) -> dict[str, Any]:
        r = self.request("POST", path, headers={"Idempotency-Key": key or str(uuid.uuid4())}, body=body)
        if r.status_code >= 400:
            raise ExchangeError(r.status_code, _body(r))
        return r.json()

    # -- reads ------------------------------------------------------------------------------
    def get_case(self, code: str, purpose: str) -> dict[str, Any]:
        r = self.request("GET", f"/api/v1/cases/{code}", headers=_purpose(purpose))
        if r.status_code != 200:
            raise ExchangeError(r.status_code, _body(r))
        return r.json()

    def search(self, purpose: str, **filters: Any) -> dict[str, Any]:
        r = self.request("GET", "/api/v1/cases", headers=_purpose(purpose), params=filters)
        if r.status_code != 200:
            raise ExchangeError(r.status_code, _body(r))
        return r.json()

    # -- the feed ---------------------------------------------------------------------------
    def feed_page(self, purpose: str, cursor: str | None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = self.request("GET", "/api/v1/feed", headers=_purpose(purpose), params=params)
        if r.status_code != 200:
            raise ExchangeError(r.status_code, _body(r))
        return r.json()

    def follow(
        self,
        purpose: str,
        cursor_file: str | Path,
        handle: Callable[[dict[str, Any]], None],
        *,
        limit: int = 100,
        once: bool = False,
        poll_s: float = 5.0,
    ) -> Iterator[int]:
        """Hand every event to `handle`, saving its cursor right after: a restart resumes after the
        last event handled (so each is handled once, unless `handle` dies half-way). Yields how
        many events each page held; with `once`, stops when the feed has nothing more."""
        path = Path(cursor_file)
        cursor = path.read_text().strip() if path.exists() else None
        while True:
            page = self.feed_page(purpose, cursor, limit)
            for item in page["items"]:
                handle(item)
                cursor = item["cursor"]
                save_cursor(path, cursor)
            yield len(page["items"])
            if not page["has_more"]:
                if once:
                    return
                time.sleep(poll_s)


def save_cursor(path: Path, cursor: str) -> None:
    """Atomically: a crash leaves the old cursor or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(cursor)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _purpose(purpose: str) -> dict[str, str]:
    """HTTP headers are ASCII: Vietnamese text travels percent-encoded (the server decodes UTF-8)."""
    return {"Purpose": quote(purpose, safe=" /:;,.()-_")}


def _body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text
