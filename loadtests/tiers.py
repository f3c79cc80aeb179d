"""CPU used by each tier of the stack while a load runs: the sizing of CAPACITY.md comes from these
figures (CPU milliseconds per request, per tier), not from one process's view.

On the lab each host is a container whose systemd gives every service its own control group, and
cgroup v2 counts in `cpu.stat` the CPU of every process a group ever held: PostgreSQL's backends,
which come and go, are in patroni.service's figure, the workers of the case service in
kntc.service's. Reading the groups from this machine (no agent on the hosts, nothing the run
changes) before and after each stage gives CPU seconds per site, tier and host. node_exporter does
not: inside a container it reports the whole machine.

On the local stack (`python -m loadtests.run` without --host) the tiers are the app server's and
the cluster's process trees, their reaped children included.

    python -m loadtests.tiers                # one reading of the lab, per site and tier
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.capacity import SCENARIOS, Model

TICK = os.sysconf("SC_CLK_TCK")
UNIFIED = Path("/sys/fs/cgroup/unified")  # a hybrid host (this one); a pure cgroup v2 host mounts it at /sys/fs/cgroup
# The lab's services by tier; what a host runs besides (exporters, journald, sshd, the outbox workers)
# is its "other".
SERVICE_TIERS = {
    "nginx.service": "nginx",
    "kntc.service": "app",
    "haproxy.service": "HAProxy",
    "pgbouncer.service": "PgBouncer",
    "patroni.service": "PostgreSQL",
    "etcd.service": "etcd",
}
TIER_ORDER = ("nginx", "app", "HAProxy", "PgBouncer", "PostgreSQL", "etcd", "other")
Reading = dict[str, float]  # "site/tier/host" -> CPU seconds so far
Meter = Callable[[], Reading]


class NotTheLab(RuntimeError):
    """The run does not target a running lab: no tier to read there."""


def tree_cpu(root: int | None) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants, living or reaped
    (a reaped child's time is in its parent's cutime + cstime: pgbench's backends have exited by the
    time it is read, and their time went to the postmaster)."""
    if root is None:
        return 0.0
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = sum(int(x) for x in fields[11:15]) / TICK
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def _usage_s(group: Path) -> float | None:
    try:
        for line in (group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class Container:
    host: str
    site: str
    group: Path  # its cgroup v2 folder on this machine


def lab_containers(hosts: Iterable[tuple[str, str]]) -> list[Container]:
    """The running lab containers among (host, site), each with its cgroup folder."""
    pairs = list(hosts)
    if not pairs:
        return []
    res = subprocess.run(["podman", "inspect", "--format", "{{.Name}} {{.State.Running}} {{.State.CgroupPath}}",
                          *[h for h, _ in pairs]], capture_output=True, text=True, timeout=30)
    site_of = dict(pairs)
    base = UNIFIED if UNIFIED.is_dir() else Path("/sys/fs/cgroup")
    out = []
    for line in res.stdout.splitlines():
        name, running, path = [*line.split(" ", 2), "", ""][:3]
        if running == "true" and path and name in site_of and (base / path.lstrip("/")).is_dir():
            out.append(Container(name, site_of[name], base / path.lstrip("/")))
    return out


def read_containers(containers: Iterable[Container]) -> Reading:
    """CPU seconds so far of each tier's service on each host; what else the host ran is "other"."""
    reading: Reading = {}
    for c in containers:
        total = _usage_s(c.group)
        if total is None:
            continue
        known = 0.0
        for unit, tier in SERVICE_TIERS.items():
            used = _usage_s(c.group / "system.slice" / unit)
            if used is not None:
                reading[f"{c.site}/{tier}/{c.host}"] = used
                known += used
        reading[f"{c.site}/other/{c.host}"] = max(0.0, total - known)
    return reading


def lab_meter(inventory: Path | None = None, address: str | None = None) -> Meter:
    """A reading of the lab described by the inventory (default: the lab's); with `address`, only if
    that address is one of the lab's hosts (a run against another system reads nothing here)."""
    from dr.errors import DrError
    from dr.lab import load_inventory  # the inventory is the one say on hosts and sites

    try:
        inv = load_inventory(inventory)
    except (DrError, OSError) as exc:
        raise NotTheLab(f"no lab inventory to read the tiers from: {exc}") from exc
    if address is not None and address not in {h.address for h in inv.hosts.values()} | set(inv.hosts):
        raise NotTheLab(f"{address} is not a host of the lab's inventory")
    containers = lab_containers((h.name, h.site) for h in inv.hosts.values())
    if not containers:
        raise NotTheLab("no running lab container to read the tiers from (is the lab up? `make up`)")
    return lambda: read_containers(containers)


def local_meter(app_pid: int | None, db_pid: int | None) -> Meter:
    return lambda: {"local/app/kntc serve": tree_cpu(app_pid), "local/PostgreSQL/cluster": tree_cpu(db_pid)}


class Sampler:
    """Readings every `every` seconds in a thread, from start to stop, each stamped with the wall
    clock (the stages of a run say when they were measured in the same clock)."""

    def __init__(self, meter: Meter, every: float = 2.0) -> None:
        self.meter, self.every = meter, every
        self.samples: list[tuple[float, Reading]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tier-cpu", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), self.meter()))
            if self._stop.wait(self.every):
                self.samples.append((time.time(), self.meter()))
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def at(self, t: float) -> Reading:
        """The reading at wall time t, interpolated between the two samples around it."""
        if not self.samples:
            return {}
        before = max((s for s in self.samples if s[0] <= t), default=self.samples[0], key=lambda s: s[0])
        after = min((s for s in self.samples if s[0] >= t), default=self.samples[-1], key=lambda s: s[0])
        if after[0] <= before[0]:
            return dict(before[1])
        w = (t - before[0]) / (after[0] - before[0])
        return {k: before[1].get(k, 0.0) + w * (after[1].get(k, 0.0) - before[1].get(k, 0.0))
                for k in set(before[1]) | set(after[1])}


def per_tier(start: Reading, end: Reading, seconds: float, requests: int) -> list[dict[str, Any]]:
    """CPU per site and tier between two readings: seconds, cores on average, ms per request, and
    the hosts that used it."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key in sorted(set(start) | set(end)):
        site, tier, host = key.split("/", 2)
        used = max(0.0, end.get(key, 0.0) - start.get(key, 0.0))
        row = rows.setdefault((site, tier), {"site": site, "tier": tier, "cpu_s": 0.0, "hosts": {}})
        row["cpu_s"] += used
        if used > 0:
            row["hosts"][host] = round(used, 2)
    def order(site_tier: tuple[str, str]) -> tuple[str, int]:
        site, tier = site_tier
        return site, TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)

    out = []
    for _, row in sorted(rows.items(), key=lambda kv: order(kv[0])):
        if row["cpu_s"] <= 0:
            continue
        row["cores"] = round(row["cpu_s"] / seconds, 3) if seconds > 0 else None
        row["ms_per_request"] = round(1000 * row["cpu_s"] / requests, 3) if requests else None
        row["cpu_s"] = round(row["cpu_s"], 2)
        out.append(row)
    return out


def stage_tiers(sampler: Sampler, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each measured stage's CPU per tier, over the window its latency figures were taken in."""
    out = []
    for s in stages:
        window = s.get("window")
        if not s.get("measured") or not window:
            continue
        t0, t1 = window
        out.append({"label": s["label"], "kind": s["kind"], "rps": s["rps"], "requests": s["requests"],
                    "seconds": round(t1 - t0, 1),
                    "tiers": per_tier(sampler.at(t0), sampler.at(t1), t1 - t0, s["requests"])})
    return out


def fitted(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each site and tier's CPU split into what it uses at any rate and what each request adds: a
    least-squares line of cores against req/s over the measured stages.

    At the lab's rates most of a database host's CPU is its own steady work (Patroni, replication to
    the standby and to the other site, archiving, the exporters), which CPU per request divides among
    few requests; sizing a busy day from that figure counts the steady work once per request. The
    line's slope is what a request costs, its intercept what the tier costs idle; both are None when
    the stages do not tell them apart (fewer than two distinct rates)."""
    measured = [s for s in stages if s.get("rps")]
    cores = [{(r["site"], r["tier"]): r["cores"] or 0.0 for r in s["tiers"]} for s in measured]
    keys = sorted({k for c in cores for k in c},
                  key=lambda k: (k[0], TIER_ORDER.index(k[1]) if k[1] in TIER_ORDER else len(TIER_ORDER)))
    out = []
    for site, tier in keys:
        # A tier that used no CPU in a stage is absent from it: it used 0 cores there.
        xy = [(float(s["rps"]), c.get((site, tier), 0.0)) for s, c in zip(measured, cores, strict=True)]
        try:
            slope, intercept = statistics.linear_regression([x for x, _ in xy], [y for _, y in xy])
        except statistics.StatisticsError:  # fewer than two stages, or all at one rate
            out.append({"site": site, "tier": tier, "stages": len(xy), "fixed_cores": None,
                        "ms_per_added_request": None})
            continue
        out.append({"site": site, "tier": tier, "stages": len(xy), "fixed_cores": round(intercept, 3),
                    "ms_per_added_request": round(1000 * slope, 3)})
    return out


def cores_at(fit: dict[str, Any], rps: float) -> float | None:
    """The cores a tier would use at `rps`, by its fitted line (None when it has none)."""
    if fit["fixed_cores"] is None or fit["ms_per_added_request"] is None:
        return None
    return max(0.0, fit["fixed_cores"]) + max(0.0, fit["ms_per_added_request"]) * rps / 1000


def write(folder: Path, sampler: Sampler, source: str) -> dict[str, Any] | None:
    """tiers.json in the run folder: the whole run's and each stage's CPU per tier."""
    stages_file = folder / "stages.json"
    stages = json.loads(stages_file.read_text()).get("stages", []) if stages_file.exists() else []
    if len(sampler.samples) < 2:
        return None
    (t0, first), (t1, last) = sampler.samples[0], sampler.samples[-1]
    doc = {"source": source, "sampled_every_s": sampler.every,
           "run": {"seconds": round(t1 - t0, 1), "tiers": per_tier(first, last, t1 - t0, 0)},
           "stages": stage_tiers(sampler, stages)}
    doc["fitted"] = fitted(doc["stages"])
    (folder / "tiers.json").write_text(json.dumps(doc, indent=1))
    return doc


def markdown(doc: dict[str, Any]) -> list[str]:
    """The summary's section: per stage, each tier's cores and CPU ms per request."""
    L = ["## CPU theo tầng / CPU per tier",
         f"Source: {doc['source']}. CPU milliseconds per request answered in the stage's measured window "
         "(every request the generator sent, all endpoints), and the cores the tier used on average.", ""]
    for s in doc["stages"]:
        L.append(f"**{s['label']}** ({s['kind']}, {s['rps']} req/s over {s['seconds']} s):")
        L.append("")
        L.append("| site | tier | cores | CPU ms / request | hosts (CPU s) |")
        L.append("|---|---|---:|---:|---|")
        for r in s["tiers"]:
            hosts = ", ".join(f"{h} {v}" for h, v in sorted(r["hosts"].items()))
            ms = f"{r['ms_per_request']:.2f}" if r["ms_per_request"] is not None else "–"
            L.append(f"| {r['site']} | {r['tier']} | {r['cores']:.2f} | {ms} | {hosts} |")
        L.append("")
    if not doc["stages"]:
        L += ["No stage was measured: see tiers.json for the whole run.", ""]
        return L
    L += fitted_markdown(fitted(doc["stages"]))
    return L


def fitted_markdown(fits: list[dict[str, Any]], target_rps: float | None = None,
                    utilisation: float = 0.6) -> list[str]:
    """Each tier's fixed cores and CPU per added request, and what the busy day's rate would need."""
    rate = target_rps if target_rps is not None else Model().scenario(SCENARIOS["busy"])["total_rps"]
    L = ["### CPU cố định và theo yêu cầu / Fixed and per-request CPU",
         "A line fitted over the stages (cores against req/s): what each tier uses at any rate (its "
         "steady work) and what each added request costs. CPU per request above divides the steady work "
         f"among the stage's requests; the busy day's {rate:,.0f} req/s is sized from the line, at "
         f"{utilisation:.0%} of each core.", "",
         "| site | tier | stages | fixed cores | CPU ms / added request | cores at the busy day | "
         f"cores to buy ({utilisation:.0%}) |", "|---|---|---:|---:|---:|---:|---:|"]
    for f in fits:
        at = cores_at(f, rate)
        fixed = f"{f['fixed_cores']:.2f}" if f["fixed_cores"] is not None else "–"
        ms = f"{f['ms_per_added_request']:.2f}" if f["ms_per_added_request"] is not None else "–"
        need = f"{at:,.1f}" if at is not None else "–"
        buy = f"{at / utilisation:,.1f}" if at is not None else "–"
        L.append(f"| {f['site']} | {f['tier']} | {f['stages']} | {fixed} | {ms} | {need} | {buy} |")
    L.append("")
    return L


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="One reading of the lab's CPU per site and tier.")
    p.add_argument("--inventory", type=Path, help="Ansible inventory (default: the lab's)")
    args = p.parse_args(argv)
    try:
        reading = lab_meter(args.inventory)()
    except NotTheLab as exc:
        print(f"tiers: {exc}", file=sys.stderr)
        return 2
    rows = per_tier({}, reading, 0, 0)
    for r in rows:
        print(f"{r['site']:4} {r['tier']:11} {r['cpu_s']:10.1f} s  " +
              ", ".join(f"{h} {v}" for h, v in sorted(r["hosts"].items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
