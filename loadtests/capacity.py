"""Capacity model of the national KNTC deployment: from accounts to concurrent users and requests/s.

Every assumption is a parameter with its source or reasoning next to it, and is printed with the
results (`python -m loadtests.capacity`). The method is Little's law, L = λ·W:

* officers: sessions start at λ = accounts × active share × sessions per active account × peak-hour
  share ÷ 3600 per second in the peak hour; each lasts W = session length, so L = λ·W officers are
  logged in at once; they send L × requests-per-minute ÷ 60 requests per second;
* citizens: lookups arrive at a rate (per day × peak-hour share ÷ 3600) — an open arrival process,
  not sessions;
* stress: every account logged in at once (L = accounts) at the same per-user pace.

The same numbers drive the Locust suite: user-class weights are the concurrent users per class,
think times are 60 ÷ requests-per-minute, and the citizens' class is sized by Little's law again
(users = arrival rate × time between one citizen user's lookups).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# -- the account population ---------------------------------------------------------------------
# The source (upgrade plan, seeds/003) gives only the averages — 3 users per commune-level unit,
# 7 per district-level unit, 12 per province-level or central unit — and the total, 162,318. The
# unit counts below are back-solved to reproduce that total exactly and are plausible: ~10,035
# legacy wards × 4 bodies (People's Committee, Party committee, People's Council, Front), 696
# districts × 7 bodies, and ~650 province-level and central bodies (63 provinces × ~10 + central).
LEVEL_UNITS = {"commune": 40_138, "district": 4_872, "province": 650}
ACCOUNTS_PER_UNIT = {"commune": 3, "district": 7, "province": 12}

# What the accounts do. The documents name four officer kinds and read-only accounts for other
# bodies; the split is an assumption (a commune's 3 users: reception, handling, a head who also
# resolves; larger units add resolution officers and readers).
ROLE_SHARES = {
    "commune": {"reception": 0.34, "handling": 0.33, "resolution": 0.0, "head": 0.33, "external_reader": 0.0},
    "district": {"reception": 0.2, "handling": 0.3, "resolution": 0.2, "head": 0.15, "external_reader": 0.15},
    "province": {"reception": 0.15, "handling": 0.25, "resolution": 0.25, "head": 0.1, "external_reader": 0.25},
}
# Requests per minute while a session is open (one API call per screen; think time included).
RPM = {"reception": 3.0, "handling": 4.0, "resolution": 3.0, "head": 2.0, "external_reader": 2.0}
ROLES = ("reception", "handling", "resolution", "head", "external_reader")
LEVELS = ("commune", "district", "province")


@dataclass(frozen=True)
class Scenario:
    name: str
    active_share: float        # share of accounts that log in at all that day
    sessions_per_active: float  # sessions per active account per day
    session_minutes: float      # W in Little's law
    peak_hour_share: float      # share of the day's sessions that start in the peak hour
    lookups_per_day: float      # citizens' lookups
    lookup_peak_share: float    # share of the day's lookups in the peak hour
    everyone: bool = False      # stress: every account logged in at once


SCENARIOS = {
    # An ordinary working day: half the accounts log in, twice, for 40 minutes; 18% of sessions in
    # the 09:00–10:00 hour (office hours 7:30–16:30, a morning peak).
    "typical": Scenario("typical", 0.5, 2, 40, 0.18, 150_000, 0.15),
    # A reception day / reporting deadline: 85% log in, three sessions of 50 minutes, a sharper peak,
    # and citizens' lookups at the national feedback system's volume (600,000–1,000,000 a day).
    "busy": Scenario("busy", 0.85, 3, 50, 0.22, 1_000_000, 0.15),
    # Stress: all 162,318 accounts at once, citizens at twice the busy peak.
    "stress": Scenario("stress", 1.0, 1, 60, 1.0, 2_000_000, 0.15, everyone=True),
}


@dataclass
class Model:
    level_units: dict[str, int] = field(default_factory=lambda: dict(LEVEL_UNITS))
    accounts_per_unit: dict[str, int] = field(default_factory=lambda: dict(ACCOUNTS_PER_UNIT))
    role_shares: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in ROLE_SHARES.items()})
    rpm: dict[str, float] = field(default_factory=lambda: dict(RPM))
    # A citizen user in the load test looks a case up every this many seconds (Little's law sizing).
    citizen_interval_s: float = 30.0

    def accounts(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for level in LEVELS:
            n = self.level_units[level] * self.accounts_per_unit[level]
            for role in ROLES:
                out[(level, role)] = n * self.role_shares[level][role]
        return out

    def total_accounts(self) -> int:
        return sum(self.level_units[lv] * self.accounts_per_unit[lv] for lv in LEVELS)

    def scenario(self, s: Scenario) -> dict[str, Any]:
        per_class: dict[str, dict[str, float]] = {}
        concurrent = rps = logins = 0.0
        for (level, role), n in self.accounts().items():
            if n == 0:
                continue
            if s.everyone:
                lam, users = 0.0, n
            else:
                lam = n * s.active_share * s.sessions_per_active * s.peak_hour_share / 3600.0
                users = lam * s.session_minutes * 60.0  # Little's law
            r = users * self.rpm[role] / 60.0
            per_class[f"{level}.{role}"] = {"accounts": round(n), "sessions_per_s": lam, "concurrent": users, "rps": r}
            concurrent += users
            rps += r
            logins += lam
        lookup_rps = s.lookups_per_day * s.lookup_peak_share / 3600.0
        per_class["citizen"] = {"accounts": 0, "sessions_per_s": lookup_rps, "rps": lookup_rps,
                                "concurrent": lookup_rps * self.citizen_interval_s}
        return {"scenario": asdict(s), "officers_concurrent": concurrent, "officer_rps": rps,
                "logins_per_s": logins, "citizen_lookups_per_s": lookup_rps, "total_rps": rps + lookup_rps,
                "classes": per_class}

    def run(self) -> dict[str, Any]:
        return {"total_accounts": self.total_accounts(), "assumptions": asdict(self),
                "scenarios": {k: self.scenario(s) for k, s in SCENARIOS.items()}}


# -- sizing: from a demand (req/s) and measured capacities to servers ------------------------------
@dataclass(frozen=True)
class Sizing:
    """How many app nodes and how much database a demand needs, from measured capacities."""

    rps_per_worker: float        # measured: req/s one app worker holds with p95 under the limit
    workers_per_node: int = 8    # an 8-core app node runs one worker per core
    target_utilisation: float = 0.6  # headroom for bursts, GC, a rolling restart
    db_tps_per_core: float = 0.0  # measured: pgbench rate of the request mix's SQL per database core
    pool_per_worker: int = 16     # KNTC_POOL_MAX
    redundancy: int = 1           # N+1 at each site (the DR site mirrors the primary)

    def plan(self, demand_rps: float, logins_per_s: float = 0.0, login_cpu_s: float = 0.08) -> dict[str, Any]:
        # A login verifies an argon2id hash (~80 ms of one core, measured): count it as worker time.
        login_workers = logins_per_s * login_cpu_s
        workers = demand_rps / (self.rps_per_worker * self.target_utilisation) + login_workers / self.target_utilisation
        nodes = max(1, math.ceil(workers / self.workers_per_node)) + self.redundancy
        out: dict[str, Any] = {"demand_rps": demand_rps, "app_workers": math.ceil(workers), "app_nodes": nodes,
                               "app_nodes_per_site_formula": "ceil(demand / (rps_per_worker × util) / workers_per_node)"
                               " + redundancy"}
        if self.db_tps_per_core:
            cores = demand_rps / (self.db_tps_per_core * self.target_utilisation)
            out["db_cores"] = math.ceil(cores)
            out["db_primary_vcpus"] = 2 ** math.ceil(math.log2(max(4, cores)))  # buy the next size up
        conns = nodes * self.workers_per_node * self.pool_per_worker
        out["db_connections_from_pools"] = conns
        out["pgbouncer_needed"] = conns > 400  # beyond a few hundred backends PostgreSQL wastes CPU on them
        return out


def format_report(result: dict[str, Any], sizing: Sizing | None = None) -> str:
    lines = [f"Accounts: {result['total_accounts']:,} (source: at least 162,318)", "", "Assumptions:"]
    a = result["assumptions"]
    for lv in LEVELS:
        lines.append(f"  {lv:9} {a['level_units'][lv]:>7,} units × {a['accounts_per_unit'][lv]:>2} accounts; roles "
                     + ", ".join(f"{r} {s:.0%}" for r, s in a["role_shares"][lv].items() if s))
    lines.append("  requests/min per open session: " + ", ".join(f"{r} {v:g}" for r, v in a["rpm"].items()))
    for name, sc in result["scenarios"].items():
        s = sc["scenario"]
        who = ("every account logged in at once" if s["everyone"] else
               f"{s['active_share']:.0%} active × {s['sessions_per_active']:g} sessions × "
               f"{s['session_minutes']:g} min, {s['peak_hour_share']:.0%} in the peak hour")
        lines += ["", f"{name}: {who}; {s['lookups_per_day']:,.0f} lookups/day",
                  f"  concurrent officers {sc['officers_concurrent']:>10,.0f}   "
                  f"officer req/s {sc['officer_rps']:>8,.0f}   logins/s {sc['logins_per_s']:>6.1f}",
                  f"  citizen lookups/s  {sc['citizen_lookups_per_s']:>10,.1f}   "
                  f"total req/s   {sc['total_rps']:>8,.0f}"]
        if sizing:
            p = sizing.plan(sc["total_rps"], sc["logins_per_s"])
            db = f", database ≥ {p['db_cores']} cores" if "db_cores" in p else ""
            lines.append(f"  → {p['app_workers']} app workers = {p['app_nodes']} app nodes of {sizing.workers_per_node}"
                         f" workers per site (N+{sizing.redundancy}){db}, {p['db_connections_from_pools']} pool"
                         f" connections{' (put PgBouncer in front)' if p['pgbouncer_needed'] else ''}")
    return "\n".join(lines)


def locust_plan(scenario: str, model: Model | None = None) -> dict[str, dict[str, float]]:
    """Per Locust user class: weight (concurrent users) and think time (s) for a scenario."""
    model = model or Model()
    sc = model.scenario(SCENARIOS[scenario])
    plan: dict[str, dict[str, float]] = {}
    for key, c in sc["classes"].items():
        role = key.split(".")[-1]
        # Readers are one class whatever their body's level: they read the same way.
        name = "external_reader" if role == "external_reader" else key
        think = model.citizen_interval_s if key == "citizen" else 60.0 / model.rpm[role]
        entry = plan.setdefault(name, {"weight": 0.0, "think_s": think, "rps": 0.0})
        entry["weight"] += c["concurrent"]
        entry["rps"] += c["rps"]
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print the model as JSON")
    p.add_argument("--rps-per-worker", type=float, help="measured capacity of one app worker (from a load run)")
    p.add_argument("--db-tps-per-core", type=float, default=0.0, help="measured pgbench rate per database core")
    p.add_argument("--workers-per-node", type=int, default=8)
    p.add_argument("--set", action="append", default=[], metavar="SCENARIO.FIELD=VALUE",
                   help="override an assumption, e.g. --set busy.session_minutes=30")
    args = p.parse_args(argv)
    for item in args.set:
        key, _, value = item.partition("=")
        name, _, fld = key.partition(".")
        if name not in SCENARIOS or fld not in Scenario.__dataclass_fields__ or not value:
            print(f"capacity: cannot set {item!r}: expected SCENARIO.FIELD=VALUE with SCENARIO in "
                  f"{', '.join(SCENARIOS)}", file=sys.stderr)
            return 2
        SCENARIOS[name] = replace(SCENARIOS[name], **{fld: type(getattr(SCENARIOS[name], fld))(value)})
    result = Model().run()
    sizing = (Sizing(args.rps_per_worker, args.workers_per_node, db_tps_per_core=args.db_tps_per_core)
              if args.rps_per_worker else None)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_report(result, sizing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
