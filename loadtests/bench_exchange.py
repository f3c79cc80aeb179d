"""Exchange benchmark: what the connection module holds for the other bodies' case systems.

Seed 004 names the rate: 600,000 to 1,000,000 transactions a day, 7–12 a second on average, and a
peak hour at five times that (about 60 a second). Against the real server (`kntc serve`, granian)
behind the exchange tests' nginx with mutual TLS (loadtests/gateway.py), on a local PostgreSQL
cluster, with bodies registered by the operator's command (`kntc exchange clients register`), it
measures:

1. closed loop (each of --concurrency connections sends its next submission when the last is
   answered), batches of 1 (POST /api/v1/petitions) and of 30 (POST /api/v1/batches): the most
   submissions a second, p50/p95/p99 per request and per item;
2. open loop at fixed rates (--rates, default 12 and 60 a second): p95 of a submission, and the
   delivery lag from its acknowledgement to its event at a second client of the same body's unit
   following the feed with its cursor (polling every --poll-s), and at a webhook receiver on the
   loopback through the outbox worker (`kntc exchange deliver`);
3. for every phase, CPU seconds per stored item of the cluster's postgres processes, of the app
   (granian and its workers), of nginx, of the outbox worker and of this driver (psutil).

Why not Locust: a Locust user is a closed loop (it waits for its answer before its next task), so a
fixed arrival rate would slow down when the server does and hide the stall. Here each submission of
the open loop is sent at its scheduled time whatever happened to the earlier ones, and its latency
counts from that time; httpx presents each body's certificate (an ssl context per body), which
Locust's HTTP clients take only through their own session set-up. It is a benchmark: it prints
figures and writes a report (loadtests/reports/bench-exchange-*.json and .md); it asserts nothing.

    python -m loadtests.bench_exchange                 # local cluster (.data/local), 4 bodies, 5-10 min
    python -m loadtests.bench_exchange --from-env      # the cluster of KNTC_*_DATABASE_URL (migrated)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from loadtests.gateway import TRUSTED_PROXIES, Pki, make_pki, running_gateway, self_signed
from loadtests.stack import BIN, REPORTS, ROOT, AppServer, StackError, kntc, local_env
from loadtests.tiers import tree_cpu

# Bodies of the kinds the documents name (courts, procuracies, the Front, the Party's inspection),
# in two provinces: each is one connected system in a unit of its own.
UNITS = ("T01-TAND", "T01-VKSND", "T79-TAND", "T79-VKSND")
# A body's duplicate checks have budgets (20 a second); the bench lifts them for its run, then puts
# back what they were.
BUDGETS = ("exchange_dedup_minute", "exchange_dedup_day")
PURPOSE = "dong bo ho so (benchmark)"
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ")
MIDDLE = ("Văn", "Thị", "Đức", "Minh", "Ngọc", "Thanh", "Hữu", "Quang")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hoa", "Hùng", "Lan", "Long", "Mai", "Nam", "Tâm", "Tuấn")
SUBJECTS = (
    "Khiếu nại bản án về tranh chấp đất đai",
    "Khiếu nại việc thi hành bản án dân sự",
    "Đề nghị xem xét lại quyết định đình chỉ vụ án",
    "Phản ánh việc chậm giải quyết đơn",
)


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def spread(xs: list[float], qs: tuple[str, ...] = ("p50", "p95", "p99")) -> dict[str, float | None]:
    """The percentiles named (p50, p95, p99) and max, in the unit of `xs`, to a tenth."""
    out: dict[str, float | None] = {}
    for q in qs:
        v = (max(xs) if xs else None) if q == "max" else pct(xs, int(q[1:]) / 100)
        out[q] = round(v, 1) if v is not None else None
    return out


# -- the items -------------------------------------------------------------------------------------
class Items:
    """Submissions as a body sends them: its own id, a complainant with an ID number of their own."""

    def __init__(self, communes: list[str], seed: int | None = None) -> None:
        # Complainants live all over the country, as a body's intake comes: the duplicate check
        # compares each with the people of their own commune.
        self.communes = communes
        self.rng = random.Random(seed)  # noqa: S311 - test data, not a secret
        self.run = uuid.uuid4().hex[:8]
        self.n = 0

    def make(self) -> dict[str, Any]:
        self.n += 1
        r = self.rng
        name = f"{r.choice(FAMILY)} {r.choice(MIDDLE)} {r.choice(GIVEN)}"
        return {
            "external_id": f"BX-{self.run}-{self.n}",
            "kind": "complaint",
            "subject": r.choice(SUBJECTS),
            "content": f"Đơn của công dân {name} gửi cơ quan về việc giải quyết vụ việc.",
            "respondent": "Chi cục thi hành án dân sự",
            "channel": r.choice(("letter", "online", "in_person")),
            "received_on": (date.today() - timedelta(days=r.randrange(30))).isoformat(),
            "parties": [
                {
                    "role": "complainant",
                    "full_name": name,
                    "id_number": f"0{r.randrange(10**11):011d}",
                    "address": f"Số {r.randrange(1, 200)} phố Kim Mã",
                    "address_unit": r.choice(self.communes),
                }
            ],
        }

    def batch(self, n: int) -> list[dict[str, Any]]:
        return [self.make() for _ in range(n)]


# -- one body's connection ---------------------------------------------------------------------------
class Unanswered(Exception):
    """The server gave no token (busy: a 503 after its pool's wait, a 429)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Body:
    name: str
    unit: str
    cert: Path
    key: Path


class Api:
    """One body's connection through the gateway, its token renewed a minute before it ends."""

    def __init__(self, gateway: str, body: Body, ca: Path, connections: int) -> None:
        tls = ssl.create_default_context(cafile=str(ca))
        tls.load_cert_chain(str(body.cert), str(body.key))
        self.body = body
        self.http = httpx.AsyncClient(
            base_url=gateway,
            verify=tls,
            timeout=120,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() > self._until:
                r = await self.http.post(
                    "/api/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": self.body.name}
                )
                if r.status_code != 200:
                    raise Unanswered(r.status_code)
                answer = r.json()
                self._token, self._until = answer["access_token"], time.monotonic() + answer["expires_in"] - 60
            return self._token

    async def submit(self, items: list[dict[str, Any]]) -> tuple[int, list[tuple[int, str | None]]]:
        """(status of the request, (status, case code) of each item); status 0: no answer."""
        one = len(items) == 1
        body = items[0] if one else {"items": items}
        try:
            r = await self.http.post(
                "/api/v1/petitions" if one else "/api/v1/batches",
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={
                    "Authorization": f"Bearer {await self.token()}",
                    "Idempotency-Key": str(uuid.uuid4()),
                    "Content-Type": "application/json",
                },
            )
        except (httpx.HTTPError, Unanswered):
            return 0, [(0, None)] * len(items)
        if r.status_code >= 400:
            return r.status_code, [(r.status_code, None)] * len(items)
        answer = r.json()
        if one:
            return r.status_code, [(r.status_code, answer.get("case_code"))]
        return r.status_code, [(x["status"], x.get("case_code")) for x in answer["results"]]

    async def feed(self, cursor: str | None, limit: int = 500) -> dict[str, Any] | None:
        """A page of the feed, or None when the server did not give one (the follower tries again)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        try:
            r = await self.http.get(
                "/api/v1/feed",
                params=params,
                headers={"Authorization": f"Bearer {await self.token()}", "Purpose": PURPOSE},
            )
        except (httpx.HTTPError, Unanswered):
            return None
        return r.json() if r.status_code == 200 else None


# -- CPU of the processes ------------------------------------------------------------------------------
def postmaster_pid(dsn: str) -> int:
    """The cluster's postmaster: the parent of a backend of ours."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        parent = psutil.Process(row[0]).parent()  # while the backend lives
    if parent is None:
        raise StackError("cannot find the postmaster: is the cluster on this machine?")
    return parent.pid


@dataclass
class Meters:
    """Which processes count as what."""

    database: int
    app: int | None
    gateway: int | None
    outbox: int | None = None

    def read(self) -> dict[str, float]:
        me = psutil.Process().cpu_times()
        return {
            "database": tree_cpu(self.database),
            "app": tree_cpu(self.app),
            "gateway": tree_cpu(self.gateway),
            "outbox": tree_cpu(self.outbox),
            "driver": me.user + me.system,
        }


def per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float | None]:
    return {k: (round(1000 * (after[k] - before[k]) / items, 2) if items else None) for k in before}


# -- the webhook receiver ------------------------------------------------------------------------------
class Receiver:
    """A body's webhook endpoint on the loopback: notes when each case's event arrived, answers 204."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.monotonic()
                try:
                    code = json.loads(body)["data"]["case_code"]
                    receiver.seen.setdefault(code, now)
                except (ValueError, KeyError, TypeError):
                    pass
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, unit: str) -> str:
        return f"http://127.0.0.1:{self.port}/kntc-events/{unit.lower()}"

    def close(self) -> None:
        self.server.shutdown()


# -- the phases ------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    mode: str  # closed | open
    batch: int
    offered_per_s: float | None
    concurrency: int | None
    seconds: float
    requests: int = 0
    items: int = 0
    refused: int = 0
    refused_by_status: dict[str, int] = field(default_factory=dict)  # "0": no answer
    items_per_s: float = 0.0
    request_ms: dict[str, float | None] = field(default_factory=dict)
    item_ms: dict[str, float | None] = field(default_factory=dict)
    feed_lag_ms: dict[str, float | None] | None = None
    feed_missing: int | None = None
    webhook_lag_ms: dict[str, float | None] | None = None
    webhook_missing: int | None = None
    feed_failures: int | None = None  # polls the server did not answer (busy)
    cpu_ms_per_item: dict[str, float | None] = field(default_factory=dict)

    def note(self, status: int) -> None:
        """One item's answer: stored (2xx) or refused, by status."""
        if 200 <= status < 300:
            self.items += 1
            return
        self.refused += 1
        self.refused_by_status[str(status)] = self.refused_by_status.get(str(status), 0) + 1


async def closed_loop(
    apis: list[Api], items: Items, batch: int, concurrency: int, seconds: float, warmup: float, meters: Meters
) -> Phase:
    phase = Phase(f"closed, batches of {batch}", "closed", batch, None, concurrency, seconds)
    state = {"measure": False, "stop": False}
    lat: list[float] = []

    async def worker(k: int) -> None:
        api = apis[k % len(apis)]
        while not state["stop"]:
            sent = items.batch(batch)
            t0 = time.perf_counter()
            _, results = await api.submit(sent)
            if state["measure"]:
                lat.append((time.perf_counter() - t0) * 1000)
                phase.requests += 1
                for status, _ in results:
                    phase.note(status)

    tasks = [asyncio.create_task(worker(k)) for k in range(concurrency)]
    await asyncio.sleep(warmup)
    before = meters.read()
    state["measure"] = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    state["measure"] = False
    elapsed = time.perf_counter() - t0
    after = meters.read()
    state["stop"] = True
    await asyncio.gather(*tasks)
    phase.seconds = round(elapsed, 1)
    phase.items_per_s = round(phase.items / elapsed, 1)
    phase.request_ms = spread(lat)
    phase.item_ms = spread([x / batch for x in lat])
    phase.cpu_ms_per_item = per_item(before, after, phase.items)
    return phase


class Follower:
    """A second client of a body's unit following the feed with its cursor."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.cursor: str | None = None
        self.seen: dict[str, float] = {}
        self.failed = 0

    async def drain(self) -> None:
        """To the end of the feed as it stands (what came before the phase is not its business)."""
        for _ in range(10_000):
            page = await self.api.feed(self.cursor)
            if page is None:
                self.failed += 1
                await asyncio.sleep(1)
                continue
            self.cursor = page["next_cursor"]
            if not page["has_more"]:
                return
        raise StackError(f"the feed of {self.api.body.name} did not end")

    async def follow(self, poll_s: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            page = await self.api.feed(self.cursor)
            now = time.monotonic()
            if page is None:
                self.failed += 1
                page = {"items": [], "next_cursor": self.cursor, "has_more": False}
            for item in page["items"]:
                self.seen.setdefault(item["case_code"], now)
            self.cursor = page["next_cursor"]
            if not page["has_more"]:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)


async def open_loop(
    apis: list[Api],
    followers: list[Follower],
    receiver: Receiver,
    items: Items,
    rate: float,
    seconds: float,
    poll_s: float,
    settle_s: float,
    meters: Meters,
) -> Phase:
    phase = Phase(f"open, {rate:g}/s", "open", 1, rate, None, seconds)
    acked: dict[str, float] = {}
    lat: list[float] = []
    stop = asyncio.Event()
    failed_before = sum(f.failed for f in followers)
    following = [asyncio.create_task(f.follow(poll_s, stop)) for f in followers]
    n = int(rate * seconds)
    start = time.monotonic() + 0.2

    async def one(i: int) -> None:
        when = start + i / rate
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        _, results = await apis[i % len(apis)].submit([items.make()])
        done = time.monotonic()
        # From the time it was due, not the time it went: a stall shows as the wait it caused.
        lat.append((done - when) * 1000)
        phase.requests += 1
        for status, code in results:
            phase.note(status)
            if 200 <= status < 300 and code:
                acked[code] = done

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    before = meters.read()
    await asyncio.gather(*(one(i) for i in range(n)))
    sent_s = time.monotonic() - start
    # Until every acknowledged item reached the follower and the receiver (or the wait ends).
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        feed_seen = {c for f in followers for c in f.seen}
        if all(c in feed_seen and c in receiver.seen for c in acked):
            break
        await asyncio.sleep(0.1)
    after = meters.read()
    stop.set()
    await asyncio.gather(*following)
    feed_at = {c: t for f in followers for c, t in f.seen.items()}
    feed_lag = [(feed_at[c] - t) * 1000 for c, t in acked.items() if c in feed_at]
    hook_lag = [(receiver.seen[c] - t) * 1000 for c, t in acked.items() if c in receiver.seen]
    phase.seconds = round(sent_s, 1)
    phase.items_per_s = round(phase.items / sent_s, 1) if sent_s else 0.0
    phase.request_ms = spread(lat)
    phase.item_ms = phase.request_ms
    phase.feed_lag_ms = spread(feed_lag, ("p50", "p95", "max"))
    phase.feed_missing = len(acked) - len(feed_lag)
    phase.webhook_lag_ms = spread(hook_lag, ("p50", "p95", "max"))
    phase.webhook_missing = len(acked) - len(hook_lag)
    phase.feed_failures = sum(f.failed for f in followers) - failed_before
    phase.cpu_ms_per_item = per_item(before, after, phase.items)
    return phase


# -- the stack --------------------------------------------------------------------------------------------
def budgets(env: dict[str, str]) -> dict[str, int]:
    out = kntc("throttle", "list", env=env)
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in BUDGETS and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def register(env: dict[str, str], pki: Pki, unit: str, role: str, scopes: str) -> Body:
    name = f"bx-{role}-{unit.lower()}-{uuid.uuid4().hex[:6]}"
    cert, key = self_signed(pki.folder, name)
    kntc(
        "exchange", "clients", "register", "--name", name, "--title", f"Hệ thống thử tải {unit} ({role})",
        "--unit", unit, "--cert", str(cert), "--scopes", scopes, "--rate", "100000", env=env,
    )
    return Body(name, unit, cert, key)


def communes(env: dict[str, str]) -> list[str]:
    with psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT code FROM kntc.unit WHERE level = 'commune' AND kind = 'commune' AND valid_to IS NULL"
        ).fetchall()
    if not rows:
        raise StackError("no commune in force: run kntc seed-units")
    return sorted(r[0] for r in rows)


def webhooks_from(env: dict[str, str], hooks: list[Body], cursors: list[str | None]) -> None:
    """Each body's webhook delivers from where its follower stands now, at once."""
    with psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as conn:
        for hook, cursor in zip(hooks, cursors, strict=True):
            conn.execute(
                "UPDATE kntc.exchange_webhook w SET cursor = %s, attempts = 0, next_at = now() "
                "FROM kntc.exchange_client c WHERE c.id = w.client_id AND c.name = %s",
                (cursor, hook.name),
            )


class Outbox:
    """`kntc exchange deliver`, the outbox worker, for the length of an open-loop phase."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen([str(BIN / "kntc"), "exchange", "deliver"], env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Options:
    units: list[str]
    workers: int
    concurrency: int
    seconds: float
    warmup: float
    batch_sizes: list[int]
    rates: list[float]
    open_seconds: float
    poll_s: float
    settle_s: float


async def drive(env: dict[str, str], gateway: str, pki: Pki, opts: Options, meters: Meters, log: Path,
                bodies: dict[str, list[Body]], receiver: Receiver) -> list[Phase]:
    connections = max(opts.concurrency, 64)
    submitters = [Api(gateway, b, pki.ca, connections) for b in bodies["submit"]]
    followers = [Follower(Api(gateway, b, pki.ca, 4)) for b in bodies["follow"]]
    items = Items(communes(env))
    phases: list[Phase] = []
    try:
        for size in opts.batch_sizes:
            print(f"closed loop, batches of {size}: {opts.concurrency} connections, {opts.seconds:g} s", flush=True)
            phases.append(await closed_loop(submitters, items, size, opts.concurrency, opts.seconds, opts.warmup,
                                            meters))
        for rate in opts.rates:
            print(f"open loop, {rate:g} submissions a second for {opts.open_seconds:g} s", flush=True)
            for f in followers:
                await f.drain()
            webhooks_from(env, bodies["hook"], [f.cursor for f in followers])
            outbox = Outbox(env, log)
            meters.outbox = outbox.proc.pid
            try:
                await asyncio.sleep(1.0)  # the worker's start-up is not the phase's
                phases.append(await open_loop(submitters, followers, receiver, items, rate, opts.open_seconds,
                                              opts.poll_s, opts.settle_s, meters))
            finally:
                outbox.stop()
                meters.outbox = None
    finally:
        for api in [*submitters, *(f.api for f in followers)]:
            await api.close()
    return phases


def run(env: dict[str, str], opts: Options, report_dir: Path) -> tuple[list[Phase], dict[str, Any]]:
    env = {**os.environ, **env, "KNTC_TRUSTED_PROXIES": TRUSTED_PROXIES}
    saved = budgets(env)
    for purpose in BUDGETS:
        kntc("throttle", "set", purpose, "2000000000", env=env)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-exchange-") as tmp:
            folder = Path(tmp)
            pki = make_pki(folder / "pki")
            receiver = Receiver()
            try:
                bodies: dict[str, list[Body]] = {"submit": [], "follow": [], "hook": []}
                for unit in opts.units:
                    bodies["submit"].append(register(env, pki, unit, "submit", "read,submit,feed"))
                    bodies["follow"].append(register(env, pki, unit, "follow", "read,feed"))
                    hook = register(env, pki, unit, "hook", "feed")
                    kntc("exchange", "clients", "set-webhook", hook.name, "--url", receiver.url(unit), env=env)
                    bodies["hook"].append(hook)
                log = report_dir / "bench-exchange-server.log"
                log.write_bytes(b"")
                with (
                    AppServer(env, workers=opts.workers, log=log) as app,
                    running_gateway(app.url, pki, folder / "nginx") as (gateway, nginx),
                ):
                    assert app.proc is not None
                    meters = Meters(postmaster_pid(env["KNTC_ADMIN_DATABASE_URL"]), app.proc.pid, nginx.pid)
                    phases = asyncio.run(drive(env, gateway, pki, opts, meters, log, bodies, receiver))
                    gateway_log = (folder / "nginx" / "error.log").read_text(errors="replace")
            finally:
                receiver.close()
                # A webhook left registered would be tried by any later outbox worker, at a receiver
                # that is gone; the other bodies' keys go with the temporary folder.
                for hook in bodies["hook"]:
                    kntc("exchange", "clients", "revoke", hook.name, "--reason", "benchmark ended", env=env)
    finally:
        for purpose, value in saved.items():
            kntc("throttle", "set", purpose, str(value), env=env)
    setup = {
        "units": opts.units,
        "app_workers": opts.workers,
        "concurrency": opts.concurrency,
        "poll_s": opts.poll_s,
        "host_cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        "gateway_errors": sum(1 for line in gateway_log.splitlines() if "[error]" in line or "[crit]" in line),
    }
    return phases, setup


# -- the report -----------------------------------------------------------------------------------------
def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.2f}"


HEADER = ("phase", "items/s", "req ms p50/p95/p99", "item ms p50/p95/p99", "refused", "feed lag s p50/p95/max",
          "webhook lag s p50/p95/max", "CPU ms/item: DB", "app", "nginx", "outbox", "driver")


def rows_of(phases: list[Phase]) -> list[tuple[str, ...]]:
    rows = []
    for p in phases:
        cpu = p.cpu_ms_per_item
        lag = ("/".join(_s(p.feed_lag_ms.get(k)) for k in ("p50", "p95", "max")) + f" ({p.feed_missing} late)"
               if p.feed_lag_ms is not None else "")
        hook = ("/".join(_s(p.webhook_lag_ms.get(k)) for k in ("p50", "p95", "max")) + f" ({p.webhook_missing} late)"
                if p.webhook_lag_ms is not None else "")
        rows.append((
            p.name, f"{p.items_per_s:.1f}",
            "/".join(_ms(p.request_ms.get(k)) for k in ("p50", "p95", "p99")),
            "/".join(_ms(p.item_ms.get(k)) for k in ("p50", "p95", "p99")),
            str(p.refused) + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(p.refused_by_status.items())) + ")"
                              if p.refused else ""),
            lag, hook,
            *(_ms(cpu.get(k)) for k in ("database", "app", "gateway", "outbox", "driver")),
        ))
    return rows


def table(phases: list[Phase], setup: dict[str, Any]) -> str:
    rows = [HEADER, *rows_of(phases)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [f"{len(setup['units'])} bodies ({', '.join(setup['units'])}), {setup['app_workers']} app workers, "
             f"closed loop {setup['concurrency']} connections, feed polled every {setup['poll_s']} s, "
             f"{setup['host_cpus']} CPUs shared by app, PostgreSQL, nginx and this driver"]
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def markdown(phases: list[Phase], setup: dict[str, Any], command: str, stamp: str) -> str:
    best = max((p.items_per_s for p in phases if p.mode == "closed"), default=0.0)
    out = [
        f"# Exchange benchmark, {stamp}",
        "",
        f"Command: `{command}`",
        "",
        f"{len(setup['units'])} bodies ({', '.join(setup['units'])}), {setup['app_workers']} app workers, closed "
        f"loop with {setup['concurrency']} connections, feed polled every {setup['poll_s']} s, "
        f"{setup['host_cpus']} CPUs shared by the app, PostgreSQL, nginx and the driver; load average at the end "
        f"{setup['load_average_at_end']}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(HEADER))) + "|",
        *("| " + " | ".join(r) + " |" for r in rows_of(phases)),
        "",
        f"Most submissions a second (closed loop): {best:.1f}; seed 004's peak is about 60 a second "
        f"({best / 60:.1f}× on this machine), its average 7–12.",
        "",
        "Latency of the open loop counts from the time a submission was due. Lag: from the acknowledgement "
        "to the event at the follower (its poll interval included) and at the webhook receiver (the outbox "
        "worker's pause between rounds included). CPU per stored item over the phase, everything the "
        "processes did (the open loop's polling and deliveries included).",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from-env", action="store_true",
                   help="use the cluster of KNTC_*_DATABASE_URL as it is (migrated and seeded)")
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local", help="embedded cluster folder")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--units", default=",".join(UNITS), help="one body (connected system) per unit code")
    p.add_argument("--workers", type=int, default=2, help="app worker processes (`kntc serve --workers`)")
    p.add_argument("--concurrency", type=int, default=8, help="connections of the closed loop")
    p.add_argument("--seconds", type=float, default=20, help="measured seconds of each closed-loop phase")
    p.add_argument("--warmup", type=float, default=3, help="seconds before each closed-loop phase is measured")
    p.add_argument("--batch-sizes", default="1,30", help="items per request in the closed loop")
    p.add_argument("--rates", default="12,60", help="submissions a second of the open-loop phases")
    p.add_argument("--open-seconds", type=float, default=60, help="seconds of each open-loop phase")
    p.add_argument("--poll-s", type=float, default=1.0, help="the follower's pause when the feed has nothing new")
    p.add_argument("--settle-s", type=float, default=60,
                   help="how long an open-loop phase waits for its last events to be delivered")
    p.add_argument("--report-dir", type=Path, default=REPORTS)
    args = p.parse_args(argv)
    opts = Options(
        units=[u.strip() for u in args.units.split(",") if u.strip()],
        workers=args.workers, concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup,
        batch_sizes=[int(x) for x in args.batch_sizes.split(",") if x.strip()],
        rates=[float(x) for x in args.rates.split(",") if x.strip()],
        open_seconds=args.open_seconds, poll_s=args.poll_s, settle_s=args.settle_s,
    )
    args.report_dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.from_env:
            missing = [k for k in ("KNTC_DATABASE_URL", "KNTC_ADMIN_DATABASE_URL", "KNTC_AUTH_DATABASE_URL")
                       if not os.environ.get(k)]
            if missing:
                raise StackError(f"--from-env needs {', '.join(missing)}")
            env = dict(os.environ)
        else:
            env = {**os.environ, **local_env(args.pg_root, args.pg_port)}
            kntc("migrate", env=env)
            kntc("seed-units", env=env)
        phases, setup = run(env, opts, args.report_dir)
    except StackError as exc:
        print(f"bench-exchange: {exc}", file=sys.stderr)
        return 1
    text = table(phases, setup)
    print(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    command = "python -m loadtests.bench_exchange " + " ".join(argv if argv is not None else sys.argv[1:])
    base = args.report_dir / f"bench-exchange-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(
        {"at": stamp, "command": command.strip(), "setup": setup, "phases": [asdict(x) for x in phases],
         "table": text}, indent=1, ensure_ascii=False))
    base.with_suffix(".md").write_text(markdown(phases, setup, command.strip(), stamp))
    print(f"report: {base}.json, {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
