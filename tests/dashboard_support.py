"""A Prometheus of the Debian package serving the monitoring role's console templates from figures
of a known state of the two sites, backfilled with promtool: no lab needed.

The state: the DC leads (dc-db1, dc-db2 its synchronous standby, dc-db3 1 MiB behind, etcd leader
dc-db2), the DR's standby leader dr-db1 replays 48 MiB behind, the DR's etcd member on dr-backup1
is down, the DC's app answers 50 requests a second with 1 % server errors and a p95 of 375 ms, and
the DR repository's last incremental backup failed and is overdue (the KntcBackupFailed alert fires).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import httpx
import jinja2

from tests.conftest import ROOT, free_port, stop

ROLE = ROOT / "infra/ansible/roles/monitoring"
PROMETHEUS = ROOT / ".tools/prometheus"
PROMTOOL = ROOT / ".tools/promtool"

STEP = 15
HISTORY = 40 * 60
LAG_BYTES = 48 * 1024 * 1024
LAG_SECONDS = 40
HOUR = 3600
# repo -> (site, host, {type: (age of the last good backup, allowed age, last result)}, verified ago)
BACKUPS = {
    "1": ("dc", "dc-backup1", {"full": (26 * HOUR, 8 * 24 * HOUR, 1), "diff": (5 * HOUR, 2 * 24 * HOUR, 1),
                               "incr": (40 * 60, 2 * HOUR, 1)}, 20 * HOUR),
    "2": ("dr", "dr-backup1", {"full": (74 * HOUR, 8 * 24 * HOUR, 1), "diff": (20 * HOUR, 2 * 24 * HOUR, 1),
                               "incr": (3 * HOUR, 2 * HOUR, 0)}, None),
}
# How far each member replays behind the primary (dc-db1), in bytes.
BEHIND = {"dc-db1": 0, "dc-db2": 0, "dc-db3": 1024 * 1024, "dr-db1": LAG_BYTES, "dr-db2": LAG_BYTES + 4096}
DB = {"dc-db1": "dc", "dc-db2": "dc", "dc-db3": "dc", "dr-db1": "dr", "dr-db2": "dr"}
ETCD = {**DB, "dr-backup1": "dr"}
APPS = {"dc-app1": "dc", "dc-app2": "dc", "dr-app1": "dr"}
# Requests a second by host: (200, 500); with the latency spread of SPREAD (80 % under 100 ms...).
TRAFFIC = {"dc-app1": (24.0, 0.5), "dc-app2": (25.5, 0.0), "dr-app1": (1.0, 0.0)}
SPREAD = {"dc": {"0.1": 0.8, "0.25": 0.9, "0.5": 1.0, "1.0": 1.0, "+Inf": 1.0},
          "dr": {"0.1": 1.0, "0.25": 1.0, "0.5": 1.0, "1.0": 1.0, "+Inf": 1.0}}


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics(now: float) -> str:
    """The figures every 15 s over the last 40 minutes, as scraped from each target."""
    times = [now - HISTORY + i * STEP for i in range(HISTORY // STEP + 1)]
    families: dict[str, list[tuple[str, object]]] = {}

    def series(name: str, labels: dict[str, str], value: object) -> None:
        """value: a number, or a function of the sample's time and index."""
        families.setdefault(name, []).append((_labels(**labels), value))

    for host, site in DB.items():
        t = {"job": "patroni", "site": site, "instance": host, "scope": f"kntc-{site}"}
        series("up", {"job": "patroni", "site": site, "instance": host}, 1)
        series("up", {"job": "postgres", "site": site, "instance": host}, 1)
        series("patroni_postgres_running", t, 1)
        series("patroni_primary", t, int(host == "dc-db1"))
        series("patroni_standby_leader", t, int(host == "dr-db1"))
        series("patroni_replica", t, int(host not in ("dc-db1", "dr-db1")))
        series("patroni_sync_standby", t, int(host == "dc-db2"))
        series("patroni_postgres_timeline", t, 3)
        # As Patroni reports them: every member every figure, 0 where it does not apply.
        primary = host == "dc-db1"
        series("patroni_xlog_location", t, (lambda ts, i: 5_000_000_000 + i * 200_000) if primary else 0)
        replayed = (lambda ts, i, b=BEHIND[host]: 5_000_000_000 + i * 200_000 - b) if not primary else 0
        series("patroni_xlog_received_location", t, replayed)
        series("patroni_xlog_replayed_location", t, replayed)
        series("patroni_xlog_replayed_timestamp", t, (lambda ts, i: ts - LAG_SECONDS) if not primary else 0)
    for host, site in ETCD.items():
        t = {"job": "etcd", "site": site, "instance": host}
        series("up", t, int(host != "dr-backup1"))
        if host != "dr-backup1":
            series("etcd_server_has_leader", t, 1)
            series("etcd_server_is_leader", t, int(host in ("dc-db2", "dr-db2")))
    for host, site in APPS.items():
        for job in ("app", "haproxy", "node"):
            series("up", {"job": job, "site": site, "instance": host}, 1)
        series("probe_success", {"job": "https", "site": site, "instance": host, "probe": "app"}, 1)
        series("haproxy_backend_active_servers",
               {"job": "haproxy", "site": site, "instance": host, "proxy": "primary"}, int(site == "dc"))
        t = {"job": "app", "site": site, "instance": host, "route": "/api/cases", "method": "GET"}
        ok, failed = TRAFFIC[host]
        for status, per_second in (("200", ok), ("500", failed)):
            series("kntc_http_requests_total", {**t, "status": status}, lambda ts, i, r=per_second: i * STEP * r)
        for le, share in SPREAD[site].items():
            series("kntc_http_request_duration_seconds_bucket", {**t, "le": le},
                   lambda ts, i, r=(ok + failed) * share: i * STEP * r)
    for repo, (site, host, types, verified_ago) in BACKUPS.items():
        node = {"job": "node", "site": site, "instance": host, "stanza": "kntc"}
        series("up", {"job": "node", "site": site, "instance": host}, 1)
        for kind, (age, allowed, result) in types.items():
            lab = {**node, "repo": repo, "type": kind}
            series("kntc_backup_last_success_timestamp_seconds", lab, round(now - age))
            series("kntc_backup_max_age_seconds", lab, allowed)
            series("kntc_backup_last_result", lab, result)
        if verified_ago is not None:
            series("kntc_restore_verify_last_timestamp_seconds", {**node, "repo": repo}, round(now - verified_ago))
            series("kntc_restore_verify_last_result", {**node, "repo": repo}, 1)
        # What the archive guard on each database host says of this repository.
        series("kntc_archive_repo_enabled", {"job": "node", "site": "dc", "instance": "dc-db1", "repo": repo,
                                             "repo_host": host}, 1)
    lines = []
    for name, members in families.items():
        lines.append(f"# TYPE {name} gauge")
        for labels, value in members:
            for i, ts in enumerate(times):
                v = value(ts, i) if callable(value) else value
                lines.append(f"{name}{labels} {v} {ts:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def expected_rules() -> str:
    """The role's own template of what the rules compare with, for a DC-primary inventory."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined,
                             autoescape=False)  # noqa: S701 - YAML, not HTML
    return env.get_template("expected.rules.yml.j2").render(
        ansible_managed="test", kntc_sites=["dc", "dr"], kntc_primary_site="dc", monitoring_expected_sync_standbys=1)


@dataclass
class Dashboard:
    url: str
    log: Path


@contextmanager
def backfilled_prometheus(work: Path) -> Iterator[Dashboard]:
    """Prometheus on a loopback port with the role's consoles and rules over the backfilled state,
    once its rules have run (the alert that fires, the recording rules the pages read)."""
    for tool in (PROMETHEUS, PROMTOOL):
        if not tool.exists():
            raise RuntimeError(f"{tool.name} is missing: run infra/host/install-deps.sh (make deps)")
    data = work / "data"
    data.mkdir(parents=True)
    (work / "figures.om").write_text(openmetrics(time.time()))
    subprocess.run([str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(work / "figures.om"), str(data)],
                   check=True, capture_output=True, timeout=120)
    (work / "expected.yml").write_text(expected_rules())
    (work / "prometheus.yml").write_text(
        "global: {evaluation_interval: 1s}\n"
        f"rule_files: ['{ROLE / 'files/rules/kntc.rules.yml'}', '{work / 'expected.yml'}']\n")
    port = int(os.environ.get("KNTC_TEST_PROMETHEUS_PORT") or free_port())
    log = work / "prometheus.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}",
             f"--web.console.templates={ROLE / 'files/consoles'}",
             f"--web.console.libraries={ROLE / 'files/console_libraries'}"],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_rules(url, proc, log)
        yield Dashboard(url=url, log=log)
    finally:
        stop(proc)


def _wait_for_rules(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until the state's alert fires and every rule group has run again after it: the groups run on
    clocks of their own, and the first runs after start see none of the backfilled figures yet."""
    end = time.monotonic() + timeout
    fired_at: float | None = None
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
        try:
            if fired_at is None:
                r = httpx.get(f"{url}/api/v1/query", timeout=5,
                              params={"query": 'ALERTS{alertname="KntcBackupFailed", alertstate="firing"}'})
                if r.status_code == 200 and r.json()["data"]["result"]:
                    fired_at = time.time()
            else:
                groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
                if all(_unix(g["lastEvaluation"]) > fired_at for g in groups):
                    return
        except (httpx.TransportError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prometheus did not evaluate its rules in {timeout:.0f} s: {log.read_text()[-2000:]}")


def _unix(rfc3339: str) -> float:
    """Prometheus's UTC times ('2026-12-02T13:40:13.2095Z') in seconds since the epoch."""
    whole, _, fraction = rfc3339.removesuffix("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")


class _Rows(HTMLParser):
    """Each table row's cells as text, under the page part it is in: the id of the site's box
    (site-dc), else the heading above the table (its Vietnamese words)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.part = ""
        self._heading: list[str] | None = None
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id") or ""
        if tag == "div" and ident.startswith("site-"):
            self.part = ident
        elif tag in ("h1", "h2") and not self.part.startswith("site-"):
            self._heading = []
        elif tag == "tr":
            self._cells = []
        elif tag in ("td", "th") and self._cells is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._heading is not None:
            self.part = " ".join("".join(self._heading).split())
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None and self._cells is not None:
            self._cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._cells is not None:
            self.rows.append((self.part, self._cells))
            self._cells = None
        elif tag == "div" and self.part.startswith("site-"):
            self.part = ""

    def handle_data(self, data: str) -> None:
        for sink in (self._heading, self._cell):
            if sink is not None:
                sink.append(data)


def rows(html: str) -> list[tuple[str, list[str]]]:
    parser = _Rows()
    parser.feed(html)
    return parser.rows


def cell(html: str, part: str, first: str) -> str:
    """The second cell of the row whose first cell starts with `first`, in the part of the page."""
    found = [c for p, c in rows(html) if p.startswith(part) and c and c[0].startswith(first)]
    assert found, f"no row {first!r} in {part!r}: {[(p, c[:1]) for p, c in rows(html)]}"
    return found[0][1]


def seconds(text: str) -> float:
    """A duration as humanizeDuration writes it ("46.06s", "1m 2s") in seconds."""
    m = re.fullmatch(r"(?:(\d+)m )?(\d+(?:\.\d+)?)s", text)
    assert m, f"not a duration: {text!r}"
    return int(m[1] or 0) * 60 + float(m[2])
