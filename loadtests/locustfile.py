# ruff: noqa: S311  (random choices of simulated users, not secrets)
"""The KNTC load scenario: officers of every kind at each level, external readers and citizens.

User classes are made from the capacity model (loadtests/capacity.py): one per level × role, the
weight of each is its concurrent users in the chosen scenario, its think time 60 ÷ requests per
minute (divided by --kntc-pace to compress time on a small test rig). Requests are named so that
ids do not split the statistics ("/api/cases/[code]"). Endpoints the app does not have yet
(search, duplicate check, statistics) are skipped with one log line, not counted as failures.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 \
        --kntc-data loadtests/reports/testdata.json --kntc-shape busy_day --kntc-scale 0.001

Test data comes from `python -m loadtests.testdata`; the master reads it and deals its officers
out to the workers. Each user acts as an officer of its own (loadtests/seats.py), sending a fresh
TOTP code where the account has a second factor, and hands it on when its session ends; users
that share an officer share its session. The distinct officers that logged in are counted in
officers.json, and the generator's own memory and CPU in generator.json (loadtests/generator.py).

The national shape (`--kntc-shape national`) simulates every officer of the test data at once,
one user each: an officer costs little while it thinks (loadtests/CAPACITY.md §10): the users share
one connection pool per process (`--kntc-connections`), and an officer logs in, or does its first
login's setup, only when it first acts.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import gevent
import gevent.ssl
import requests
from geventhttpclient.client import HTTPClientPool
from locust import FastHttpUser, LoadTestShape, events, runners, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import capacity, generator, officers, pool, seats, shapes, testdata, thresholds
from loadtests.officers import Officer as Credentials

log = logging.getLogger("loadtests")
HERE = Path(__file__).resolve().parent
# A worker taking its share of the national population (tens of thousands of officers in one
# message, then as many users to start) on a busy machine misses Locust's heartbeats for seconds,
# and its master's answers for longer: three missed would end the run, a minute without the
# master's would end the worker, and a worker called missing has its users moved onto the others
# (two officers' worth of users on one worker). A dead worker or master is noticed minutes later.
runners.HEARTBEAT_LIVENESS = max(runners.HEARTBEAT_LIVENESS, 600)
runners.MASTER_HEARTBEAT_TIMEOUT = max(runners.MASTER_HEARTBEAT_TIMEOUT, 600)

# Filled in every process: by the file on the master (or a single process), by a message on workers.
DATA: dict[str, Any] = {}
SEATS = seats.Seats()  # this process's officers
TALLY = seats.Tally()  # distinct officers logged in, over every process (on the master)
_skipped: set[str] = set()
REFUSED = object()  # what request() answers when the app refused the generator's test data


# -- options --------------------------------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("KNTC")
    g.add_argument("--kntc-data", default=str(HERE / "reports" / "testdata.json"),
                   help="test data from `python -m loadtests.testdata` (read by the master)")
    g.add_argument("--kntc-scenario", default="busy", choices=list(capacity.SCENARIOS),
                   help="capacity-model scenario that weights the user classes")
    g.add_argument("--kntc-shape", default="busy_day", choices=list(shapes.SHAPES),
                   help="load shape; 'fixed' honours -u/-r/-t")
    g.add_argument("--kntc-scale", type=float, default=0.001,
                   help="share of the national concurrent users to simulate (1.0 = national scale)")
    g.add_argument("--kntc-pace", type=float, default=1.0,
                   help="divide think times by this (>1 compresses time on a small rig)")
    g.add_argument("--kntc-step-seconds", type=float, default=60, help="length of each step of a shape")
    g.add_argument("--kntc-session-seconds", type=float, default=0,
                   help="mean session length, after which the user's officer hands over to the next one "
                        "(0: the scenario's, divided by the pace); short sessions log many officers in")
    g.add_argument("--kntc-stop-after-officers", type=int, default=0,
                   help="end the run once this many distinct officers have logged in (0: run the shape out)")
    g.add_argument("--kntc-probe-steps", type=int, default=4,
                   help="busy_day: probes of ×1.4 above the busy day while they hold (0: none)")
    g.add_argument("--kntc-p95-limit", type=float, default=0,
                   help="p95 (ms) of all requests of a stage together (0: the thresholds file's [total])")
    g.add_argument("--kntc-soak-minutes", type=float, default=60)
    g.add_argument("--kntc-app-workers", type=int, default=2, help="app worker processes behind --host (report)")
    g.add_argument("--kntc-thresholds", default=str(HERE / "thresholds.toml"),
                   help="limits each stage is judged by (they set the exit code)")
    g.add_argument("--kntc-report-dir", default="", help="where the shape's stage results and verdicts are written")
    g.add_argument("--kntc-connections", type=int, default=0,
                   help="connections per process shared by all its users (0: a pool per user, as browsers)")
    g.add_argument("--kntc-spawn-rate", type=float, default=1000, help="national: users started per second")
    g.add_argument("--kntc-web-share", type=float, default=0.0,
                   help="share of officers who work in the pages (their work list, the case page, a head's "
                        "overview as HTML) instead of through the JSON API")


def opt(env: Environment, name: str, default: Any = None) -> Any:
    return getattr(env.parsed_options, name, default) if env.parsed_options else default


# -- data distribution -------------------------------------------------------------------------------
def _discover_routes(host: str) -> list[str]:
    """The app's API paths, so optional endpoints are used only when they exist."""
    try:
        return sorted(requests.get(host.rstrip("/") + "/openapi.json", timeout=30).json().get("paths", {}))
    except (requests.RequestException, ValueError) as exc:
        log.warning("could not read %s/openapi.json (%s): optional endpoints will be skipped", host, exc)
        return []


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        def receive(msg: Any, **_kw: Any) -> None:
            DATA.update(msg.data)
            SEATS.load(DATA.pop("accounts", {}), DATA.get("password"))  # the officers live in SEATS only
            log.info("received test data from the master: %d officers, %d case files", SEATS.pool,
                     len(DATA.get("cases", [])))
        runner.register_message("kntc_data", receive)

        @events.report_to_master.add_listener
        def _report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            data["kntc_officers"] = SEATS.report()
            generator.SELF.note_users(environment.runner.user_count)
            data["kntc_generator"] = generator.SELF.report()
        _share_connections(environment)
        generator.SELF.start()
        return
    path = Path(opt(environment, "kntc_data", ""))
    if not path.exists():
        raise SystemExit(f"locustfile: test data {path} not found: run `python -m loadtests.testdata --host ...` "
                         "first (make load does)")
    DATA.update(json.loads(path.read_text()))
    DATA["routes"] = _discover_routes(environment.host or DATA["host"])
    DATA["data_path"] = str(path)
    _weigh(environment)
    thresholds.install(environment)
    if not isinstance(runner, MasterRunner):
        SEATS.load(DATA.get("accounts", {}), DATA.get("password"))
        _share_connections(environment)
    generator.SELF.start()
    usage = generator.Usage()

    @events.quitting.add_listener
    def _count(environment: Environment, **_kw: Any) -> None:
        if isinstance(environment.runner, MasterRunner):
            usage.add("master", generator.SELF.report())
        else:
            TALLY.add("local", SEATS.report())
            usage.add("local", generator.SELF.report())
        TALLY.write(opt(environment, "kntc_report_dir", ""))
        usage.write(opt(environment, "kntc_report_dir", ""))

    if isinstance(runner, MasterRunner):
        @events.test_start.add_listener
        def _send(environment: Environment, **_kw: Any) -> None:
            workers = sorted(environment.runner.clients)
            placed = _placement(environment, workers) if national(environment) else None
            shares = (seats.deal_as_placed(DATA, placed) if placed else
                      [seats.deal(DATA, i, len(workers)) for i in range(len(workers))])
            for client_id, share in zip(workers, shares, strict=True):
                environment.runner.send_message("kntc_data", share, client_id=client_id)
            DATA.pop("accounts", None)  # the workers hold the officers now

        @events.worker_report.add_listener
        def _tally(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            if "kntc_officers" in data:
                TALLY.add(client_id, data["kntc_officers"])
            if "kntc_generator" in data:
                usage.add(client_id, data["kntc_generator"])


def _placement(environment: Environment, workers: list[str]) -> list[dict[str, int]] | None:
    """How many users of each class Locust will start on each worker, for the national shape's one
    ramp to every officer: its own dispatcher's placement, computed ahead (the same function of the
    classes and workers, without the waits). None if this Locust does not offer it."""
    try:
        from locust.dispatch import UsersDispatcher

        runner = environment.runner
        dispatcher = UsersDispatcher(list(runner.clients.values()), runner.user_classes)
        dispatcher._try_dispatch_fixed = True
        on_workers = dispatcher._distribute_users(shapes.national_users(environment))[0]
    except (ImportError, AttributeError, TypeError) as exc:
        log.warning("could not compute Locust's placement of users (%s): officers dealt evenly", exc)
        return None
    keys = {cls.__name__: getattr(cls, "key", "") for cls in runner.user_classes}
    return [{keys[name]: n for name, n in on_workers.get(w, {}).items()} for w in workers]


# Every HTTPS connection is verified (FastHttpUser's default is not to): against the CA of the
# system under test when one is named (loadtests/run.py names the lab's), else the machine's.
LOAD_CA = os.environ.get("KNTC_LOAD_CA") or None


def _verified_context(**_kw: Any) -> gevent.ssl.SSLContext:
    return gevent.ssl.create_default_context(cafile=LOAD_CA)


def _share_connections(environment: Environment) -> None:
    """One connection pool for all the users of this process (made here, in the process that uses it)."""
    n = opt(environment, "kntc_connections", 0) or 0
    if n > 0:
        # The pool's clients take its own timeouts, not the users' (geventhttpclient's default is 5 s).
        KntcUser.client_pool = HTTPClientPool(concurrency=n, network_timeout=KntcUser.network_timeout,
                                              connection_timeout=KntcUser.connection_timeout, insecure=False,
                                              ssl_context_factory=_verified_context)


def national(environment: Environment) -> bool:
    return opt(environment, "kntc_shape", "") == "national"


def _weigh(environment: Environment) -> None:
    """Class weights = concurrent users of the scenario; classes without test accounts are dropped."""
    plan = capacity.locust_plan(opt(environment, "kntc_scenario", "busy"))
    whole = national(environment)
    keep = []
    for cls in environment.user_classes:
        key = getattr(cls, "key", None)
        if key is None or key not in plan or plan[key]["weight"] < 0.5:
            continue  # the model has nobody in this role at this level (a commune has no resolution officer)
        if key != "citizen" and not DATA.get("accounts", {}).get(key):
            log.info("no test accounts for %s: that class is left out of this run", key)
            continue
        if key == "citizen" and not DATA.get("cases"):
            continue
        cls.weight = max(1, round(plan[key]["weight"]))
        if whole and key != "citizen":
            # The whole population: exactly one user per officer of the class (citizens by weight).
            cls.fixed_count = len({a["username"] for a in DATA["accounts"][key]})
        keep.append(cls)
    environment.user_classes[:] = keep


def has_route(path: str) -> bool:
    return path in DATA.get("routes", [])


def skip_once(what: str) -> None:
    if what not in _skipped:
        _skipped.add(what)
        log.info("%s is not in this app yet: those tasks are skipped", what)


# -- users --------------------------------------------------------------------------------------------
class KntcUser(FastHttpUser):
    abstract = True
    insecure = False
    ssl_context_factory = staticmethod(_verified_context)
    key: ClassVar[str] = ""
    think_s: ClassVar[float] = 15.0

    def wait_time(self) -> float:
        # Exponential think times: sessions that do not march in step (mean = the model's 60/rpm).
        pace = max(opt(self.environment, "kntc_pace", 1.0) or 1.0, 1e-6)
        return random.expovariate(pace / self.think_s)

    def on_start(self) -> None:
        for _ in range(600):  # a worker waits for the master's data message (at most 60 s)
            if DATA:
                break
            gevent.sleep(0.1)

    def request(self, method: str, path: str, name: str, ok: tuple[int, ...] = (200,),
                refused: tuple[int, ...] = (), **kw: Any) -> Any:
        """One call, validated: an unexpected status or a non-JSON answer is a failure. A status in
        `refused` is the app turning the generator's own test data down: REFUSED, not a failure."""
        with self.client.request(method, path, name=name, catch_response=True, **kw) as r:
            if r.status_code in refused:
                r.success()
                return REFUSED
            if r.status_code not in ok:
                r.failure(f"{r.status_code}: {(r.text or '')[:200] or r.error}")
                return None
            try:
                body = r.json()
            except ValueError:
                r.failure("answer is not JSON")
                return None
            r.success()
            return body if r.status_code < 400 else None


class Officer(KntcUser):
    abstract = True
    role: ClassVar[str] = ""

    def on_start(self) -> None:
        super().on_start()
        self.cases: dict[str, list[dict[str, Any]]] = {}
        self.token: str | None = None
        self.session_ends = 0.0
        self.officer: Credentials | None = None
        self.own = False
        self.take_officer()
        if self.officer is None:
            log.warning("no officer of %s in this process: the user idles", self.key)
            return
        if national(self.environment):
            # The officer's day is under way and it is thinking: its first action, and its login,
            # come after what is left of a think time (exponential: as long as a whole one). Locust's
            # own wait, which a stopping run ends at once (a sleep would hold the user to the end).
            self.wait()
            return
        self.in_session()

    def on_stop(self) -> None:
        if self.officer is not None:
            SEATS.give_back(self.officer, self.own, self.key)

    def take_officer(self) -> None:
        self.officer, self.own = SEATS.take(self.key)
        self.web: bool | None = None
        # Officers work in the pages or through a client of the API, each a whole session long.
        self.in_pages = random.random() < float(opt(self.environment, "kntc_web_share", 0.0) or 0.0)
        if self.officer is not None:
            self.account = {"username": self.officer.username, "unit": self.officer.unit}

    def session_seconds(self) -> float:
        fixed = opt(self.environment, "kntc_session_seconds", 0) or 0
        if fixed > 0:
            return fixed
        pace = max(opt(self.environment, "kntc_pace", 1.0) or 1.0, 1e-6)
        scenario = capacity.SCENARIOS[opt(self.environment, "kntc_scenario", "busy") or "busy"]
        return scenario.session_minutes * 60 / pace

    def login(self) -> None:
        """A live session of this user's officer: the one another user of the officer holds, or a
        login. Under the officer's desk lock, so a code is never sent while another is on its way."""
        officer = self.officer
        if officer is None:
            return
        desk = SEATS.desk(officer)
        with desk.lock:
            if officer.username in SEATS.unusable:
                self.token = None
            elif desk.token and desk.token != self.token:
                self.token = desk.token  # another tab logged this officer in meanwhile
            elif not self.own and desk.token:
                pass  # a tab whose session time is up goes on in the officer's live session
            else:
                self.token = desk.token = self.log_in(officer)
        if self.token:
            self.headers = {"Authorization": f"Bearer {self.token}"}
        # A session lasts W of Little's law on average (compressed by the pace like think times).
        self.session_ends = time.monotonic() + random.expovariate(1 / self.session_seconds())

    def log_in(self, officer: Credentials) -> str | None:
        """One login (with what is left of its first login's setup, where the test data says it is not done)."""
        if not officer.ready:
            return self.first_login(officer)
        # login_body waits for a TOTP step later than this officer's last one (a code is good once).
        # A 401 here is the app refusing the generator's credentials (the account was made anew, or
        # its password is not the test data's): the generator's fault, not a failed request.
        body = self.request("POST", "/api/auth/login", "/api/auth/login", refused=(401,), json=officer.login_body())
        if body is REFUSED:
            SEATS.refused(officer)
            return None
        if not body:
            return None
        SEATS.logged(officer)
        return body.get("token")

    def first_login(self, officer: Credentials) -> str | None:
        """An officer still on its initial password: its own password and, where its account needs
        one, a second factor, through the API (loadtests/officers.py), written down as it goes, then
        its first full login."""
        try:
            officers.set_up(SetupClient(self.client, self.host or ""), self.host or "", officer, journal())
        except officers.SetupFailed as exc:
            log.info("first login of %s refused: %s", officer.username, exc)
            if 400 <= exc.status < 500 and exc.status != 429:
                SEATS.refused(officer)  # the test data's password or factor; a 5xx is the app's, counted
            return None
        except (TypeError, ValueError) as exc:
            # No answer (a connection error, counted as the app's failure): tried again at its next action.
            log.info("first login of %s got no answer: %s", officer.username, exc)
            return None
        return self.log_in(officer)

    def in_session(self) -> bool:
        """True with a live session, logging in (as the next officer, when the session is over) first.

        Called before a task chooses a case from what it has seen: a case seen by the officer whose
        session just ended is another unit's business for the next one (403/404, not a race)."""
        if self.officer is None:
            return False
        if not self.token or time.monotonic() > self.session_ends:
            if self.token and self.own:
                # The session is over: the next session is another officer's (this one comes back later).
                desk = SEATS.desk(self.officer)
                if desk.token == self.token:
                    desk.token = desk.cookie = None
                SEATS.give_back(self.officer, self.own, self.key)
                self.take_officer()
                self.cases = {}
                self.token = None
                if self.officer is None:
                    return False
            self.login()
        return bool(self.token)

    def api(self, method: str, path: str, name: str, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        if not self.in_session():
            return None
        return self.request(method, path, name, ok, headers=self.headers, **kw)

    # building blocks shared by the roles
    def inbox(self, status: str, scope: str = "unit") -> list[dict[str, Any]]:
        body = self.api("GET", f"/api/cases?scope={scope}&status={status}&per_page=20",
                        f"/api/cases?scope={scope}&status={status}")
        rows = body["data"] if body else []
        self.cases[status] = rows
        return rows

    def open_case(self, code: str | None = None) -> dict[str, Any] | None:
        if not self.in_session():
            return None
        if code is None:
            pool = [c for rows in self.cases.values() for c in rows] or DATA["cases"]
            code = random.choice(pool)["code"]
        if self.in_pages:
            self.page(f"/app/cases/{code}", "/app/cases/[code]", ok=(200, 404))
            return None
        return self.api("GET", f"/api/cases/{code}", "/api/cases/[code]", ok=(200, 404))

    def work_list(self, path: str, status: str) -> None:
        """The officer's work list: the page at `path` (whose case links are what the officer opens
        next) or the API's inbox of the cases in `status`."""
        if not self.in_pages:
            self.inbox(status)
            return
        text = self.page(path, path)
        if text:
            codes = sorted(set(re.findall(r'href="/app/cases/([A-Za-z0-9-]+)"', text)))
            self.cases[status] = [{"code": c} for c in codes]

    def act(self, status: str, action: str, **extra: Any) -> None:
        """Take `action` on a case of the inbox in `status` (409: someone else got there first)."""
        if not self.in_session():
            return
        rows = [c for c in self.cases.get(status, []) if "version" in c] or self.inbox(status)
        if not rows:
            return
        case = rows.pop(random.randrange(len(rows)))
        self.api("POST", f"/api/cases/{case['code']}/transitions", "/api/cases/[code]/transitions",
                 ok=(200, 409), json={"action": action, "version": case["version"], **extra})

    def search(self) -> None:
        if not has_route("/api/search"):
            return skip_once("GET /api/search")
        q = random.choice(["bồi thường", "thu hồi đất", "tái định cư", "Công dân Kiểm Thử"])
        self.api("GET", "/api/search", "/api/search", params={"q": q})

    def dedup_check(self, petition: dict[str, Any]) -> bool:
        """The intake's duplicate check: the parties' IDs and names, the subject, the respondent. The
        petition is then recorded under it (`dedup_check_id`: a new matter). False when the check
        failed (already counted): the officer does not record the petition without it."""
        if not has_route("/api/dedup/check"):
            skip_once("POST /api/dedup/check")
            return True
        parties = [{k: p.get(k) for k in ("full_name", "id_number", "address_unit")} for p in petition["parties"]]
        got = self.api("POST", "/api/dedup/check", "/api/dedup/check", json={
            "parties": parties, "subject": petition["subject"], "respondent": petition.get("respondent")})
        if got and got.get("check_id"):
            petition["dedup_check_id"] = got["check_id"]
            return True
        return False

    def statistics(self) -> None:
        """The statistics: a JSON API if the app has one, else the officers' statistics page."""
        paths = [p for p in DATA.get("routes", []) if p.startswith(("/api/stat", "/api/reports")) and "{" not in p]
        if paths:
            path = random.choice(paths)
            self.api("GET", path, path)
            return
        if self.page("/app/stats", "/app/stats", expect="<table") is None:
            return skip_once("statistics (no /api/stat* and no /app/stats page)")

    def page(self, path: str, name: str, ok: tuple[int, ...] = (200,), expect: str = "</html>") -> str | None:
        """One of the officer's pages with the officer's page session: its text ('' when the page
        session had gone idle: the next page logs in again), None without a page session."""
        if not self.web_session():
            return None
        desk = SEATS.desk(self.officer)
        with self.client.get(path, name=name, catch_response=True, allow_redirects=False,
                             headers={"Cookie": desk.cookie or ""}) as r:
            if r.status_code in ok and expect in (r.text or ""):
                r.success()
                return r.text or ""
            if r.status_code in (302, 303):
                # The page session went idle (or a password change ended it): log in again next time.
                self.web = None
                desk.cookie = None
                r.success()
                return ""
            r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
            return ""

    def web_session(self) -> bool:
        """The officer's page session (form with CSRF, then a cookie), shared like its API session."""
        if getattr(self, "web", None) is not None:
            return bool(self.web)
        if self.officer is None:
            return False
        desk = SEATS.desk(self.officer)
        with desk.lock:
            if not desk.cookie:
                desk.cookie = self.page_login(self.officer)
        self.web = bool(desk.cookie)
        return self.web

    def page_login(self, officer: Credentials) -> str | None:
        """Log in to the pages; the session's cookies as a Cookie header (the user's jar is emptied:
        with a shared connection pool the cookies travel with the officer, not the user)."""
        self.client.cookiejar.clear()
        with self.client.get("/login", name="/login", catch_response=True) as r:
            m = re.search(r'name="csrf" value="([^"]+)"', r.text or "")
            r.success()  # an app without the pages is not a failure of the app
            if r.status_code != 200 or not m:
                return None
        form = {"username": officer.username, "password": officer.password, "csrf": m.group(1),
                "next": "/app/stats"}
        code = officer.code()  # the page's login takes the same second factor (and spends its step)
        if code:
            form["code"] = code
        with self.client.post("/login", name="/login [POST]", catch_response=True, allow_redirects=False,
                              data=form) as r:
            if r.status_code not in (302, 303):
                r.failure(f"web login answered {r.status_code}")
                return None
            r.success()
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.cookiejar)
        self.client.cookiejar.clear()
        return cookie or None

    def overdue(self) -> None:
        self.api("GET", "/api/deadlines/overdue?limit=50", "/api/deadlines/overdue")


class SetupClient:
    """What officers.set_up needs of an HTTP session, over a Locust client: the first login's calls
    are in the statistics; a 5xx is the app's failure, a 4xx the test data's (set_up decides)."""

    def __init__(self, client: Any, host: str) -> None:
        self.client, self.host = client, host.rstrip("/")

    def post(self, url: str, json: Any = None, headers: dict[str, str] | None = None, timeout: float = 60) -> Any:
        path = url.removeprefix(self.host)
        with self.client.request("POST", path, name=f"{path} [first login]", catch_response=True, json=json,
                                 headers=headers or {}) as r:
            if r.status_code >= 500 or r.status_code == 0:
                r.failure(f"{r.status_code}: {(r.text or '')[:200] or r.error}")
            else:
                r.success()
        return r


_journal: officers.Journal | None = None


def journal() -> officers.Journal:
    """This process's journal of first logins, beside the test data (the next preparation reads it)."""
    global _journal
    if _journal is None:
        _journal = pool.State(Path(DATA["data_path"])).journal(DATA.get("target") or DATA.get("host", ""))
    return _journal


def petition(_unit: str) -> dict[str, Any]:
    """A citizen who has written nothing before, in one of the run's communes, on one of the usual
    subjects (`testdata.new_person_petition`). The same complainant, subject and commune every time
    made each duplicate check score every intake of the earlier runs: its cost grew run by run."""
    return testdata.new_person_petition(_RNG.choice(DATA["units"]["commune"]), _RNG)


_RNG = random.Random()


class Reception(Officer):
    abstract = True
    role = "reception"

    @task(3)
    def check_inbox(self) -> None:
        self.work_list("/app/inbox", "received")

    @task(3)
    def read_case(self) -> None:
        self.open_case()

    @task(2)
    def receive_citizen(self) -> None:
        """Form 03, then the petition: duplicate check first, then record (the receipt's secret)."""
        rec = self.api("POST", "/api/receptions", "/api/receptions", ok=(201,), json={
            "visitor_name": "Công dân đến trình bày", "people_count": 1,
            "content": "Trình bày việc bồi thường khi thu hồi đất"})
        body = petition(self.account["unit"])
        if rec:
            body["reception_id"] = rec["id"]
        if not self.dedup_check(body):
            return
        made = self.api("POST", "/api/cases", "/api/cases", ok=(201,), json=body)
        if made:
            self.cases.setdefault("received", []).append({"code": made["code"], "version": made["version"]})

    @task(2)
    def hand_over(self) -> None:
        self.act("received", "submit")

    @task(1)
    def find(self) -> None:
        self.search()


class Handling(Officer):
    abstract = True
    role = "handling"

    @task(4)
    def check_inbox(self) -> None:
        self.work_list("/app/inbox", "in_handling")

    @task(4)
    def read_case(self) -> None:
        self.open_case()

    @task(2)
    def decide(self) -> None:
        if random.random() < 0.8:
            self.act("in_handling", "accept")
        else:
            self.act("in_handling", "guide", note="Hướng dẫn công dân gửi đơn đến cơ quan có thẩm quyền")

    @task(2)
    def find(self) -> None:
        self.search()

    @task(1)
    def duplicates(self) -> None:
        self.dedup_check(petition(self.account["unit"]))

    @task(1)
    def late(self) -> None:
        self.overdue()


class Resolution(Officer):
    abstract = True
    role = "resolution"

    @task(4)
    def check_inbox(self) -> None:
        self.work_list("/app/work", random.choice(["accepted", "verifying"]))

    @task(4)
    def read_case(self) -> None:
        self.open_case()

    @task(2)
    def verify(self) -> None:
        if random.random() < 0.5:
            self.act("accepted", "start_verification")
        else:
            self.act("verifying", "record_verification", note="Làm việc với người khiếu nại")

    @task(1)
    def resolve(self) -> None:
        self.act("verifying", "resolve", summary="Giữ nguyên quyết định thu hồi đất")

    @task(1)
    def find(self) -> None:
        self.search()


class Head(Officer):
    abstract = True
    role = "head"

    @task(3)
    def area_inbox(self) -> None:
        self.inbox(random.choice(["in_handling", "accepted", "resolved"]), scope="area")

    @task(3)
    def read_case(self) -> None:
        self.open_case()

    @task(2)
    def late(self) -> None:
        # In the pages, the head's overview: the unit's counts, its overdue list and its work.
        if self.in_pages:
            self.page("/app/overview", "/app/overview")
        else:
            self.overdue()

    @task(2)
    def reports(self) -> None:
        self.statistics()

    @task(1)
    def sign(self) -> None:
        # Heads close resolved cases and, where a unit has no resolution officer, resolve accepted ones.
        if random.random() < 0.5:
            self.inbox("resolved")
            self.act("resolved", "close")
        else:
            self.inbox("accepted")
            self.act("accepted", "resolve", summary="Công nhận một phần nội dung khiếu nại")

    @task(1)
    def find(self) -> None:
        self.search()


class ExternalReader(Officer):
    """Party, National Assembly, court, procuracy and Front readers: look, never change."""

    abstract = True
    role = "external_reader"

    @task(3)
    def read_case(self) -> None:
        self.open_case()

    @task(2)
    def area_list(self) -> None:
        self.inbox(random.choice(["accepted", "resolved"]), scope="area")

    @task(2)
    def find(self) -> None:
        self.search()

    @task(1)
    def reports(self) -> None:
        self.statistics()


class Citizen(KntcUser):
    """A citizen following a case with the code and secret on the receipt (open arrivals, no login)."""

    key = "citizen"
    think_s = capacity.Model().citizen_interval_s

    def on_start(self) -> None:
        super().on_start()
        if national(self.environment):
            self.wait()  # joins a population already under way, between two lookups

    @task
    def lookup(self) -> None:
        case = random.choice(DATA["cases"])
        if random.random() < 0.05:  # a mistyped secret: the same 404 as a wrong code, by design
            self.request("POST", "/api/lookup", "/api/lookup", ok=(404,),
                         json={"code": case["code"], "secret": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"})
        else:
            # In the body, never the URL: proxies and access logs keep URLs.
            self.request("POST", "/api/lookup", "/api/lookup", json={"code": case["code"], "secret": case["secret"]})


def _officer_classes() -> None:
    bases: dict[str, type[Officer]] = {"reception": Reception, "handling": Handling, "resolution": Resolution,
                                       "head": Head}
    model = capacity.Model()
    for level in capacity.LEVELS:
        for role, base in bases.items():
            name = f"{level.title()}{base.__name__}"
            globals()[name] = type(name, (base,), {"abstract": False, "key": f"{level}.{role}",
                                                   "think_s": 60.0 / model.rpm[role], "__module__": __name__})
    globals()["Reader"] = type("Reader", (ExternalReader,), {
        "abstract": False, "key": "external_reader", "think_s": 60.0 / model.rpm["external_reader"],
        "__module__": __name__})


_officer_classes()


class Shape(LoadTestShape):
    """Delegates to the shape chosen with --kntc-shape (loadtests/shapes.py)."""

    def tick(self) -> tuple[int, float] | None:
        if not hasattr(self, "_impl"):
            self._impl = shapes.build(self.runner.environment, self)
        target = opt(self.runner.environment, "kntc_stop_after_officers", 0) or 0
        # The master hears of its workers' logins every few seconds; a single process counts its own.
        seen = len(TALLY.usernames if isinstance(self.runner, MasterRunner) else SEATS.logged_in)
        if not isinstance(self.runner, MasterRunner):
            generator.SELF.note_users(self.runner.user_count)
        if target and seen >= target:
            self._impl.finish_now(f"{seen} distinct officers have logged in (target {target})")
        return self._impl.tick()
