"""Requests the exchange API refused at its gate, before it admitted a client: counted and logged,
within bounds.

A refusal before authentication (no certificate, a certificate no client registered, an unknown,
expired or stolen token, a token for another certificate, a path that does not exist) has no
client whose exchange log could keep it, and neither has a client's token refused at the gate for
its scope or its rate (the log keeps what was admitted). Refused requests are what probing looks
like, so an operator sees them here:

- `kntc_exchange_refused_total{reason, via}` (Prometheus, every worker summed): every refusal,
  exactly; `via` is `gateway` (through the TLS terminator) or `direct` (someone reached the app's
  port without it). Addresses are not labels: a flood from many addresses would make a series each.
- the log (`kntc.exchange.refused`): one line the first time a reason and source are seen in a
  window (a minute), at most `LINES` such lines per window and worker; what repeats is counted and
  told in one line at the first refusal after the window ends ("N more from M sources; most:
  ..."). A flood of any size writes at most LINES + 1 lines a minute per worker.

Nothing the caller sent as a credential is written: no token, no header, no query string. The
certificate appears as the start of its SHA-256 (public: what is registered), a client_id only if
it has the shape of one, the path cut short and stripped of anything but printable ASCII.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core_app import throttle
from core_app.exchange import certs

log = logging.getLogger("kntc.exchange.refused")

PREFIX = "/api/v1/"
# Set by the gate and the token endpoint: why they refused (request.state), and the client asked for.
REASON = "exchange_refusal"
ASKED = "exchange_client_asked"
KNOWN = "exchange_client"

REFUSED = Counter(
    "kntc_exchange_refused_total",
    "Exchange API requests refused at the gate (before a client was admitted), by reason and way in.",
    ["reason", "via"],
)

WINDOW_S = 60.0
LINES = 20  # first sightings written per window and worker
KEYS = 4096  # (reason, source) pairs counted per window and worker; more are summed as "other"
TOP = 5

_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,40}$")
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


def client_shape(asked: str | None) -> str:
    """A client_id as it may be logged: itself if it has the shape of one, else a mark."""
    if not asked:
        return "-"
    return asked if _CLIENT_ID.match(asked) else "(not a client id)"


def path_of(scope: Scope) -> str:
    path = _UNPRINTABLE.sub("?", str(scope.get("path", "")))
    return path[:100] + ("…" if len(path) > 100 else "")


@dataclass
class Window:
    """What one worker saw of refusals in the current window."""

    started: float
    seen: Tally[tuple[str, str]] = field(default_factory=Tally)
    written: int = 0
    other: int = 0


class Book:
    """The bounded log of refusals (one per worker process)."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        lines: int = LINES,
        keys: int = KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s, self.lines, self.keys, self.clock = window_s, lines, keys, clock
        self._lock = threading.Lock()
        self._w = Window(clock())

    def note(self, reason: str, source: str, describe: Any) -> None:
        """Count a refusal; `describe()` gives the rest of its line, made only when one is written."""
        now = self.clock()
        with self._lock:
            if now - self._w.started >= self.window_s:
                self._close(self._w, now)
                self._w = Window(now)
            w = self._w
            key = (reason, source)
            if key not in w.seen and len(w.seen) >= self.keys:
                w.other += 1
                return
            first = key not in w.seen
            w.seen[key] += 1
            if not first or w.written >= self.lines:
                return
            w.written += 1
        log.warning(
            "exchange: từ chối tại cổng / refused at the gate: reason=%s source=%s %s",
            reason, source, describe(),
        )

    def _close(self, w: Window, now: float) -> None:
        # The first sighting of each written pair was told already: the rest is what repeated.
        unwritten = sum(w.seen.values()) - w.written + w.other
        if unwritten <= 0:
            return
        most = ", ".join(f"{r} from {s} ({n})" for (r, s), n in w.seen.most_common(TOP))
        log.warning(
            "exchange: %d more refusals at the gate / lần từ chối nữa in the last %.0f s "
            "from %d sources (+%d beyond the count); most: %s",
            unwritten, now - w.started, len(w.seen), w.other, most,
        )


BOOK = Book()


def record(request: Request, reason: str) -> None:
    """Count and (within bounds) log one refusal of `request`."""
    peer = request.client.host if request.client else "unknown"
    via = "gateway" if throttle.is_trusted_proxy(request, peer) else "direct"
    source = throttle.client_address(request)
    REFUSED.labels(reason, via).inc()

    def describe() -> str:
        cert = certs.presented(request)
        asked = client_shape(getattr(request.state, ASKED, None))
        return (
            f"via={via} route=\"{request.method} {path_of(request.scope)}\" "
            f"cert={cert[:16] if cert else '-'} client_id={asked}"
        )

    BOOK.note(reason, source, describe)


class Watch:
    """Around the exchange API: an answer 4xx to a request that no client was admitted for is a
    refusal at the gate (the gate and the token endpoint say why in request.state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        if 400 <= status < 500 and KNOWN not in state:
            record(Request(scope), state.get(REASON) or f"http_{status}")
