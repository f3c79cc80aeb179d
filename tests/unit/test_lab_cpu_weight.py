"""The lab's hosts weighed as several processes of this machine, not as one: Podman puts every host
under one parent control group, which the kernel otherwise weighs as a single task against each
process beside it (a test session's PostgreSQL, app and load processes), and the lab's bring-up
then ran at a fraction of a core."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.conftest import ROOT

_SPEC = importlib.util.spec_from_file_location("kntc_lab_cpu", ROOT / "infra" / "lab" / "lab.py")
assert _SPEC and _SPEC.loader
lab = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("kntc_lab_cpu", lab)
_SPEC.loader.exec_module(lab)


def test_on_this_machines_hybrid_layout_the_parent_gets_v1_cpu_shares(tmp_path: Path) -> None:
    (tmp_path / "cpu" / "libpod_parent" / "libpod-abc").mkdir(parents=True)
    host = ("13:hugetlb:/\n9:name=systemd:/\n8:pids:/libpod_parent/libpod-abc\n"
            "1:cpu:/libpod_parent/libpod-abc\n0::/libpod_parent/libpod-abc/init.scope\n")
    path, value = lab.cpu_weight_file(host, tmp_path)
    assert path == tmp_path / "cpu" / "libpod_parent" / "cpu.shares"
    assert value == 1024 * lab.LAB_CPU_WEIGHT


def test_with_cpu_and_cpuacct_mounted_together_the_same(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct" / "machine" / "libpod-abc").mkdir(parents=True)
    path, _ = lab.cpu_weight_file("4:cpu,cpuacct:/machine/libpod-abc\n", tmp_path)
    assert path == tmp_path / "cpu,cpuacct" / "machine" / "cpu.shares"


def test_on_a_pure_v2_host_the_parent_gets_cpu_weight(tmp_path: Path) -> None:
    path, value = lab.cpu_weight_file("0::/libpod_parent/libpod-abc/init.scope\n", tmp_path)
    assert path == tmp_path / "libpod_parent" / "cpu.weight"
    assert value == 100 * lab.LAB_CPU_WEIGHT
