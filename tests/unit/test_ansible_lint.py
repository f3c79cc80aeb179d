"""The playbooks and roles pass ansible-lint's production profile. Linting reads files only, so it
runs beside the lab's bring-up rather than on the lab's own path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "infra" / "ansible"
LINT = Path(sys.executable).parent / "ansible-lint"  # the venv the tests run in


def test_ansible_lint_production_profile_is_clean():
    r = subprocess.run([str(LINT), "--profile", "production", "--offline", "-q"],
                       cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
