"""The capacity model: the source's population, Little's law, and sizing that follows the demand."""

from __future__ import annotations

import math

import pytest

from loadtests import capacity


def test_population_is_the_upgrade_plans_162318_accounts() -> None:
    assert capacity.Model().total_accounts() == 162_318
    accounts = capacity.Model().accounts()
    assert math.isclose(sum(accounts.values()), 162_318)


def test_concurrent_officers_follow_littles_law() -> None:
    model = capacity.Model()
    s = capacity.SCENARIOS["busy"]
    result = model.scenario(s)
    arrivals = 162_318 * s.active_share * s.sessions_per_active * s.peak_hour_share / 3600
    assert result["logins_per_s"] == pytest.approx(arrivals)
    assert result["officers_concurrent"] == pytest.approx(arrivals * s.session_minutes * 60)


def test_stress_puts_every_account_online_at_once() -> None:
    result = capacity.Model().scenario(capacity.SCENARIOS["stress"])
    assert result["officers_concurrent"] == pytest.approx(162_318)
    assert result["total_rps"] > capacity.Model().scenario(capacity.SCENARIOS["busy"])["total_rps"]


def test_locust_weights_are_concurrent_users_and_think_times_the_pace() -> None:
    plan = capacity.locust_plan("busy")
    result = capacity.Model().scenario(capacity.SCENARIOS["busy"])
    assert sum(p["weight"] for k, p in plan.items() if k != "citizen") == pytest.approx(result["officers_concurrent"])
    assert plan["commune.handling"]["think_s"] == pytest.approx(60 / capacity.RPM["handling"])
    assert "external_reader" in plan and "commune.resolution" not in [k for k, p in plan.items() if p["weight"]]


def test_more_demand_or_less_capacity_needs_more_nodes() -> None:
    small = capacity.Sizing(rps_per_worker=100).plan(1_000)
    big = capacity.Sizing(rps_per_worker=100).plan(4_000)
    slow = capacity.Sizing(rps_per_worker=50).plan(1_000)
    assert big["app_nodes"] > small["app_nodes"] and slow["app_workers"] > small["app_workers"]
    assert small["app_nodes"] >= 2  # N+1 even when one node would do
