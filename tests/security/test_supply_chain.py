"""Supply chain: every Python dependency is pinned with hashes, installed only from the lock, audited.

The actor is whoever can publish to, or sit in front of, the package registry: a new release of
a dependency, or a swapped file, must not reach this machine's venv or the hosts unnoticed.

Threat rows (runbooks/security.md): T46.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = {"all": REPO / "requirements" / "all.lock", "app": REPO / "requirements" / "app.lock"}
REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of each requirement of a pip-style lock."""
    out: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        m = REQ.match(line)
        if m:
            current = norm(m.group(1))
            out[current] = (m.group(2), [])
        elif current and line.strip().startswith("--hash="):
            out[current][1].append(line.strip().split("=", 1)[1].rstrip(" \\"))
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{lock.name}: a requirement that is not pinned with ==: {line!r}")
    return out


def declared(*extras: str) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return {norm(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in reqs}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_a_new_release_of_a_dependency_cannot_slip_in_every_requirement_is_pinned_with_a_hash(lock):
    found = entries(LOCKS[lock])
    assert found, f"{lock}.lock is empty"
    unhashed = [name for name, (_, hashes) in found.items() if not hashes]
    assert not unhashed, f"{lock}.lock: requirements without --hash: {unhashed}"
    assert all(h.startswith("sha256:") for _, hashes in found.values() for h in hashes)


def test_every_declared_dependency_is_in_the_locks():
    all_lock, app_lock = entries(LOCKS["all"]), entries(LOCKS["app"])
    missing = declared("app", "ops", "load", "test") - set(all_lock)
    assert not missing, f"declared in pyproject.toml but not in all.lock (run `make lock`): {missing}"
    missing = declared("app") - set(app_lock)
    assert not missing, f"declared for the hosts but not in app.lock (run `make lock`): {missing}"
    # The hosts run the same versions as the tests.
    differ = {n: (v, all_lock[n][0]) for n, (v, _) in app_lock.items() if n in all_lock and all_lock[n][0] != v}
    assert not differ, f"app.lock and all.lock pin different versions: {differ}"


def test_a_swapped_package_file_is_refused_by_the_install(tmp_path):
    # A registry or a proxy that serves another file under a locked release name: pip, run as
    # install-deps.sh runs it, must refuse it. One small locked package, its hash altered.
    name, (version, _) = next((n, e) for n, e in entries(LOCKS["app"]).items() if n == "annotated-types")
    bad = tmp_path / "tampered.lock"
    bad.write_text(f"{name}=={version} --hash=sha256:{'0' * 64}\n")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--require-hashes", "-r", str(bad), "-d", str(tmp_path / "dl")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "DO NOT MATCH THE HASHES" in r.stderr, r.stderr[-2000:]


def test_install_deps_installs_only_from_the_lock_and_reinstalls_when_it_changes():
    script = (REPO / "infra" / "host" / "install-deps.sh").read_text()
    pip_lines = [ln.strip() for ln in script.splitlines() if "pip install" in ln and not ln.strip().startswith("#")]
    assert pip_lines, "install-deps.sh installs no Python package"
    for line in pip_lines:
        assert "--require-hashes" in line or "--no-deps" in line, f"unlocked install: {line}"
    assert any("--require-hashes -r" in ln and "LOCK" in ln for ln in pip_lines)
    stamp = next(ln for ln in script.splitlines() if ln.startswith("stamp="))
    assert '"$LOCK"' in stamp and "pyproject.toml" in stamp, stamp


def test_the_hosts_install_the_release_only_from_the_lock():
    tasks = (REPO / "infra" / "ansible" / "roles" / "app" / "tasks")
    build, install = (tasks / "build.yml").read_text(), (tasks / "install.yml").read_text()
    assert "--require-hashes" in build and "app_lock_file" in build
    assert "--require-hashes" in install and "--no-deps" in install and "--no-index" in install


def test_make_test_audits_the_lock_and_says_whether_the_advisories_were_reachable():
    makefile = (REPO / "Makefile").read_text()
    test_target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "audit-deps.py" in test_target
    # As the Makefile calls it: from the checkout, with the locks' relative paths.
    r = subprocess.run([sys.executable, "infra/host/audit-deps.py", "requirements/all.lock", "requirements/app.lock"],
                       capture_output=True, text=True, timeout=900, cwd=REPO)
    out = r.stdout + r.stderr
    # Either pip-audit read the advisories and found nothing that is not allowed, or the run
    # says plainly that the lock was not audited (this workplace: no per-release data).
    audited = r.returncode == 0 and "known vulnerabilities not allowed" in out
    unreachable = r.returncode == 0 and "NOT reachable" in out and "NOT audited" in out
    assert audited or unreachable, out


def test_every_accepted_advisory_says_why():
    allow = REPO / "requirements" / "audit-allow.txt"
    for line in allow.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            ident, _, reason = line.partition("#")
            assert reason.strip(), f"{ident.strip()} is accepted without a reason"
