"""How long `kntc accounts reseal` holds the second factors at scale (KNTC_RESEAL_BENCH_N of them, 20,000
by default): a figure for runbooks/accounts.md, not a limit. Run: pytest -m bench tests/integration/test_reseal_bench.py -s"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core_app import factor

pytestmark = pytest.mark.bench
BIN = Path(sys.executable).parent


def test_reseal_time_for_many_factors(pg_env, owner_conn):
    n = int(os.environ.get("KNTC_RESEAL_BENCH_N", "20000"))
    old, new = pg_env["KNTC_SECRET_KEY"], secrets.token_hex(32)
    tag = secrets.token_hex(3)
    ids = [r["id"] for r in owner_conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
        "SELECT 'bench.' || %s || '.' || g, 'Cán bộ đo', (SELECT id FROM kntc.unit WHERE code = 'X00004'), "
        "ARRAY['handling'], 1, '$argon2id$bench' FROM generate_series(1, %s) g RETURNING id", (tag, n)).fetchall()]
    with owner_conn.cursor() as cur, cur.copy("COPY kntc.account_factor (account_id, secret) FROM STDIN") as cp:
        for i in ids:
            cp.write_row((i, factor.seal(old, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", i)))

    def reseal(current: str, previous: str) -> float:
        env = {**os.environ, **pg_env, "KNTC_SECRET_KEY": current, "KNTC_PREVIOUS_SECRET_KEYS": json.dumps([previous])}
        t = time.perf_counter()
        res = subprocess.run([str(BIN / "kntc"), "accounts", "reseal", "-r", "đo thời gian đổi khóa"], env=env,
                             capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, res.stderr
        return time.perf_counter() - t

    try:
        first, again = reseal(new, old), reseal(new, old)
        print(f"\nreseal of {n} second factors: {first:.1f} s; run again (nothing to do): {again:.1f} s")
    finally:
        reseal(old, new)
        owner_conn.execute("DELETE FROM kntc.account WHERE username LIKE %s", (f"bench.{tag}.%",))
