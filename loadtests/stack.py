"""A local stack for load runs: the embedded PostgreSQL and the app, driven through `kntc`.

Everything goes through the operator's commands (`kntc local env`, `kntc migrate`, `kntc
seed-units`, `kntc serve`), exactly as an operator would start them, so a load run measures the
same server an operator runs.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPORTS = Path(__file__).resolve().parent / "reports"


class StackError(RuntimeError):
    """A step of the local stack failed; the message says which and why, in one line."""


def kntc(*args: str, env: dict[str, str], timeout: float = 600, input_text: str | None = None) -> str:
    res = subprocess.run([str(BIN / "kntc"), *args], env=env, capture_output=True, text=True, timeout=timeout,
                         input=input_text)
    if res.returncode != 0:
        last = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise StackError(f"kntc {' '.join(args[:2])} failed: {last[0]}")
    return res.stdout


# A database of the embedded cluster other than the app's own: the national data set
# (`make national-data`), for the load run and the benchmarks to work on instead.
DATABASE_VAR = "KNTC_LOAD_DATABASE"
DSN_VARS = ("KNTC_DATABASE_URL", "KNTC_AUTH_DATABASE_URL", "KNTC_ADMIN_DATABASE_URL", "KNTC_READONLY_DATABASE_URL")


def with_database(env: dict[str, str], database: str) -> dict[str, str]:
    """The same DSNs, naming `database` instead."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
        raise StackError(f"{database!r} is not a database name this stack makes (lower case, digits, _)")
    return {**env, **{k: re.sub(r"/[A-Za-z0-9_]+\?", f"/{database}?", env[k], count=1) for k in DSN_VARS if k in env}}


def local_env(root: Path, port: int, database: str | None = None) -> dict[str, str]:
    """The DSNs of the embedded cluster in `root` (started if stopped), from `kntc local env`; on
    `database` (default: $KNTC_LOAD_DATABASE, else the app's own) when one is named."""
    out = kntc("local", "env", "--root", str(root.resolve()), "--port", str(port), env=dict(os.environ), timeout=180)
    env: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    if "KNTC_DATABASE_URL" not in env:
        raise StackError(f"kntc local env printed no KNTC_DATABASE_URL for {root}")
    database = database or os.environ.get(DATABASE_VAR) or None
    if database:
        env = with_database(env, database)
        import psycopg

        try:
            psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"], connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            raise StackError(f"cannot use database {database} on port {port} ({str(exc).strip().splitlines()[-1]}): "
                             "load it first (make national-data)") from None
    return env


def prepare_database(env: dict[str, str]) -> None:
    full = {**os.environ, **env}
    kntc("migrate", env=full)
    kntc("seed-units", env=full)
    if full.get("KNTC_ADMIN_DATABASE_URL"):
        # A load generator drives thousands of simulated officers through a few shared sessions, and
        # thousands of citizens (5 % of them mistyping their secret) from one address: in the load
        # database only, lift the per-session, per-officer and per-address budgets meant for people.
        import psycopg

        with psycopg.connect(full["KNTC_ADMIN_DATABASE_URL"]) as conn:
            conn.execute("UPDATE kntc.throttle_rule SET max_hits = 100000000 "
                         "WHERE purpose IN ('api_session', 'api_address', 'dedup_minute', 'dedup_day', 'lookup_fail')")
            # Nor slow every citizen's lookup down for the mistyped secrets of the others.
            conn.execute("UPDATE kntc.throttle_rule SET free_hits = NULL WHERE purpose = 'lookup_fail'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc is not None and proc.poll() is not None:
            raise StackError(f"the server exited with code {proc.returncode} before answering /healthz")
        time.sleep(0.2)
    raise StackError(f"{url}/healthz did not answer 200 within {timeout:.0f} s")


@dataclass
class AppServer:
    """`kntc serve` in a subprocess on a free loopback port."""

    env: dict[str, str]
    workers: int = 2
    port: int = 0
    log: Path = REPORTS / "server.log"
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.port = self.port or free_port()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "kntc"), "serve", "--port", str(self.port), "--workers", str(self.workers)],
                env={**os.environ, **self.env, **self.extra_env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(self.url, proc=self.proc)
        except StackError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
