"""The playbooks run on Mitogen's strategy, and the documented way back to Ansible's own works.

Mitogen keeps one interpreter per host for a whole run; the lab's bring-up and its idempotence run
take less than half the time they took on Ansible's `linear` strategy. The lab proves the plays
under it; these checks catch a lost setting, a missing package or a shim that no longer loads,
without a lab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "infra" / "ansible"
BIN = Path(sys.executable).parent

WHICH = """
from ansible.plugins.loader import init_plugin_loader, strategy_loader
init_plugin_loader()
from ansible import constants as C
import ansible_mitogen.strategy
cls = strategy_loader.get(C.DEFAULT_STRATEGY, class_only=True)
print(C.DEFAULT_STRATEGY, issubclass(cls, ansible_mitogen.strategy.StrategyMixin))
"""

PLAY = """
- name: A fact, a command and a file, as the roles use them
  hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - name: Read a command's output
      ansible.builtin.command: echo mitogen
      register: said
      changed_when: false
    - name: Write a file
      ansible.builtin.copy:
        content: "{{ said.stdout }} {{ ansible_facts['distribution'] }}\\n"
        dest: "{{ out }}"
        mode: "0600"
"""


def strategy(env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-c", WHICH], cwd=ANSIBLE_DIR, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_ansible_cfg_runs_the_plays_on_mitogens_linear_strategy():
    # What ansible.cfg says, whatever strategy the caller's environment may choose.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_STRATEGY"}
    assert strategy(env) == "mitogen_linear True"


def test_a_play_runs_alike_on_mitogen_and_on_the_documented_fallback(tmp_path):
    book = tmp_path / "play.yml"
    book.write_text(PLAY)
    for name in ("mitogen_linear", "linear"):
        out = tmp_path / f"{name}.txt"
        env = {**os.environ, "ANSIBLE_STRATEGY": name}
        assert strategy(env).split()[0] == name
        args = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(book), "-e", f"out={out}"]
        first = subprocess.run(args, cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300, env=env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        assert "changed=1" in first.stdout
        again = subprocess.run(args, cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300, env=env)
        assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
        assert out.read_text().startswith("mitogen ")
