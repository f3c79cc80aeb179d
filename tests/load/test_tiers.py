"""CPU per tier (loadtests/tiers.py): what a load run reports as each tier's cores and CPU per
request. Readings are real files and processes: a control-group tree laid out as a container's
systemd lays it out, and processes that burn CPU and end. The busy day is sized from a line fitted over
the stages (a tier's steady CPU told apart from what a request adds), not from CPU per request, which at
the lab's low rates divides a database host's steady work among few requests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests import tiers
from loadtests.capacity import SCENARIOS, Model


def cgroup(folder: Path, usage_usec: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\n"
                                     f"system_usec {usage_usec // 2}\nnice_usec 0\n")


def test_a_hosts_services_are_its_tiers_and_the_rest_is_other(tmp_path: Path) -> None:
    app, db = tmp_path / "libpod-app", tmp_path / "libpod-db"
    cgroup(app, 10_000_000)
    cgroup(app / "system.slice" / "nginx.service", 2_000_000)
    cgroup(app / "system.slice" / "kntc.service", 5_000_000)
    cgroup(app / "system.slice" / "pgbouncer.service", 500_000)
    cgroup(db, 4_000_000)
    cgroup(db / "system.slice" / "patroni.service", 3_500_000)
    reading = tiers.read_containers([tiers.Container("dc-app1", "dc", app), tiers.Container("dc-db1", "dc", db)])
    assert reading == pytest.approx({"dc/nginx/dc-app1": 2.0, "dc/app/dc-app1": 5.0, "dc/PgBouncer/dc-app1": 0.5,
                                     "dc/other/dc-app1": 2.5, "dc/PostgreSQL/dc-db1": 3.5, "dc/other/dc-db1": 0.5})
    # A container that stopped between two readings is left out, not an error.
    gone = tiers.read_containers([tiers.Container("dc-app2", "dc", tmp_path / "libpod-gone")])
    assert gone == {}


def test_each_stage_gets_the_cpu_of_its_own_window_per_request() -> None:
    sampler = tiers.Sampler(lambda: {})
    # Two tiers read every 10 s: the app uses 1 core, PostgreSQL half of one.
    sampler.samples = [(1000.0 + 10 * i, {"dc/app/dc-app1": 10.0 * i, "dc/PostgreSQL/dc-db1": 5.0 * i})
                       for i in range(7)]
    stages = [{"label": "warm-up", "kind": "warmup", "measured": False, "rps": 0, "requests": 0},
              {"label": "busy day", "kind": "target", "measured": True, "rps": 200.0, "requests": 4000,
               "window": [1015.0, 1035.0]}]
    [busy] = tiers.stage_tiers(sampler, stages)
    rows = {r["tier"]: r for r in busy["tiers"]}
    assert busy["seconds"] == 20.0 and list(rows) == ["app", "PostgreSQL"]  # the order of the request path
    assert rows["app"]["cpu_s"] == pytest.approx(20.0) and rows["app"]["cores"] == pytest.approx(1.0)
    assert rows["app"]["ms_per_request"] == pytest.approx(5.0)
    assert rows["PostgreSQL"]["cores"] == pytest.approx(0.5) and rows["PostgreSQL"]["hosts"] == {"dc-db1": 10.0}
    text = "\n".join(tiers.markdown({"source": "test", "stages": [busy]}))
    assert "| dc | app | 1.00 | 5.00 | dc-app1 20.0 |" in text and "| dc | PostgreSQL | 0.50 | 2.50 |" in text


def test_a_process_tree_counts_the_children_that_already_ended() -> None:
    # A parent that runs a child burning about half a second, waits for it, then sleeps: the child is
    # gone when the tree is read, its time is in the parent's.
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {burn!r}]); "
                               "print('done', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "done"
        meter = tiers.local_meter(parent.pid, None)
        reading = meter()
        assert reading["local/app/kntc serve"] >= 0.45 and reading["local/PostgreSQL/cluster"] == 0.0
    finally:
        parent.kill()
        parent.wait()


def test_the_sampler_reads_until_it_is_stopped() -> None:
    count = {"n": 0}

    def meter() -> tiers.Reading:
        count["n"] += 1
        return {"local/app/x": float(count["n"])}

    with tiers.Sampler(meter, every=0.05) as sampler:
        time.sleep(0.3)
    n = len(sampler.samples)
    # One reading when it starts and one when it stops, whatever a busy machine gave it between.
    assert n >= 2 and sampler.samples[-1][1]["local/app/x"] == n
    time.sleep(0.1)
    assert len(sampler.samples) == n  # stopped


def test_a_run_against_something_other_than_the_lab_reads_no_lab_tiers() -> None:
    # Before the lab is made there is no inventory to read at all: the same refusal.
    with pytest.raises(tiers.NotTheLab, match=r"not a host of the lab|no lab inventory"):
        tiers.lab_meter(address="192.0.2.10")


def test_the_command_without_a_lab_says_so_in_one_line(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "loadtests.tiers", "--inventory", str(tmp_path / "none.yml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("tiers: no lab inventory") and len(res.stderr.strip().splitlines()) == 1


def stage(rps: float, **cores: float) -> dict:
    """A measured stage at `rps` whose DC tiers used these cores."""
    return {"label": f"{rps} req/s", "kind": "probe", "rps": rps, "requests": int(rps * 60), "seconds": 60.0,
            "tiers": [{"site": "dc", "tier": tier, "cores": c, "cpu_s": c * 60, "ms_per_request": None, "hosts": {}}
                      for tier, c in cores.items()]}


def test_the_line_separates_the_steady_work_from_the_cost_of_a_request() -> None:
    # A leader that uses 0.4 cores idle and 3 ms per request; an app with no steady work, 1 ms each;
    # at the lowest rate the app's CPU rounded to nothing and it is absent from that stage.
    stages = [stage(20, PostgreSQL=0.46), stage(50, PostgreSQL=0.55, app=0.05), stage(80, PostgreSQL=0.64, app=0.08)]
    fits = {f["tier"]: f for f in tiers.fitted(stages)}
    assert fits["PostgreSQL"]["fixed_cores"] == pytest.approx(0.4, abs=1e-3)
    assert fits["PostgreSQL"]["ms_per_added_request"] == pytest.approx(3.0, abs=1e-3)
    assert fits["app"]["stages"] == 3
    # CPU per request at 20 req/s says 23 ms; the line says 3 ms and 0.4 cores: 11.9 cores at 3,830 req/s.
    assert tiers.cores_at(fits["PostgreSQL"], 3830) == pytest.approx(0.4 + 3.0 * 3.83, abs=1e-3)


def test_one_rate_tells_nothing_apart_and_says_so() -> None:
    fits = tiers.fitted([stage(20, PostgreSQL=0.46), stage(20, PostgreSQL=0.47)])
    assert fits == [{"site": "dc", "tier": "PostgreSQL", "stages": 2, "fixed_cores": None,
                     "ms_per_added_request": None}]
    assert tiers.cores_at(fits[0], 3830) is None
    assert "| dc | PostgreSQL | 2 | – | – | – | – |" in tiers.fitted_markdown(fits)


def test_the_report_sizes_the_busy_day_from_the_line() -> None:
    doc = {"source": "test", "stages": [stage(20, PostgreSQL=0.46), stage(80, PostgreSQL=0.64)]}
    text = "\n".join(tiers.markdown(doc))
    # The busy day's rate is the capacity model's, whatever it says today.
    rate = Model().scenario(SCENARIOS["busy"])["total_rps"]
    cores = 0.4 + 3.0 * rate / 1000
    assert f"the busy day's {rate:,.0f} req/s is sized from the line" in text
    assert f"| dc | PostgreSQL | 2 | 0.40 | 3.00 | {cores:,.1f} | {cores / 0.6:,.1f} |" in text
