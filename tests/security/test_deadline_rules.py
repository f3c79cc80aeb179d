"""Who may edit a deadline rule: a central system administrator only. An ordinary officer (a head of
unit) and a provincial administrator are refused on the page, through the API and with the CLI, and
nothing is kept (kntc.deadline_rule_edit decides, in the database)."""

from __future__ import annotations

import os
import subprocess

import pytest

from core_app.app import vietnam_today
from tests.conftest import BIN, TEST_PASSWORD

RULE = "TC-NOTIFY"


def _versions(owner_conn) -> int:
    return owner_conn.execute("SELECT count(*) AS n FROM kntc.deadline_rule_version WHERE code = %s",
                              (RULE,)).fetchone()["n"]


def _form() -> dict[str, str]:
    return {"effective_from": vietnam_today().isoformat(), "days": "30", "legal_basis": "Luật Tố cáo 2018, Điều 29",
            "reason": "Kéo dài thời hạn để không bị quá hạn"}


@pytest.mark.parametrize(("unit", "roles"), [("X00004", ["head", "handling"]), ("T01", ["sysadmin"]),
                                             ("T01", ["unit_admin", "head"])])
def test_an_officer_or_a_provincial_administrator_cannot_edit_a_rule(web_officer, officer, make_account, server,
                                                                   owner_conn, unit, roles):
    before = _versions(owner_conn)
    user = web_officer(unit, roles, 2)
    page = user.get("/app/deadline-rules")
    assert page.status_code == 200 and f'id="rule-{RULE}"' in page.text
    if "sysadmin" not in roles:
        assert 'class="rule-form"' not in page.text
    r = user.post(f"/app/deadline-rules/{RULE}", _form())
    assert r.status_code == 403, (unit, roles, r.status_code)
    api = officer(unit, roles, 2).post(f"/api/deadlines/rules/{RULE}/versions", json=_form() | {"days": 30})
    assert api.status_code == 403
    name = make_account(unit, roles)
    cli = subprocess.run([str(BIN / "kntc"), "deadlines", "rules", "edit", RULE, "--server", server, "--username",
                          name, "--effective-from", vietnam_today().isoformat(), "--days", "30",
                          "--legal-basis", "Luật Tố cáo 2018, Điều 29", "--reason", "Kéo dài thời hạn cho dễ"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "KNTC_PASSWORD": TEST_PASSWORD})
    assert cli.returncode == 1 and "403" in cli.stderr and "Traceback" not in cli.stderr
    assert _versions(owner_conn) == before
