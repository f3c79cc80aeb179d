"""Lab traffic cannot leave the machine, and a site can be cut off and reconnected."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ADDR, ALL_HOSTS, LAB

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("host_name", ALL_HOSTS)
def test_host_has_no_default_route(hosts, host_name):
    assert "default" not in hosts(host_name).check_output("ip route")


@pytest.mark.parametrize("host_name", ["dc-db1", "dr-app1"])
def test_host_cannot_reach_outside_the_lab(hosts, host_name):
    assert hosts(host_name).run("nc -z -w 2 192.0.2.1 22").rc != 0


def test_lab_range_is_blackholed_on_this_machine(lab):
    out = subprocess.run(["ip", "route", "show", "type", "blackhole"], capture_output=True, text=True).stdout
    assert "10.231.0.0/16" in out


def test_forwarding_out_of_the_lab_is_dropped(lab):
    out = subprocess.run(["nft", "list", "chain", "inet", "kntc_lab", "forward"], capture_output=True,
                         text=True).stdout
    assert "ip saddr 10.231.0.0/16 ip daddr != 10.231.0.0/16" in out and "drop" in out


def test_cut_stops_dr_reaching_dc_and_heal_restores_it(hosts):
    probe = f"nc -z -w 2 {ADDR['dc-app1']} 5002"
    subprocess.run([str(LAB), "cut", "dr"], check=True, capture_output=True)
    try:
        assert hosts("dr-db1").run(probe).rc != 0
    finally:
        subprocess.run([str(LAB), "heal"], check=True, capture_output=True)
    assert hosts("dr-db1").run(probe).rc == 0
