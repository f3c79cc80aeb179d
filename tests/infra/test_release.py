"""A rolling release of the case service across the DC's app hosts (release_app.yml) while officers
read through the site balancers: each host is drained at every balancer, restarted on the release
and returned only once it answers /healthz, and no officer's request fails. A release that does not
come up is rolled back on its first host by itself, the play stops there, and the second host never
leaves the release it had.

The releases are real commits made for the test without touching the checkout: the same tree as
HEAD under another commit (a new release id), and that tree with a case service that cannot start."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from .conftest import DC_APP, REPO, WEB_PORT, run_playbook, wait_for
from .officers import officers_reading

pytestmark = pytest.mark.lab


def git(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], env=env, input=stdin, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def commit(message: str, broken: bool, index: str) -> str:
    """A commit object on top of HEAD (no branch moves, the working tree is left alone)."""
    env = {**os.environ, "GIT_INDEX_FILE": index, "GIT_AUTHOR_NAME": "kntc test", "GIT_AUTHOR_EMAIL": "test@kntc.invalid",
           "GIT_COMMITTER_NAME": "kntc test", "GIT_COMMITTER_EMAIL": "test@kntc.invalid"}
    git("read-tree", "HEAD", env=env)
    if broken:
        source = git("show", "HEAD:core_app/app.py") + "\nraise RuntimeError('a release that cannot start')\n"
        blob = git("hash-object", "-w", "--stdin", stdin=source)
        git("update-index", "--cacheinfo", f"100644,{blob},core_app/app.py", env=env)
    tree = git("write-tree", env=env)
    return git("commit-tree", tree, "-p", "HEAD", "-m", message, env=env)[:12]


def serving(hosts) -> dict[str, str]:
    return {h: hosts(h).check_output("readlink /opt/kntc/current").rsplit("/", 1)[-1] for h in DC_APP}


def web_state(hosts, balancer: str) -> dict[str, str]:
    out = hosts(balancer).check_output("echo 'show stat' | nc -N -U /run/haproxy/admin.sock")
    return {f[1]: f[17] for f in (line.split(",") for line in out.splitlines()) if f[0] == "web" and f[1] in DC_APP}


def release(ref: str, *extra: str):
    return run_playbook("release_app.yml", "--limit", ",".join(DC_APP), "-e", f"app_git_ref={ref}", *extra,
                        timeout=900)


def test_a_release_drains_each_host_and_one_that_fails_rolls_back_by_itself(hosts, tmp_path):
    before = serving(hosts)
    assert len(set(before.values())) == 1, before
    original = next(iter(before.values()))
    good = commit("a release of the same tree", broken=False, index=str(tmp_path / "index"))
    broken = commit("a release that cannot start", broken=True, index=str(tmp_path / "index"))
    for b in DC_APP:
        wait_for(lambda b=b: set(web_state(hosts, b).values()) == {"UP"}, 60, f"both app hosts up at {b}")

    with officers_reading(port=WEB_PORT, rate=5.0) as reading:
        started = time.monotonic()
        r = release(good)
        took = time.monotonic() - started
        assert r.returncode == 0, r.stdout[-3000:]
        assert serving(hosts) == dict.fromkeys(DC_APP, good)
        assert r.stdout.count("TASK [app : Drain this host at the site's balancers]") == len(DC_APP), r.stdout[-3000:]

        r = release(broken, "-e", "app_release_health_retries=15")
        assert r.returncode != 0
        assert f"release {broken} failed on {DC_APP[0]}" in r.stdout and f"rolled back to {good}" in r.stdout, \
            r.stdout[-3000:]
        # The first host is back on the release it served; the second never left it.
        assert serving(hosts) == dict.fromkeys(DC_APP, good)
        for b in DC_APP:
            wait_for(lambda b=b: set(web_state(hosts, b).values()) == {"UP"}, 60, f"both app hosts up at {b}")

        # What an operator does to go back on purpose: release the one before.
        r = release(original)
        assert r.returncode == 0, r.stdout[-3000:]
        assert serving(hosts) == before
        time.sleep(1)
    print(f"\nrolling release of {len(DC_APP)} app hosts through the balancers in {took:.0f} s; "
          f"a failing release rolled back; officers: {reading.summary()}")
    assert not reading.failed, f"{len(reading.failed)} of {len(reading.answers)} requests failed: {reading.failed[:5]}"
