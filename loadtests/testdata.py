"""Test accounts and case files for a load run, made through the app's own doors.

* the suite's administrator: `kntc create-account` (needs KNTC_ADMIN_DATABASE_URL), or an existing
  unit administrator given with --admin-user/--admin-password (a remote lab: API only);
* officers of sample units at each level: POST /api/accounts as that administrator, then each
  one's first login (own password, second factor: loadtests/officers.py); district-level units
  were abolished in 2025, so accounts there can only come from `kntc create-account`;
* optional bulk history: `kntc demo-load --cases N`;
* case files in every workflow state: POST /api/cases and /transitions as the officers, keeping
  each case's lookup secret for the citizens' lookups.

With a roster imported by `kntc accounts import` (make accounts-national), the officers are the
roster's instead (loadtests/pool.py): --officers distinct ones spread over tiers and roles as the
capacity model weighs them, each through the first login (own password, second factor where the
account needs one), and the case files are made by teams of them. No administrator is needed.

The result is one JSON file (mode 0600: it holds passwords) that every Locust process reads (the
master sends it to its workers).

    python -m loadtests.testdata --host http://127.0.0.1:8000 --out loadtests/reports/testdata.json
    python -m loadtests.testdata --host URL --roster-key roster.key.csv --roster-credentials creds.csv \
        --officers 10000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from core_app.dedup import vocabulary as V
from loadtests import officers, pool
from loadtests.officers import STEP_SECONDS, Officer
from loadtests.stack import REPORTS, StackError, kntc

log = logging.getLogger("loadtests.testdata")

ROLES = ("reception", "handling", "resolution", "head")
LEVELS = ("commune", "district", "province")
ADMIN = "lt.admin"
# As in the roster (loadtests/roster.py): heads read confidential files, and so hold a second factor.
CLEARANCE = {"head": 1}
# Who moves a case to each state, in order (the workflow's own roles).
STEPS = (("submit", "reception"), ("accept", "handling"), ("start_verification", "resolution"))


def petition_body(address_unit: str, i: int) -> dict[str, Any]:
    """A petition whose complainant lives in `address_unit` (a commune in force today)."""
    kind = ("complaint", "denunciation", "recommendation", "complaint")[i % 4]
    return {
        "kind": kind,
        "subject": f"Đơn {kind} về bồi thường giải phóng mặt bằng (kiểm thử tải {i})",
        "content": "Công dân đề nghị xem xét lại quyết định thu hồi đất và mức bồi thường, hỗ trợ tái định cư.",
        "respondent": "Ủy ban nhân dân cấp xã",
        "channel": ("in_person", "letter", "online", "email")[i % 4],
        "denouncer_confidential": kind == "denunciation",
        "parties": [{"role": "denouncer" if kind == "denunciation" else "complainant",
                     "full_name": f"Công dân Kiểm Thử {i}", "id_number": f"{900000000000 + i:012d}",
                     "address": "Tổ dân phố 3", "address_unit": address_unit}],
    }


def new_person_petition(address_unit: str, rng: random.Random) -> dict[str, Any]:
    """A petition from someone who has written none before: a name as common as Vietnamese names are
    (core_app.dedup.vocabulary), an identity number of their own, and one of the usual subjects. An
    intake benchmark that sent the same complainant every time measured a duplicate check scoring
    thousands of that one person's earlier cases, a cost that grew with every run."""
    body = petition_body(address_unit, rng.randrange(1_000_000))
    female = rng.random() < 0.48
    surname = rng.choices([s for s, _ in V.SURNAMES], [w for _, w in V.SURNAMES])[0]
    middle = rng.choice(V.MIDDLE_FEMALE if female else V.MIDDLE_MALE)
    given = rng.choice(V.GIVEN_FEMALE if female else V.GIVEN_MALE)
    body["parties"][0].update(full_name=f"{surname} {middle} {given}", id_number=f"{rng.randrange(10**12):012d}")
    respondent = rng.choice(V.COMPANIES)
    body.update(subject=rng.choice(V.SUBJECTS[body["kind"]]).format(resp=respondent, place=f"đơn vị {address_unit}"),
                respondent=respondent)
    return body


class Api:
    """A small blocking client for preparation (Locust is not running yet)."""

    def __init__(self, host: str, token: str | None = None) -> None:
        self.host = host.rstrip("/")
        self.s = requests.Session()
        if token:
            self.s.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        r = self.s.request(method, self.host + path, timeout=60, **kw)
        if r.status_code not in ok:
            raise StackError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    @classmethod
    def login(cls, host: str, username: str, password: str) -> Api:
        return cls.as_officer(host, Officer(username, "", password))

    @classmethod
    def as_officer(cls, host: str, officer: Officer) -> Api:
        """A session of an officer whose setup is done (with a code where the account has a factor)."""
        try:
            body = officers.login(requests.Session(), host.rstrip("/"), officer)
        except officers.SetupFailed as exc:
            raise StackError(f"{exc} (an account left by an earlier run with another password? remove the test "
                             "data file or pass --password)") from exc
        return cls(host, body["token"])


def sample_units(api: Api, per_level: int) -> dict[str, list[str]]:
    """Units to act in: communes and province-level units in force today, legacy districts, readers' bodies."""
    provinces = [u for u in api.call("GET", "/api/units", params={"parent": "VN", "limit": 200})
                 if u["kind"] == "province"]
    first = provinces[0]["code"]
    children = api.call("GET", "/api/units", params={"parent": first, "limit": 1000})
    communes = [u["code"] for u in children if u["kind"] == "commune"][:per_level]
    readers = [u["code"] for u in children if u["kind"] in ("court", "procuracy", "party", "front")][:2]
    legacy = [u for u in api.call("GET", "/api/units", params={"parent": "VN", "include_legacy": "true",
                                                                 "limit": 200}) if u["valid_to"]]
    districts: list[str] = []
    if legacy:
        districts = [u["code"] for u in api.call("GET", "/api/units", params={
            "parent": legacy[0]["code"], "include_legacy": "true", "limit": 1000}) if u["kind"] == "district"]
    # Province level holds the central bodies too (12 accounts per unit at both, in the source).
    province = [u["code"] for u in provinces[:max(1, per_level - 1)]] + ["TTCP"]
    return {"commune": communes, "district": districts[:per_level], "province": province[:per_level],
            "external_reader": readers}


def ensure_admin(host: str, password: str, admin_user: str | None, admin_password: str | None,
                 env: dict[str, str] | None, username: str = ADMIN, admin_totp: str | None = None) -> Api:
    if admin_user:
        return Api.as_officer(host, Officer(admin_user, "", admin_password or "", totp=admin_totp))
    if env is None:
        raise StackError("no database access (KNTC_ADMIN_DATABASE_URL) and no --admin-user: cannot create accounts")
    kntc("create-account", "--username", username, "--full-name", "Quản trị kiểm thử tải", "--unit", "VN",
         "--role", "unit_admin", "--clearance", "2", env={**env, "KNTC_NEW_PASSWORD": password})
    return Api.login(host, username, password)


def make_accounts(admin: Api, units: dict[str, list[str]], password: str, env: dict[str, str] | None
                  ) -> dict[str, list[Officer]]:
    """One account per role in each sample unit, by Locust class, each with the password it starts
    on: an initial one from the API (the first login replaces it), the run's from `kntc create-account`.
    An account an earlier run made (409) starts where that run's test data left it."""
    made: dict[str, list[Officer]] = {}

    def create(key: str, username: str, unit: str, roles: list[str], clearance: int, name: str) -> None:
        got = admin.call("POST", "/api/accounts", ok=(201, 409), json={
            "username": username, "full_name": name, "unit": unit, "roles": roles, "clearance": clearance})
        initial = (got or {}).get("initial_password") or ""
        made.setdefault(key, []).append(Officer(username, unit, initial, key, initial=initial))

    for level in LEVELS:
        for i, unit in enumerate(units.get(level, [])):
            if level == "district":
                # Legacy units take new accounts only from `kntc create-account` (one process per
                # account, so one officer holding the four duties, as in a small unit).
                if env is None:
                    continue
                username = f"lt.d{i}.officer"
                kntc("create-account", "--username", username, "--full-name", f"Cán bộ kiểm thử {username}",
                     "--unit", unit, *[a for r in ROLES for a in ("--role", r)], "--clearance", "1",
                     env={**env, "KNTC_NEW_PASSWORD": password})
                officer = Officer(username, unit, password, "", initial=password)
                for role in ROLES:
                    made.setdefault(f"{level}.{role}", []).append(officer)
                continue
            for role in ROLES:
                username = f"lt.{level[0]}{i}.{role}"
                create(f"{level}.{role}", username, unit, [role], CLEARANCE.get(role, 0), f"Cán bộ kiểm thử {username}")
    for i, unit in enumerate(units.get("external_reader", [])):
        username = f"lt.r{i}.reader"
        create("external_reader", username, unit, ["external_reader"], 0, f"Cán bộ đọc {username}")
    return made


def record_case(api: Api, body: dict[str, Any]) -> Any:
    """Record a petition as the intake does: the duplicate check, then the case under it (a new matter).
    Each check counts against the officer's budget (kntc.throttle_rule dedup_minute, 20 a minute):
    past it the answer's Retry-After is waited out; raise the budget with `kntc throttle set` for a
    large preparation."""
    parties = [{k: p[k] for k in ("full_name", "id_number", "address_unit") if p.get(k)} for p in body["parties"]]
    for _ in range(10):
        r = api.s.post(f"{api.host}/api/dedup/check", json={"parties": parties, "subject": body["subject"]},
                       timeout=60)
        if r.status_code != 429:
            break
        time.sleep(min(65, int(r.headers.get("Retry-After", "10"))))
    if r.status_code != 200:
        raise StackError(f"POST /api/dedup/check answered {r.status_code}: {r.text[:300]}")
    return api.call("POST", "/api/cases", json={**body, "dedup_check_id": r.json()["check_id"]})


def make_cases(host: str, teams: list[dict[str, Officer]], home: str, per_unit: int) -> list[dict[str, str]]:
    """Case files made by each team (role -> officer of one unit), spread over the first workflow
    states; returns each case's code and lookup secret. `home`: where the complainants live."""

    def one_unit(team: dict[str, Officer]) -> list[dict[str, str]]:
        apis = {role: Api.as_officer(host, o) for role, o in team.items()}
        out = []
        for n in range(per_unit):
            made = record_case(apis["reception"], petition_body(home, n))
            version = made["version"]
            for step, role in STEPS[: n % (len(STEPS) + 1)]:
                if role not in apis:
                    break  # a unit without this role: its cases stop one state earlier
                version = apis[role].call("POST", f"/api/cases/{made['code']}/transitions",
                                          json={"action": step, "version": version})["version"]
            out.append({"code": made["code"], "secret": made["lookup_secret"]})
        return out

    with ThreadPoolExecutor(max_workers=4) as ex:
        return [c for part in ex.map(one_unit, teams) for c in part]


def sample_teams(accounts: dict[str, list[Officer]]) -> list[dict[str, Officer]]:
    """The sample units' teams: the i-th account of each role at a level work in one unit."""
    return [{role: accounts[f"{level}.{role}"][i] for _, role in STEPS}
            for level in LEVELS for i in range(len(accounts.get(f"{level}.reception", [])))]


def set_up(host: str, out: Path, accounts: dict[str, list[Officer]], threads: int = 4,
           target: str | None = None) -> dict[str, list[Officer]]:
    """Each account's first login (or, done before, a login), once per officer; the officers by class."""
    state = pool.State.load(out, target or host)
    unique = list({o.username: o for group in accounts.values() for o in group}.values())
    ready, failures = pool.set_up_all(host, unique, state, threads, target=target or host)
    state.close(done=not failures)
    if failures:
        raise StackError(f"{len(failures)} officer(s) could not log in: {failures[0]}")
    by_name = {o.username: o for o in ready}
    return {key: [by_name[o.username] for o in group] for key, group in accounts.items()}


def prepare(host: str, out: Path, *, per_level: int = 2, cases_per_unit: int = 12, demo_cases: int = 0,
            admin_user: str | None = None, admin_password: str | None = None, admin_totp: str | None = None,
            password: str | None = None, target: str | None = None) -> dict[str, Any]:
    """`target`: the database the accounts live in (default: `host`); the local stack names its
    cluster, so a rerun served on another port finds the accounts and passwords it made."""
    target = target or host
    # With the owner's DSN the suite uses the operator's commands; without it, the API only.
    env = dict(os.environ) if os.environ.get("KNTC_ADMIN_DATABASE_URL") else None
    # The password outlives a run: the accounts it made are still in that database.
    previous = json.loads(out.read_text()) if out.exists() else {}
    same = pool.target_of(previous) == target
    password = password or previous.get("password") or ("Lt-" + secrets.token_urlsafe(12) + "9")
    # Keep the password before making any account, so that an interrupted run can be resumed.
    out.parent.mkdir(parents=True, exist_ok=True)
    previous_accounts = previous.get("accounts", {}) if same else {}
    write_private(out, {"host": host, "target": target, "password": password, "accounts": previous_accounts})
    if env is not None and demo_cases:
        # Bulk history in one ward (the command only fills an empty database): bigger indexes, longer inboxes.
        kntc("demo-load", "--cases", str(demo_cases), env={**env, "KNTC_DEMO_PASSWORD": password}, timeout=1800)
    admin = ensure_admin(host, password, admin_user, admin_password, env, admin_totp=admin_totp)
    units = sample_units(admin, per_level)
    accounts = set_up(host, out, make_accounts(admin, units, password, env), target=target)
    home = accounts["commune.reception"][0].unit  # where the complainants live
    cases = make_cases(host, sample_teams(accounts), home, cases_per_unit)
    data = {"host": host, "target": target, "password": password, "units": units, "cases": cases,
            "accounts": {key: [o.as_json() for o in group] for key, group in accounts.items()}}
    write_private(out, data)
    next_step_for_all([o for group in accounts.values() for o in group])
    log.info("test data: %d account groups, %d case files -> %s", len(accounts), len(cases), out)
    return data


def next_step_for_all(officers: list[Officer]) -> None:
    """Wait until every officer's next TOTP step has begun (at most 30 s), so that the run's first
    logins send fresh codes at once instead of each waiting for its own."""
    last = max((o.last_step for o in officers if o.totp), default=0)
    wait = (last + 1) * STEP_SECONDS - time.time()
    if wait > 0:
        log.info("waiting %.0f s for the next TOTP step (the codes just used are spent)", wait)
        time.sleep(wait + 0.1)


def write_private(path: Path, data: dict[str, Any]) -> None:
    """The test data file, mode 0600 from its first byte (it holds passwords and TOTP secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
    tmp.replace(path)


COMMUNE = re.compile(r"^X[0-9]{5}$")


def roster_teams(officers: list[Officer], n: int, seed: int = 1) -> list[dict[str, Officer]]:
    """Up to `n` units whose officers can take a case from reception to verification (reception
    and handling at least; units with a resolution officer first), one team each; another seed
    than 1 takes other units."""
    by_unit: dict[str, dict[str, Officer]] = {}
    for o in sorted(officers, key=lambda o: o.username):
        by_unit.setdefault(o.unit, {}).setdefault(o.key.rsplit(".", 1)[-1], o)
    able = [u for u, t in sorted(by_unit.items()) if {"reception", "handling"} <= set(t)]
    if seed != 1:
        random.Random(seed).shuffle(able)  # noqa: S311 - which simulated officers, not a secret
    able.sort(key=lambda u: "resolution" not in by_unit[u])
    return [{r: by_unit[u][r] for r in ("reception", "handling", "resolution") if r in by_unit[u]}
            for u in able[:n]]


def prepare_roster(host: str, out: Path, key: Path, credentials: list[Path], wanted: int, *, threads: int = 8,
                   seed: int = 1, teams: int = 4, cases_per_unit: int = 12, target: str | None = None,
                   lazy: bool = False) -> dict[str, Any]:
    """The roster mode: `wanted` distinct officers set up (or resumed), and case files by teams of them.

    `lazy` (the national run): only the teams log in now; every other officer goes into the test
    data as earlier runs left it (its own password and factor once set up, else its initial
    password), and does its first login in the run, when it first acts (written to the journal
    beside the test data, which the next preparation reads)."""
    target = target or host
    by_class = pool.read_roster(key, credentials)
    available = sum(len(v) for v in by_class.values())
    if not available:
        raise StackError(f"no officer of {key} has an initial password in {', '.join(map(str, credentials))}: "
                         "import the roster first (make accounts-national)")
    # The teams that make the case files come first (a sample of a large roster rarely holds a
    # reception and a handling officer of one unit), then the sample of the rest.
    teams_of = roster_teams([o for group in by_class.values() for o in group], teams, seed)
    members = {o.username: o for t in teams_of for o in t.values()}
    rest = {k: [o for o in v if o.username not in members] for k, v in by_class.items()}
    chosen = [*members.values(), *pool.pick(rest, max(0, wanted - len(members)), seed)]
    if len(chosen) < wanted and not lazy:
        log.warning("the roster has %d officers to simulate, fewer than the %d asked for", len(chosen), wanted)
    state = pool.State.load(out, target)
    now = list(members.values()) if lazy else chosen
    log.info("first logins of %d officers (%d threads; %d set up before)%s", len(now), threads,
             sum(1 for o in now if (state.officers.get(o.username) or o).ready),
             f"; {len(chosen) - len(now)} more log in when they first act" if lazy else "")
    ready, failures = pool.set_up_all(host, now, state, threads, target=target)
    for f in failures[:10]:
        log.error("%s", f)
    if lazy:
        done = {o.username for o in ready}
        ready += [pool.resume(o, state)[0] for o in chosen if o.username not in done and o.username not in members]
    accounts: dict[str, list[dict[str, Any]]] = {}
    for o in ready:
        accounts.setdefault(o.key, []).append(o.as_json())
    # Officers earlier runs set up that this one did not log in (a smaller run, or a preparation that
    # stopped at a refused login) are kept aside, not used: they no longer have their initial
    # passwords, and a later run that picks them again needs the ones they were given.
    using = {o.username for o in ready}
    kept = [o.as_json() for o in state.officers.values() if o.username not in using and o.ready]
    homes = sorted({o.unit for o in ready if COMMUNE.match(o.unit)}) or sorted({o.unit for o in ready})
    data: dict[str, Any] = {"host": host, "target": target, "mode": "roster", "accounts": accounts,
                            "units": {"commune": homes[:20]}, "cases": [], "officers": len(ready),
                            "failures": failures, "set_up_before": kept}
    write_private(out, data)  # the officers set up so far, before anything else can fail
    if ready and not failures:
        by_name = {o.username: o for o in ready}
        crews = [{r: by_name[o.username] for r, o in t.items()} for t in teams_of]
        data["cases"] = make_cases(host, crews, homes[0], cases_per_unit)
        write_private(out, data)
    state.close(done=not failures)
    next_step_for_all([o for o in ready if o.ready])
    log.info("test data: %d distinct officers in %d classes (%d set up), %d case files, %d failures -> %s",
             len(ready), len(accounts), sum(1 for o in ready if o.ready), len(data["cases"]), len(failures), out)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", required=True, help="base URL of the app, e.g. http://127.0.0.1:8000")
    p.add_argument("--out", type=Path, default=REPORTS / "testdata.json")
    p.add_argument("--per-level", type=int, default=2, help="sample units per level")
    p.add_argument("--cases-per-unit", type=int, default=12)
    p.add_argument("--demo-cases", type=int, default=0, help="bulk history through `kntc demo-load` (empty DB only)")
    p.add_argument("--admin-user", help="an existing unit_admin (API only, e.g. against the lab)")
    p.add_argument("--admin-password", default=os.environ.get("KNTC_LOAD_ADMIN_PASSWORD"))
    p.add_argument("--admin-totp", default=os.environ.get("KNTC_LOAD_ADMIN_TOTP"),
                   help="the administrator's TOTP secret (base32), if it has a second factor")
    r = p.add_argument_group("roster mode (officers of an imported roster instead of sample accounts)")
    r.add_argument("--roster-key", type=Path, help="the roster's key (<roster>.key.csv, from loadtests.roster)")
    r.add_argument("--roster-credentials", type=Path, nargs="+", help="the import's initial passwords")
    r.add_argument("--officers", type=int, default=10_000, help="distinct officers to set up and simulate")
    r.add_argument("--threads", type=int, default=8, help="first logins at once")
    r.add_argument("--seed", type=int, default=1, help="which officers are picked")
    r.add_argument("--teams", type=int, default=4, help="units whose officers make the case files")
    args = p.parse_args(argv)
    if bool(args.roster_key) != bool(args.roster_credentials):
        p.error("--roster-key and --roster-credentials go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.roster_key:
            data = prepare_roster(args.host.rstrip("/"), args.out, args.roster_key, args.roster_credentials,
                                  args.officers, threads=args.threads, seed=args.seed, teams=args.teams,
                                  cases_per_unit=args.cases_per_unit)
            return 1 if data["failures"] else 0
        prepare(args.host, args.out, per_level=args.per_level, cases_per_unit=args.cases_per_unit,
                demo_cases=args.demo_cases, admin_user=args.admin_user, admin_password=args.admin_password,
                admin_totp=args.admin_totp)
    except (StackError, requests.RequestException, OSError) as exc:
        print(f"testdata: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
