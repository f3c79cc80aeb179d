"""runbooks/connect-a-body.md runs as written: every `sh` block, in order, against nginx and the server.

Threat rows: T59, T64.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

from tests.conftest import BIN, ROOT
from tests.exchange.conftest import Pki

RUNBOOK = ROOT / "runbooks" / "connect-a-body.md"


def blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", RUNBOOK.read_text(), flags=re.S | re.M)


def test_the_runbook_runs_as_written(gateway: str, pki: Pki, xenv: dict[str, str], tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(blocks())
    env = {
        **os.environ,
        **xenv,
        "WORK": str(tmp_path),
        "CLIENT_ID": f"toa-an-{secrets.token_hex(3)}",
        "KNTC_URL": gateway,
        "KNTC_CA": str(pki.ca),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    res = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout.splitlines()
    assert re.fullmatch(r"[0-9a-f]{64}", out[0])  # the thumbprint
    assert out[1] == "read,submit,feed"  # registered
    assert out[2] == "created"  # submitted
    assert out[3].lower().startswith("idempotent-replayed: true")  # replayed
    assert out[4:6] == ["200 unchanged", "422 /items/1/parties/0/id_number"]
    assert out[6:8] == ["received", "1"]  # fetched, found
    assert any(re.fullmatch(r"created T01-TAND-\d{4}-\d{6} received", line) for line in out[8:-2])
    assert out[-2] == "unchanged"  # kntc-connect submit, known id
    assert int(out[-1]) >= 1  # kntc-connect follow
