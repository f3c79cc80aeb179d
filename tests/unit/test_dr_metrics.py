"""kntc-dr's backup and verification figures, as the node exporter reads them from its textfile
folder, and the configuration keys a repository host's dr.toml carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dr import metrics
from dr.config import load
from dr.errors import ConfigError
from dr.pgbackrest import StanzaInfo


def _config(tmp_path: Path, extra: str = "") -> Path:
    f = tmp_path / "dr.toml"
    f.write_text(f'''stanza = "kntc-dc"
repo = 2
repo_path = "/var/lib/pgbackrest"
pg_path = "/var/lib/postgresql/15/main"
pgbackrest_conf = "/etc/pgbackrest.conf"
state_dir = "{tmp_path / 'state'}"
metrics_dir = "{tmp_path / 'textfile'}"
verify_after = ["full", "diff"]
source_dsn = "host=10.0.0.1,10.0.0.2 user=kntc_backup target_session_attrs=read-write"
{extra}
[backup_max_age]
full = 691200
incr = 259200
''')
    return f


def _backup(label: str, type: str, stop: int) -> dict:
    return {"label": label, "type": type, "timestamp": {"start": stop - 60, "stop": stop},
            "info": {"size": 1000, "delta": 100, "repository": {"size": 400, "delta": 40}}}


def _samples(path: Path) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_repository_hosts_configuration_loads_without_a_passphrase_file(tmp_path: Path) -> None:
    # The passphrase lives in pgBackRest's own conf.d file, which kntc-dr does not write there.
    cfg = load(_config(tmp_path))
    assert cfg.repo == 2 and cfg.verify_after == ("full", "diff")
    assert cfg.backup_max_age == {"full": 691200, "incr": 259200}
    assert cfg.metrics_dir == tmp_path / "textfile"


@pytest.mark.parametrize("extra", ['verify_after = ["weekly"]'])
def test_an_unknown_backup_type_is_refused(tmp_path: Path, extra: str) -> None:
    f = _config(tmp_path, extra)
    f.write_text(f.read_text().replace('verify_after = ["full", "diff"]\n', "", 1))
    with pytest.raises(ConfigError, match="weekly"):
        load(f)


def test_the_figures_follow_the_repository_and_the_runs_recorded_here(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path))
    info = StanzaInfo.from_json({"name": "kntc-dc", "status": {"code": 0, "message": "ok"},
                                 "backup": [_backup("F1", "full", 1_000_000), _backup("I1", "incr", 1_050_000)]})
    metrics.record_backup(cfg, "diff", False, 12.5)
    path = metrics.write(cfg, info=info)
    got = _samples(path)
    lab = {"repo": "2", "stanza": "kntc-dc"}

    def key(name: str, **labels: str) -> tuple[str, tuple]:
        return name, tuple(sorted({**lab, **labels}.items()))

    # A full backup renews diff and incr; the newer incr renews only incr.
    assert got[key("kntc_backup_last_success_timestamp_seconds", type="full")] == 1_000_000
    assert got[key("kntc_backup_last_success_timestamp_seconds", type="diff")] == 1_000_000
    assert got[key("kntc_backup_last_success_timestamp_seconds", type="incr")] == 1_050_000
    assert got[key("kntc_backup_last_result", type="diff")] == 0
    assert key("kntc_backup_last_result", type="full") not in got  # never run here: no claim either way
    assert got[key("kntc_backup_max_age_seconds", type="incr")] == 259200
    assert key("kntc_restore_verify_last_result") not in got

    metrics.record_verify(cfg, True, 30.0, {"backup": "I1"})
    metrics.record_backup(cfg, "diff", True, 10.0)
    got = _samples(metrics.write(cfg, info=info))
    assert got[key("kntc_restore_verify_last_result")] == 1
    assert got[key("kntc_backup_last_result", type="diff")] == 1
    # No site label: the scrape gives it (a second one would arrive as exported_site).
    assert all("site" not in dict(labels) for _, labels in got)


def test_without_a_metrics_folder_nothing_is_written(tmp_path: Path) -> None:
    f = _config(tmp_path)
    f.write_text(f.read_text().replace(f'metrics_dir = "{tmp_path / "textfile"}"\n', ""))
    cfg = load(f)
    metrics.record_backup(cfg, "full", True, 1.0)
    assert metrics.write(cfg, info=None) is None
    assert not (tmp_path / "textfile").exists()
