"""Test accounts and case files for a load run, made through the app's own doors.

* the suite's administrator: `kntc create-account` (needs KNTC_ADMIN_DATABASE_URL), or an existing
  unit administrator given with --admin-user/--admin-password (a remote lab: API only);
* officers of sample units at each level: POST /api/accounts as that administrator; district-level
  units were abolished in 2025, so accounts there can only come from `kntc create-account`;
* optional bulk history: `kntc demo-load --cases N`;
* case files in every workflow state: POST /api/cases and /transitions as the officers, keeping
  each case's lookup secret for the citizens' lookups.

The result is one JSON file that every Locust process reads (the master sends it to its workers).

    python -m loadtests.testdata --host http://127.0.0.1:8000 --out loadtests/reports/testdata.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from loadtests.stack import REPORTS, StackError, kntc

log = logging.getLogger("loadtests.testdata")

ROLES = ("reception", "handling", "resolution", "head")
LEVELS = ("commune", "district", "province")
ADMIN = "lt.admin"
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
        r = requests.post(host.rstrip("/") + "/api/auth/login", json={"username": username, "password": password},
                          timeout=60)
        if r.status_code != 200:
            raise StackError(f"login as {username} answered {r.status_code}: {r.text[:200]} (an account left by an "
                             "earlier run with another password? remove the test data file or pass --password)")
        return cls(host, r.json()["token"])


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
                 env: dict[str, str] | None, username: str = ADMIN) -> Api:
    if admin_user:
        return Api.login(host, admin_user, admin_password or "")
    if env is None:
        raise StackError("no database access (KNTC_ADMIN_DATABASE_URL) and no --admin-user: cannot create accounts")
    kntc("create-account", "--username", username, "--full-name", "Quản trị kiểm thử tải", "--unit", "VN",
         "--role", "unit_admin", "--clearance", "2", env={**env, "KNTC_NEW_PASSWORD": password})
    return Api.login(host, username, password)


def make_accounts(admin: Api, units: dict[str, list[str]], password: str, env: dict[str, str] | None
                  ) -> dict[str, list[dict[str, str]]]:
    """One account per role in each sample unit: {"commune.reception": [{username, unit}], ...}."""
    made: dict[str, list[dict[str, str]]] = {}
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
                for role in ROLES:
                    made.setdefault(f"{level}.{role}", []).append({"username": username, "unit": unit})
                continue
            for role in ROLES:
                username = f"lt.{level[0]}{i}.{role}"
                admin.call("POST", "/api/accounts", ok=(201, 409), json={
                    "username": username, "full_name": f"Cán bộ kiểm thử {username}", "unit": unit,
                    "roles": [role], "clearance": 1, "password": password})
                made.setdefault(f"{level}.{role}", []).append({"username": username, "unit": unit})
    for i, unit in enumerate(units.get("external_reader", [])):
        username = f"lt.r{i}.reader"
        admin.call("POST", "/api/accounts", ok=(201, 409), json={
            "username": username, "full_name": f"Cán bộ đọc {username}", "unit": unit,
            "roles": ["external_reader"], "clearance": 0, "password": password})
        made.setdefault("external_reader", []).append({"username": username, "unit": unit})
    return made


def make_cases(host: str, accounts: dict[str, list[dict[str, str]]], password: str, per_unit: int
               ) -> list[dict[str, str]]:
    """Case files in each sample unit, spread over the first workflow states; returns code + secret."""
    jobs = []
    home = accounts["commune.reception"][0]["unit"]  # where the complainants live
    for level in LEVELS:
        for i, acc in enumerate(accounts.get(f"{level}.reception", [])):
            team = {role: accounts[f"{level}.{role}"][i]["username"] for role in ROLES}
            jobs.append((acc["unit"], team))

    def one_unit(job: tuple[str, dict[str, str]]) -> list[dict[str, str]]:
        _unit, team = job
        apis = {role: Api.login(host, name, password) for role, name in team.items()}
        out = []
        for n in range(per_unit):
            made = apis["reception"].call("POST", "/api/cases", json=petition_body(home, n))
            version = made["version"]
            for step, role in STEPS[: n % (len(STEPS) + 1)]:
                version = apis[role].call("POST", f"/api/cases/{made['code']}/transitions",
                                          json={"action": step, "version": version})["version"]
            out.append({"code": made["code"], "secret": made["lookup_secret"]})
        return out

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [c for part in pool.map(one_unit, jobs) for c in part]


def prepare(host: str, out: Path, *, per_level: int = 2, cases_per_unit: int = 12, demo_cases: int = 0,
            admin_user: str | None = None, admin_password: str | None = None,
            password: str | None = None) -> dict[str, Any]:
    # With the owner's DSN the suite uses the operator's commands; without it, the API only.
    env = dict(os.environ) if os.environ.get("KNTC_ADMIN_DATABASE_URL") else None
    # The password outlives a run: the accounts it made are still in that database.
    previous = json.loads(out.read_text()) if out.exists() else {}
    password = password or previous.get("password") or ("Lt-" + secrets.token_urlsafe(12) + "9")
    # Keep the password before making any account, so that an interrupted run can be resumed.
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"host": host, "password": password}, ensure_ascii=False))
    out.chmod(0o600)  # it holds the test accounts' password
    if env is not None and demo_cases:
        # Bulk history in one ward (the command only fills an empty database): bigger indexes, longer inboxes.
        kntc("demo-load", "--cases", str(demo_cases), env={**env, "KNTC_DEMO_PASSWORD": password}, timeout=1800)
    admin = ensure_admin(host, password, admin_user, admin_password, env)
    units = sample_units(admin, per_level)
    accounts = make_accounts(admin, units, password, env)
    cases = make_cases(host, accounts, password, cases_per_unit)
    data = {"host": host, "password": password, "accounts": accounts, "units": units, "cases": cases}
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1))
    log.info("test data: %d account groups, %d case files -> %s", len(accounts), len(cases), out)
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
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        prepare(args.host, args.out, per_level=args.per_level, cases_per_unit=args.cases_per_unit,
                demo_cases=args.demo_cases, admin_user=args.admin_user, admin_password=args.admin_password)
    except (StackError, requests.RequestException) as exc:
        print(f"testdata: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
