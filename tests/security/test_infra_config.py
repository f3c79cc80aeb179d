"""The playbooks as an attacker reads them: what a run would log, and whom it would trust.

Threat rows (runbooks/security.md): T41, T47.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "infra" / "ansible"
SECRET = re.compile(r"kntc_secret_|_cipher'|cipher_pass|app_demo_password|app_dsn_|audit_anchor_dsn|url_password")


def tasks():
    for f in sorted((ANSIBLE / "roles").glob("*/tasks/*.yml")):
        for task in yaml.safe_load(f.read_text()) or []:
            for t in task.get("block", [task]):
                yield f, t


def handles_secret(role_dir: Path, task: dict) -> bool:
    body = {k: v for k, v in task.items() if k != "name"}
    if SECRET.search(str(body)):
        return True
    for module in ("ansible.builtin.template", "template"):
        src = (task.get(module) or {}).get("src")
        if src and "{{" not in src:
            tmpl = role_dir / "templates" / src
            if tmpl.exists() and SECRET.search(tmpl.read_text()):
                return True
    return False


def test_no_task_that_handles_a_secret_would_print_it_in_the_run_log():
    exposed = [f"{f.relative_to(ANSIBLE)}: {t.get('name')}" for f, t in tasks()
               if handles_secret(f.parent.parent, t) and not t.get("no_log")]
    assert not exposed, "tasks that would log a secret (add no_log: true):\n" + "\n".join(exposed)


def test_no_inventory_or_tool_accepts_any_ssh_host_key():
    files = [ANSIBLE / "ansible.cfg", *ANSIBLE.glob("inventories/*/group_vars/*.yml"),
             *ANSIBLE.glob("inventories/production/*.yml"), REPO / "infra" / "lab" / "lab.py", REPO / "dr" / "lab.py"]
    lax = re.compile(r"StrictHostKeyChecking=no|host_key_checking\s*=\s*False|UserKnownHostsFile=/dev/null|"
                     r"ssh_strict_host_key_checking\"?:\s*\"off\"", re.I)
    found = [f"{f.relative_to(REPO)}: {m.group(0)}" for f in files for m in lax.finditer(f.read_text())]
    assert not found, found


def test_a_sealed_production_secret_cannot_be_read_without_the_vault_password(tmp_path):
    script = ANSIBLE / "secrets-vault.sh"
    work, vault, pw = tmp_path / "work", tmp_path / "vault", tmp_path / "vault-pass"
    (work / "secrets").mkdir(parents=True)
    (work / "secrets" / "pg_kntc_owner").write_text("mat-khau-chu-so-huu-123\n")
    pw.write_text("operator vault password\n")
    env = dict(os.environ, ANSIBLE_VAULT_PASSWORD_FILE=str(pw))
    subprocess.run([str(script), "seal", str(vault), str(work)], check=True, env=env, capture_output=True)
    sealed = (vault / "secrets" / "pg_kntc_owner.vault").read_text()
    assert sealed.startswith("$ANSIBLE_VAULT;1.1;AES256") and "chu-so-huu" not in sealed
    # Without the password: nothing. With it: the same secret back, into a fresh working copy.
    no_pw = {k: v for k, v in env.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    r = subprocess.run([str(script), "open", str(vault), str(tmp_path / "stolen")], env=no_pw,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    subprocess.run([str(script), "open", str(vault), str(tmp_path / "run")], check=True, env=env, capture_output=True)
    assert (tmp_path / "run" / "secrets" / "pg_kntc_owner").read_text() == "mat-khau-chu-so-huu-123\n"
    # Sealing again without a change leaves the committed file as it was.
    subprocess.run([str(script), "seal", str(vault), str(work)], check=True, env=env, capture_output=True)
    assert (vault / "secrets" / "pg_kntc_owner.vault").read_text() == sealed
    # And this repository carries no secret material in clear (the lab's stays in .state/).
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True,
                             check=True).stdout.split()
    bad = [p for p in tracked if re.search(r"(^|/)(secrets|pki)/|\.key$|id_ed25519$|known_hosts$", p)
           and not p.startswith("tests/")]
    assert not bad, f"secret material in git: {bad}"


@pytest.mark.parametrize("role", ["sshd", "audit_anchor"])
def test_new_roles_document_every_default(role):
    defaults = yaml.safe_load((ANSIBLE / "roles" / role / "defaults" / "main.yml").read_text())
    readme = (ANSIBLE / "roles" / role / "README.md").read_text()
    missing = [k for k in defaults if f"`{k}`" not in readme]
    assert not missing, f"{role}: variables without a README row: {missing}"
