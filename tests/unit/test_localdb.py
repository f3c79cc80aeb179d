"""The embedded cluster says in one line when its port is already taken (another checkout's
cluster left running), instead of failing every test with pg_ctl's log."""

from __future__ import annotations

import socket

import pytest

from core_app.localdb import LocalCluster, LocalDbError


def test_a_taken_port_is_named_in_one_line(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        cluster = LocalCluster(tmp_path / "local", port)
        with pytest.raises(LocalDbError) as err:
            cluster._start()
    message = str(err.value)
    assert f"port {port} on 127.0.0.1 is taken by" in message and "\n" not in message


def test_a_free_port_has_no_holder(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert LocalCluster(tmp_path / "local", port)._port_holder() is None


def test_a_cluster_made_before_the_statements_were_counted_loads_them_at_its_next_start(tmp_path, monkeypatch):
    cluster = LocalCluster(tmp_path / "local", 1)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(LocalCluster, "datadir", property(lambda self: data))
    (data / "postgresql.conf").write_text("#shared_preload_libraries = ''\nport = 1\n")
    cluster._preload()
    cluster._preload()  # once only, however many starts
    lines = (data / "postgresql.conf").read_text().splitlines()
    assert lines.count("shared_preload_libraries = 'pg_stat_statements'") == 1
