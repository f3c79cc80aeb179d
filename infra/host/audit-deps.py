#!/usr/bin/env python3
"""Audit the hash-locked requirements for known vulnerabilities (pip-audit), in `make test`.

    infra/host/audit-deps.py [requirements/all.lock ...]

pip-audit asks the package registry for the advisories of each pinned release. Where that
per-release data is not reachable (this workplace's registry mirror answers the project pages but
not the per-release ones), pip-audit would skip every package and still say "no known
vulnerabilities": this script probes one pinned release first and, when its data is missing,
says plainly that the lock was NOT audited instead of querying every package in vain
(exit 0, or 1 with KNTC_AUDIT_REQUIRED=1, e.g. in a CI that can reach the data).

Where the data is reachable, any advisory that is not in requirements/audit-allow.txt fails the
run. Each line there is `<advisory id>  # <package>: why it does not apply, until when`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOW = REPO / "requirements" / "audit-allow.txt"
PIP_AUDIT = Path(sys.executable).parent / "pip-audit"
REQ_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def allowed() -> dict[str, str]:
    """Advisory id -> the documented reason it is accepted."""
    out: dict[str, str] = {}
    if not ALLOW.exists():
        return out
    for raw in ALLOW.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ident, _, reason = line.partition("#")
        if not reason.strip():
            sys.exit(f"audit-deps: {ALLOW.name}: '{ident.strip()}' has no reason after '#'")
        out[ident.strip()] = reason.strip()
    return out


def pip_audit(req: Path, ignore: list[str]) -> dict:
    cmd = [str(PIP_AUDIT), "--disable-pip", "--no-deps", "--progress-spinner", "off", "--format", "json",
           "-r", str(req), *[a for i in ignore for a in ("--ignore-vuln", i)]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        sys.exit(f"audit-deps: pip-audit failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")


def reachable(lock: Path) -> bool:
    """Whether the advisory data of one pinned release of the lock can be read."""
    first = next(m for m in (REQ_RE.match(ln) for ln in lock.read_text().splitlines()) if m)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.txt"
        probe.write_text(f"{first.group(1)}=={first.group(2)}\n")
        report = pip_audit(probe, [])
    return not any(d.get("skip_reason") for d in report.get("dependencies", []))


def main() -> int:
    locks = [Path(a).resolve() for a in sys.argv[1:]] or [REPO / "requirements" / "all.lock"]
    ok = allowed()
    if not reachable(locks[0]):
        print("audit-deps: the registry's per-release vulnerability data is NOT reachable from here: "
              f"{', '.join(str(p.relative_to(REPO)) for p in locks)} NOT audited (pip-audit would skip every package)")
        return 1 if os.environ.get("KNTC_AUDIT_REQUIRED") == "1" else 0
    failed = 0
    for lock in locks:
        report = pip_audit(lock, sorted(ok))
        deps = report.get("dependencies", [])
        skipped = [d["name"] for d in deps if d.get("skip_reason")]
        found = [(d["name"], d["version"], v["id"], ", ".join(v.get("fix_versions", [])) or "none")
                 for d in deps for v in d.get("vulns", []) if v["id"] not in ok]
        for name, version, ident, fixes in found:
            print(f"audit-deps: {lock.name}: {name} {version}: {ident} (fixed in {fixes})")
        if skipped:
            print(f"audit-deps: {lock.name}: not audited (no data): {', '.join(skipped)}")
        print(f"audit-deps: {lock.name}: {len(deps) - len(skipped)} packages audited, {len(found)} known "
              f"vulnerabilities not allowed ({len(ok)} allowed in {ALLOW.name})")
        failed += len(found) + len(skipped)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
