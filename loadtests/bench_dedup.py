"""Benchmark: nationwide duplicate check and officers' search on N synthetic case files.

`make bench-dedup` (N=1,000,000) or `make bench-dedup N=5000000`. It runs in its own database
(`kntc_bench_<N>`) on the checkout's embedded cluster, never the test one:

1. `kntc local env` (cluster up), CREATE DATABASE as the cluster superuser (local socket);
2. `kntc migrate`, `kntc seed-units`, `kntc generate --cases N` (skipped when already loaded);
3. the working set read into the OS cache (pg_prewarm), officers at a commune, a province and the
   centre (`kntc create-account`), `kntc serve`;
4. timed HTTP calls, one at a time: POST /api/dedup/check (known duplicates retyped and
   reworded, and new people) and GET /api/search (ID number, name, text with and without
   diacritics, code prefix, unit + kind + status + dates), by officers of each level.

Prints p50/p95/p99 per kind of call, the share of planted duplicates found, and the generation
and load time. Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import socket
import statistics
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("KNTC_PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORD = "Bench-password-2026"  # noqa: S105 - accounts of a throwaway benchmark database


def kntc(*args: str, env: dict[str, str], timeout: float = 36_000, stream: bool = False) -> str:
    cmd = [str(BIN / "kntc"), *args]
    if stream:  # long steps show their own progress bar
        res = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(res.stdout)
    else:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"bench: kntc {' '.join(args[:2])} failed: {(res.stderr or res.stdout or '').strip()[-300:]}")
    return res.stdout


def superuser_sql(root: Path, port: int, sql: str, database: str = "postgres") -> str:
    cmd = [str(PG_BIN / "psql"), "-X", "-At", "-h", str(root / "socket"), "-p", str(port), "-d", database, "-c", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"bench: psql failed: {res.stderr.strip()}")
    return res.stdout.strip()


def bench_env(root: Path, port: int, database: str) -> dict[str, str]:
    out = kntc("local", "env", "--root", str(root), "--port", str(port), env=dict(os.environ), timeout=300)
    env: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    if not superuser_sql(root, port, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
        superuser_sql(root, port, f'CREATE DATABASE "{database}" OWNER kntc_owner')
        superuser_sql(root, port, f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
    # Every role the server and the commands use may connect (the login role too: logins go through it).
    superuser_sql(root, port, f'GRANT CONNECT ON DATABASE "{database}" TO kntc_app, kntc_auth, kntc_readonly')
    for k in ("KNTC_DATABASE_URL", "KNTC_AUTH_DATABASE_URL", "KNTC_ADMIN_DATABASE_URL", "KNTC_READONLY_DATABASE_URL"):
        env[k] = re.sub(r"/[A-Za-z0-9_]+\?", f"/{database}?", env[k], count=1)
    return {**os.environ, **env}


def case_count(env: dict[str, str]) -> int:
    import psycopg

    with psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT count(*) FROM kntc.case_file").fetchone()
        return int(row[0]) if row else 0


def raise_check_budget(env: dict[str, str]) -> None:
    """The bench runs thousands of checks as one officer: in its own database, lift the per-officer
    budget on duplicate checks (kntc.throttle_rule) that would otherwise answer 429 after 20 a minute."""
    import psycopg

    with psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"]) as conn:
        conn.execute("UPDATE kntc.throttle_rule SET max_hits = 100000000 WHERE purpose LIKE 'dedup\\_%' "
                     "OR purpose LIKE 'api\\_%'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

@contextmanager
def serving(env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """The real server (`kntc serve`) on a free loopback port with `env`, once it answers /healthz."""
    port = free_port()
    server = subprocess.Popen([str(BIN / "kntc"), "serve", "--port", str(port), "--workers", str(workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("bench: the server did not answer /healthz within 60 s")
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(15)



def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49]:7.1f} ms   p95 {q[94]:7.1f} ms   p99 {q[98]:7.1f} ms   (n={len(samples)})"


def strip(text: str) -> str:
    t = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", t) if not unicodedata.combining(c))


class Officer:
    def __init__(self, base: str, username: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=60)
        r = self.client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        self.token = r.json()["token"]
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    def timed(self, method: str, url: str, **kw: Any) -> tuple[float, httpx.Response]:
        t0 = time.perf_counter()
        try:
            r = self.client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise SystemExit(f"bench: {method} {url} {kw.get('params') or ''} failed: {exc!r}") from None
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code >= 400:
            raise SystemExit(f"bench: {method} {url} -> {r.status_code}: {r.text[:300]}")
        return ms, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=400, help="timed calls of each family")
    ap.add_argument("--root", type=Path, default=ROOT / ".data" / "local")
    ap.add_argument("--port", type=int, default=55432)
    ap.add_argument("--seed", type=int, default=20180315)
    args = ap.parse_args()
    database = f"kntc_bench_{args.cases}"
    probes_file = args.root / f"{database}-probes.json"
    times_file = args.root / f"{database}-load.txt"

    env = bench_env(args.root.resolve(), args.port, database)
    print(f"database {database} on 127.0.0.1:{args.port}")
    kntc("migrate", env=env)
    kntc("seed-units", env=env)
    raise_check_budget(env)
    have = case_count(env)
    if have < args.cases or not probes_file.exists():
        if have:
            raise SystemExit(f"bench: {database} holds {have} case files, fewer than {args.cases}: drop it first "
                             f"(DROP DATABASE {database})")
        t0 = time.monotonic()
        out = kntc("generate", "--cases", str(args.cases), "--seed", str(args.seed), "--probes", str(probes_file),
                   env=env, stream=True)
        wall = time.monotonic() - t0
        m = re.search(r"generate_load_seconds=([0-9.]+) vacuum_analyze_seconds=([0-9.]+)", out)
        times_file.write_text(f"{m.group(1) if m else '?'} {m.group(2) if m else '?'} {wall:.1f}\n")
    gen_s, vac_s, wall_s = [*times_file.read_text().split(), "?", "?", "?"][:3] if times_file.exists() else "???"
    probes: list[dict[str, Any]] = json.loads(probes_file.read_text())
    rng = random.Random(args.seed)  # noqa: S311 - choice of probes, not secrets

    prewarm(args.root.resolve(), args.port, database)
    p0 = probes[0]
    accounts = {"commune": (p0["commune"], "reception"), "province": (p0["province"], "head"), "centre": ("VN", "head")}
    for level, (unit, role) in accounts.items():
        kntc("create-account", "--username", f"bench.{level}", "--full-name", f"Cán bộ đo tải {level}",
             "--unit", unit, "--role", role, "--clearance", "2", env={**env, "KNTC_NEW_PASSWORD": PASSWORD})
    with serving(env) as base:
        officers = {level: Officer(base, f"bench.{level}") for level in accounts}
        run(officers, probes, rng, args.requests, env["KNTC_ADMIN_DATABASE_URL"])
        in_database(env, officers["commune"].token, probes, rng, args.requests)
    print(f"\ngeneration + COPY load of {args.cases} case files: {gen_s} s; VACUUM ANALYZE: {vac_s} s; "
          f"whole `kntc generate`: {wall_s} s")


# What the check and the search read: cases, parties and their indexes, the duplicate keys'
# index (read index-only). Not the audit log or the petitions' text.
WORKING_SET = """
SELECT c.oid FROM pg_class c
 WHERE c.relnamespace = 'kntc'::regnamespace AND c.relkind IN ('r', 'i')
   AND c.relname !~ '^(audit|petition)' AND c.relname <> 'dedup_key'
"""


def prewarm(root: Path, port: int, database: str) -> None:
    """Read the working set into the OS cache first (pg_prewarm 'read'), as a database server with
    memory for it holds it: at 5 M case files it is about 12 GB, more than this machine keeps
    cached beside the 1 M database and other jobs, and a cold run times the disk instead."""
    superuser_sql(root, port, "CREATE EXTENSION IF NOT EXISTS pg_prewarm", database)
    t0 = time.monotonic()
    blocks = superuser_sql(root, port, f"SELECT sum(pg_prewarm(oid, 'read')) FROM ({WORKING_SET}) s", database)
    print(f"prewarmed {int(blocks or 0) * 8192 / 2**30:.1f} GiB (cases, parties, duplicate keys and their indexes) "
          f"in {time.monotonic() - t0:.0f} s")


def planted_found(owner: psycopg.Connection[Any], answer: dict[str, Any], code: str) -> bool:
    """Whether the planted case is among the check's candidates: by its code where the officer may
    open it; held in another unit, the officer is told only that some case is held elsewhere, and
    the check's lead (kntc.dedup_lead, which only the database's owner reads) names it."""
    if any(c.get("case_code") == code for c in answer["candidates"]):
        return True
    if not answer.get("held_elsewhere"):
        return False
    row = owner.execute("SELECT EXISTS (SELECT 1 FROM kntc.dedup_lead l JOIN kntc.case_file c "
                        "ON c.id = ANY (l.case_ids) WHERE l.check_id = %s AND c.code = %s)",
                        (answer["check_id"], code)).fetchone()
    return bool(row and row[0])


def protected_denouncer(owner: psycopg.Connection[Any], code: str) -> bool:
    """Whether every party of the case is protected: a denouncer whom the check does not match for an
    officer who does not handle the case, by design (so that the denounced cannot find them)."""
    row = owner.execute("SELECT bool_and(p.identity_protected) FROM kntc.party p JOIN kntc.case_file c "
                        "ON c.id = p.case_id WHERE c.code = %s", (code,)).fetchone()
    return bool(row and row[0])


def run(officers: dict[str, Officer], probes: list[dict[str, Any]], rng: random.Random, n: int,
        owner_dsn: str) -> None:
    import psycopg

    dup_ms: list[float] = []
    new_ms: list[float] = []
    found = protected = 0
    with psycopg.connect(owner_dsn, autocommit=True, connect_timeout=10) as owner:
        for i in range(n):
            p = rng.choice(probes)
            variant = i % 3
            name = (p["name"], strip(p["name"]).upper(), "  ".join(p["name"].split()))[variant]
            party = {"full_name": name, "address_unit": p["address_unit"]}
            if variant != 1 and p["id_number"]:
                party["id_number"] = p["id_number"]
            body = {"parties": [party], "subject": p["reworded"], "respondent": p["respondent"]}
            ms, r = officers["commune"].timed("POST", "/api/dedup/check", json=body)
            dup_ms.append(ms)
            if planted_found(owner, r.json(), p["case_code"]):
                found += 1
            elif protected_denouncer(owner, p["case_code"]):
                protected += 1
            # Someone new in the same commune: the common case at intake.
            newcomer = {"full_name": f"Người Mới Số {i} {rng.randint(1000, 9999)}", "address_unit": p["address_unit"],
                        "id_number": f"{rng.randint(0, 10**12 - 1):012d}"}
            ms, _ = officers["commune"].timed("POST", "/api/dedup/check", json={
                "parties": [newcomer], "subject": "Đề nghị cấp lại giấy chứng nhận bị mất", "respondent": None})
            new_ms.append(ms)

    searches: dict[str, list[float]] = {}

    def timed(label: str, officer: str, params: dict[str, Any]) -> None:
        ms, _ = officers[officer].timed("GET", "/api/search", params=params)
        searches.setdefault(label, []).append(ms)

    families: list[tuple[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]]] = [
        ("id number (centre)", lambda p: ("centre", {"id_number": p["id_number"] or "001090000001"})),
        ("person name (province)", lambda p: ("province", {"person": p["name"]})),
        ("text with diacritics (centre)", lambda p: ("centre", {"q": " ".join(p["subject"].split()[1:5])})),
        ("text without diacritics (commune)", lambda p: ("commune", {"q": strip(" ".join(p["subject"].split()[:4]))})),
        ("code prefix (centre)", lambda p: ("centre", {"code": p["case_code"][:-3]})),
        ("unit+kind+status+dates (province)", lambda p: ("province", {
            "unit": p["commune"], "kind": "complaint", "status": "closed", "received_from": "2019-01-01",
            "received_to": "2024-12-31"})),
    ]
    for i in range(n):
        label, fn = families[i % len(families)]
        officer, params = fn(rng.choice(probes))
        timed(label, officer, params)

    print("\nduplicate check, POST /api/dedup/check (commune officer, nationwide match):")
    print(f"  known duplicate, retyped + reworded   {percentiles(dup_ms)}")
    print(f"  new person                            {percentiles(new_ms)}")
    print(f"  all checks                            {percentiles(dup_ms + new_ms)}")
    print(f"  planted duplicates found in the candidates: {found}/{len(dup_ms)} ({100 * found / max(1, n):.1f}%)")
    print(f"  not found, the denouncer protected (not matched for an officer who does not handle the case, "
          f"by design): {protected}")
    print(f"  not found otherwise: {len(dup_ms) - found - protected}")
    print("\nsearch, GET /api/search:")
    everything: list[float] = []
    for label, ms in searches.items():
        everything += ms
        print(f"  {label:<36}  {percentiles(ms)}")
    print(f"  {'all searches':<36}  {percentiles(everything)}")


def in_database(env: dict[str, str], token: str, probes: list[dict[str, Any]], rng: random.Random, n: int) -> None:
    """The same duplicate checks without HTTP: what the database itself takes (kntc.dedup_candidates
    as the application role, in the officer's session), to tell it from the web stack's share."""
    import psycopg

    samples: list[float] = []
    with psycopg.connect(env["KNTC_DATABASE_URL"], autocommit=False) as conn:
        units = dict(conn.execute("SELECT code, id FROM kntc.unit WHERE code = ANY (%s)",
                                  ([p["address_unit"] for p in probes],)).fetchall())
        for i in range(n):
            p = rng.choice(probes)
            name = (p["name"], strip(p["name"]).upper(), "  ".join(p["name"].split()))[i % 3]
            ids = [p["id_number"]] if p["id_number"] and i % 3 != 1 else []
            with conn.transaction():
                conn.execute("SELECT set_config('kntc.session_token', %s, true)", (token,))
                t0 = time.perf_counter()
                conn.execute("SELECT * FROM kntc.dedup_candidates(%s, %s, %s, %s, %s, %s, 10)",
                             ("{}", ids, [name], [units[p["address_unit"]]], p["reworded"], p["respondent"])).fetchall()
                samples.append((time.perf_counter() - t0) * 1000)
    print("\nduplicate check in the database alone (kntc.dedup_candidates, same probes, no HTTP):")
    print(f"  known duplicate, retyped + reworded   {percentiles(samples)}")


if __name__ == "__main__":
    main()
