"""The load suite's officers: who they are, their first login, and the codes of their second factor.

An account made by an import or an administrator starts on a one-time initial password: its first
login opens a *setup* session in which the officer sets a password of their own and, if the
account must hold a second factor (clearance ≥ 1, unit_admin, sysadmin), enrols a TOTP app.
`first_login` does both through the API, as an officer would; later logins send a code.

A code is good once: the server keeps the last 30-second step it accepted per account and
refuses a code of the same step (a replay) as a failed login, and failed logins from one
address are budgeted. So every login of an officer waits for a step later than that officer's
last one (`Officer.last_step`), and each simulated user has an officer of its own.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import pyotp
import requests

STEP_SECONDS = 30
BUDGET_RETRIES = 30


class SetupFailed(RuntimeError):
    """An officer's login or setup was refused; the message says which step and the answer, `status`
    the answer's HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)  # the national run holds 162,318 of them: no per-object dict
class Officer:
    username: str
    unit: str
    password: str  # the current one: the initial password until the setup has replaced it
    key: str = ""  # the Locust class: "commune.reception", …, "external_reader"
    initial: str = ""  # the initial password it was made with: a new one means the account was made anew
    totp: str | None = None  # base32 secret, once enrolled
    last_step: int = 0  # the last step whose code the server accepted
    ready: bool = False  # the setup is done: a login gives a full session

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", 0, False) or k == "ready"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Officer:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def code(self, sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.time) -> str | None:
        """A code of a step later than the last one accepted, waiting for that step if it has not
        begun (at most 30 s); None when the account has no second factor. Marks the step used."""
        if not self.totp:
            return None
        step = int(now() // STEP_SECONDS)
        if step <= self.last_step:
            sleep((self.last_step + 1) * STEP_SECONDS - now() + 0.05)
            step = max(self.last_step + 1, int(now() // STEP_SECONDS))
        self.last_step = step
        return pyotp.TOTP(self.totp).at(step * STEP_SECONDS)

    def login_body(self, sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
        body = {"username": self.username, "password": self.password}
        code = self.code(sleep)
        if code:
            body["code"] = code
        return body


def new_password() -> str:
    """A password the strength policy accepts (zxcvbn score ≥ 3): 96 random bits."""
    return "Lt-" + secrets.token_urlsafe(12) + "9"


class Journal:
    """Every new password and secret is written down before the server is told it, so an
    interrupted preparation resumes with the officers it had already set up."""

    def __init__(self, write: Callable[[dict[str, Any]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()

    def note(self, officer: Officer, **change: Any) -> None:
        with self._lock:
            self._write({"username": officer.username, **change})


def _post(http: requests.Session, host: str, path: str, body: dict[str, Any] | Callable[[], dict[str, Any]],
          token: str | None = None) -> requests.Response:
    """POST, waiting out the per-address budget of calls without a session (kntc.throttle_rule
    'api_address', 300 a minute): a login is such a call, and one machine sets up thousands.
    `body` may be made anew for each try (a login's code must be of the step it is sent in)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(BUDGET_RETRIES):
        r = http.post(host + path, json=body() if callable(body) else body, headers=headers, timeout=60)
        if r.status_code != 429 or _code(r) != "too_many_requests":
            return r
        time.sleep(float(r.headers.get("Retry-After") or 5) + secrets.randbelow(1000) / 1000)
    return r


def _code(r: requests.Response) -> str:
    """The answer's error code (the API's `error` field)."""
    try:
        body = r.json()
    except ValueError:
        return ""
    return str(body.get("error") or body.get("code") or "") if isinstance(body, dict) else ""


def _error(r: requests.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} {r.text[:200]}"
    if not isinstance(body, dict):
        return f"{r.status_code} {r.text[:200]}"
    return f"{r.status_code} {_code(r)}: {body.get('message_en') or body.get('detail') or ''}".strip()


def login(http: requests.Session, host: str, officer: Officer) -> dict[str, Any]:
    """Log in (with a fresh code where the account has a factor); the answer's body, or SetupFailed."""
    r = _post(http, host, "/api/auth/login", officer.login_body)
    if r.status_code != 200:
        raise SetupFailed(f"login as {officer.username}: {_error(r)}", r.status_code)
    return r.json()


def set_up(http: requests.Session, host: str, officer: Officer, journal: Journal,
           candidates: list[str] | None = None) -> Officer:
    """Bring the officer to a full session: log in with the first of `candidates` (default: the
    officer's password) that works, then do what the setup asks: replace an initial password,
    enrol a second factor. An officer set up before just logs in."""
    body: dict[str, Any] | None = None
    candidates = list(dict.fromkeys(candidates or [officer.password]))
    for password in candidates:
        officer.password = password
        r = _post(http, host, "/api/auth/login", officer.login_body)
        if r.status_code == 200:
            body = r.json()
            break
        if r.status_code != 401 or len(candidates) == 1:
            raise SetupFailed(f"login as {officer.username}: {_error(r)}", r.status_code)
    if body is None:
        raise SetupFailed(f"login as {officer.username}: none of {len(candidates)} known passwords works", 401)
    token, setup = body["token"], body.get("setup") or {}
    if setup.get("password_change"):
        fresh = new_password()
        journal.note(officer, password=fresh)
        r = _post(http, host, "/api/auth/password", {"current_password": officer.password, "new_password": fresh},
                  token)
        if r.status_code != 200:
            raise SetupFailed(f"password change of {officer.username}: {_error(r)}", r.status_code)
        officer.password = fresh
        setup = r.json().get("setup") or {}
    if setup.get("factor_enrolment"):
        r = _post(http, host, "/api/auth/factor/begin", {"password": officer.password}, token)
        if r.status_code != 200:
            raise SetupFailed(f"factor enrolment of {officer.username}: {_error(r)}", r.status_code)
        secret = r.json()["secret"]
        journal.note(officer, totp=secret, last_step=0)
        officer.totp, officer.last_step = secret, 0
        r = _post(http, host, "/api/auth/factor/confirm", {"code": officer.code()}, token)
        if r.status_code != 200:
            raise SetupFailed(f"factor confirmation of {officer.username}: {_error(r)}", r.status_code)
        setup = r.json().get("setup") or {}
    if setup.get("password_change") or setup.get("factor_enrolment"):
        raise SetupFailed(f"{officer.username}: the setup still asks for {setup}")
    officer.ready = True
    journal.note(officer, ready=True, last_step=officer.last_step)
    return officer
