"""The two-site lab for the infrastructure tests.

The session fixture `lab` brings the lab up with `infra/lab/lab.py up` unless every host already
runs and the last provisioning succeeded (infra/lab/.state/provisioned), and hands out testinfra
hosts built from the lab inventory (SSH with the generated key).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from dr.errors import NotInTime
from dr.sites.state import wait_until
from tests.figures import FIGURES, record  # noqa: F401  (the lab tests import them from here)

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "infra" / "lab" / "lab.py"
STATE = REPO / "infra" / "lab" / ".state"
ANSIBLE_DIR = REPO / "infra" / "ansible"
INVENTORY = ANSIBLE_DIR / "inventories" / "lab" / "hosts.yml"
VENV_BIN = REPO / ".venv" / "bin"
CA = STATE / "pki" / "ca.crt"
# testinfra's ansible backend runs ansible-inventory: use the venv's.
os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"



def _lab_module():
    """infra/lab/lab.py, whose tables (hosts: site, address, tiers; sites: network, gateway) build
    the containers and write the inventory: read here rather than copied."""
    spec = importlib.util.spec_from_file_location("kntc_lab", LAB)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LAB_MODULE = _lab_module()
# lab.py itself, for a test of what it does to this machine (the hosts' CPU weight).
LAB_MODULE = _LAB_MODULE
HOSTS: dict[str, tuple[str, str, tuple[str, ...]]] = _LAB_MODULE.HOSTS
# Where the tests connect from: the control node's address on each site's network.
CONTROL_NODE = {site: gateway for site, (_, _, gateway) in _LAB_MODULE.SITES.items()}
# The lab's PostgreSQL binaries, of the major version the inventory names (read once, by lab.py).
PG_BIN = f"/usr/lib/postgresql/{_LAB_MODULE.PG_VERSION}/bin"
# The site balancer's HTTPS entry, as the haproxy role sets it.
WEB_PORT = int(yaml.safe_load((ANSIBLE_DIR / "roles" / "haproxy" / "defaults" / "main.yml").read_text())
               ["haproxy_web_port"])


def _named(site: str, tier: str) -> list[str]:
    return [name for name, (s, _, tiers) in HOSTS.items() if s == site and tier in tiers]


DC_DB = _named("dc", "database")
DR_DB = _named("dr", "database")
DC_APP = _named("dc", "app")
DR_APP = _named("dr", "app")
ETCD = _named("dc", "etcd") + _named("dr", "etcd")
MONITORS = _named("dc", "monitoring") + _named("dr", "monitoring")
ADDR = {name: address for name, (_, address, _) in HOSTS.items()}
ALL_HOSTS = list(ADDR)

def secret(name: str) -> str:
    return (STATE / "secrets" / name).read_text().strip()


def lab_running() -> bool:
    r = subprocess.run([str(LAB), "status"], capture_output=True, text=True)
    lines = [ln.split() for ln in r.stdout.splitlines() if ln.split() and ln.split()[0] in ADDR]
    return r.returncode == 0 and len(lines) == len(ADDR) and all(ln[3] == "running" for ln in lines)


def lab_ready() -> bool:
    return lab_running() and (STATE / "provisioned").exists()


# The lab brought up in the background while the tests that do not need it run (see start_early).
EARLY_LOG = REPO / "test-output" / "lab-up.log"
SECOND_RUN_LOG = REPO / "test-output" / "lab-second-run.log"
EARLY_TIMEOUT = 3600
SECOND_RUN_TIMEOUT = 1800
_early: dict[str, object] = {}


def start_early() -> None:
    """Bring the lab up now (`lab.py up`, its output in test-output/lab-up.log), then run site.yml on
    it once more for the idempotence test, if the lab is not ready.

    Provisioning waits on fifteen hosts and the unit, integration and browser tests leave much of
    the machine idle, so the two overlap; the `lab` fixture waits for the bring-up when the first
    lab test needs it. The lab tests marked `readonly` change nothing site.yml manages, so they run
    while the second run goes on; every other lab test waits for it (wait_for_second_run).
    KNTC_LAB_EARLY=0 brings the lab up only then, in the foreground.
    """
    if _early or os.environ.get("KNTC_LAB_EARLY", "1") == "0" or lab_ready():
        return
    EARLY_LOG.parent.mkdir(exist_ok=True)
    _early["started"] = time.monotonic()
    _early["up"] = threading.Event()
    thread = threading.Thread(target=_bring_up, name="lab-early", daemon=True)
    _early["thread"] = thread
    thread.start()
    # A session that ends before any lab test (-x, an interrupt) leaves no provisioning behind it.
    atexit.register(_stop_early)


def _bring_up() -> None:
    up = _early["up"]
    assert isinstance(up, threading.Event)
    try:
        with EARLY_LOG.open("w") as out:
            proc = subprocess.Popen([str(LAB), "up"], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=REPO)
            _early["proc"] = proc
            _early["rc"] = proc.wait()
        _early["ready"] = time.monotonic()
    finally:
        up.set()
    if _early.get("rc") == 0 and not _early.get("stopping"):
        try:
            _early["second_run"] = second_site_run(background=True)
            FIGURES.setdefault("site.yml run once more in the background, beside the read-only lab checks (s)",
                               []).append(time.monotonic() - float(_early["ready"]))
        except (subprocess.SubprocessError, OSError) as exc:  # the idempotence test runs it itself
            print(f"\nlab: the second site.yml run in the background could not start: {exc}")


def _stop_early() -> None:
    _early["stopping"] = True
    proc = _early.get("proc")
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _left(budget: float) -> float:
    return max(1.0, budget - (time.monotonic() - float(_early["started"])))


def _wait_for_early() -> None:
    """Wait for the background bring-up (not for the second run after it)."""
    up = _early.get("up")
    if not isinstance(up, threading.Event) or _early.get("waited"):
        return
    _early["waited"] = True
    if not up.wait(_left(EARLY_TIMEOUT)):
        _stop_early()
        up.wait(60)
    rc = _early.get("rc", -1)
    took = float(_early.get("ready", time.monotonic())) - float(_early["started"])
    if rc == 0:
        FIGURES.setdefault("lab brought up in the background, beside the other tests (s)", []).append(took)
    tail = EARLY_LOG.read_text(errors="replace").splitlines()[-25:]
    print(f"\nlab: brought up in the background, exit {rc} after {took:.0f} s (log: {EARLY_LOG})\n"
          + "\n".join(tail))


def wait_for_second_run() -> None:
    """Wait until the background bring-up and the second site.yml run after it have both ended: a lab
    test that changes the lab (a drill, a playbook) would otherwise race site.yml, and the
    idempotence test would count its change. Bounded by the bring-up's budget and the run's own."""
    thread = _early.get("thread")
    if not isinstance(thread, threading.Thread):
        return
    _wait_for_early()
    thread.join(_left(EARLY_TIMEOUT + SECOND_RUN_TIMEOUT))
    if thread.is_alive():
        _stop_early()
        thread.join(60)


def second_site_run(background: bool = False) -> subprocess.CompletedProcess:
    """site.yml once more over the provisioned lab, with the same inputs as the run that provisioned
    it: the release deployed now, not a newer commit someone made since (that would be a legitimate
    change). In the background right after the bring-up, or by the idempotence test itself."""
    deployed = subprocess.run(["podman", "exec", "dc-app1", "readlink", "/opt/kntc/current"],
                              capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    args = [str(VENV_BIN / "ansible-playbook"), "-i", "inventories/lab", "site.yml",
            "-e", f"app_release={deployed.rsplit('/', 1)[-1]}"]
    # Each task's start, timestamped, in test-output/: where a run that changes nothing spends its time.
    SECOND_RUN_LOG.parent.mkdir(exist_ok=True)
    SECOND_RUN_LOG.unlink(missing_ok=True)
    proc = subprocess.Popen(args, cwd=ANSIBLE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "ANSIBLE_LOG_PATH": str(SECOND_RUN_LOG)})
    if background:
        _early["proc"] = proc
    try:
        out, err = proc.communicate(timeout=SECOND_RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def early_second_run() -> subprocess.CompletedProcess | None:
    """The second site.yml run made in the background after this session's bring-up, if there was one."""
    wait_for_second_run()
    run = _early.pop("second_run", None)
    return run if isinstance(run, subprocess.CompletedProcess) else None


@pytest.fixture(scope="session")
def lab() -> Path:
    _wait_for_early()
    # Not ready after a background bring-up that failed: once more in the foreground, as without one.
    if not lab_ready():
        subprocess.run([str(LAB), "up"], check=True)
    return INVENTORY


@pytest.fixture(scope="session")
def hosts(lab: Path) -> Callable:
    import testinfra

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = testinfra.get_host(f"ansible://{name}?ansible_inventory={lab}")
        return cache[name]

    return get


def run_playbook(playbook: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "inventories/lab", playbook, *args],
        cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=timeout,
    )


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    """The site commands' own deadline (`dr.sites.state.wait_until`), failing the test instead."""
    try:
        return wait_until(check, timeout, what, interval)
    except NotInTime as exc:
        pytest.fail(str(exc))


def monitoring_client() -> httpx.Client:
    """As an operator with a certificate of the platform's CA (the lab's control node holds them)."""
    pki = STATE / "pki"
    tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    tls.load_cert_chain(str(pki / "dc-mon1.crt"), str(pki / "dc-mon1.key"))
    return httpx.Client(verify=tls, timeout=15)


def active_alerts(monitor: str, name: str) -> list[dict]:
    """The alerts of that name active in the monitoring host's Alertmanager."""
    with monitoring_client() as c:
        r = c.get(f"https://{ADDR[monitor]}:9093/api/v2/alerts", params={"filter": f'alertname="{name}"'})
    r.raise_for_status()
    return [a for a in r.json() if a["status"]["state"] == "active"]


def query(monitor: str, promql: str) -> list[dict]:
    """An instant query to the monitoring host's Prometheus."""
    with monitoring_client() as c:
        r = c.get(f"https://{ADDR[monitor]}:9090/api/v1/query", params={"query": promql})
    r.raise_for_status()
    return r.json()["data"]["result"]


def patroni_members(host) -> list[dict]:
    out = host.check_output("patronictl -c /etc/patroni/config.yml list -f json")
    return json.loads(out)

def dc_leader(hosts) -> str:
    """The DC member holding the leader lock, asked of each member in turn (one may be the victim)."""
    for name in DC_DB:
        try:
            lead = [m["Member"] for m in patroni_members(hosts(name)) if m["Role"] == "Leader"]
        except Exception as exc:  # that member's host may be the one just killed
            print(f"{name}: patronictl failed: {exc}")
            continue
        if lead:
            return lead[0]
    raise AssertionError("no DC leader")


def dc_healthy(hosts) -> bool:
    """Three running members, one leader and a synchronous standby: ready for a failover trial."""
    members = patroni_members(hosts(DC_DB[0]))
    roles = sorted(m["Role"] for m in members)
    return (len(members) == 3 and roles.count("Leader") == 1 and "Sync Standby" in roles
            and all(m["State"] in ("running", "streaming") for m in members))


def podman(*args: str) -> subprocess.CompletedProcess:
    """Podman with the lab's own settings (the containers' stop timeout, the lab's storage)."""
    env = dict(os.environ, CONTAINERS_CONF=str(STATE / "containers.conf"))
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, env=env)
