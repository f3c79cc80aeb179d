"""Backup and verification results as metrics for the node exporter's textfile collector.

Each run of `kntc-dr backup` or `verify-restore` records its result in <state_dir>/results.json,
then rewrites <metrics_dir>/kntc_dr.prom from that file and from the repository itself (`pgbackrest
info`): the last good backup of each type is what the repository holds, not what this host
remembers, so a backup taken by hand or from another host counts too. The site and instance come
from the scrape; the labels here say which repository, stanza and backup type.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from dr import proc
from dr.config import DrConfig
from dr.errors import DrError
from dr.pgbackrest import PgBackRest, StanzaInfo

TYPES = ("full", "diff", "incr")
# A backup of a stronger type also renews the weaker ones (a full is a valid base for tomorrow's incr).
_COVERS = {"full": {"full"}, "diff": {"full", "diff"}, "incr": {"full", "diff", "incr"}}
PROM_FILE = "kntc_dr.prom"


def _results_path(cfg: DrConfig) -> Path:
    return cfg.state_dir / "results.json"


def _load(cfg: DrConfig) -> dict[str, Any]:
    try:
        return json.loads(_results_path(cfg).read_text())
    except (OSError, ValueError):
        return {"backup": {}, "verify": None}


def _save(cfg: DrConfig, results: dict[str, Any]) -> None:
    proc.make_dir(cfg.state_dir, 0o750)
    tmp = _results_path(cfg).with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(_results_path(cfg))


def record_backup(cfg: DrConfig, type: str, ok: bool, seconds: float) -> None:
    results = _load(cfg)
    results.setdefault("backup", {})[type] = {"result": int(ok), "time": time.time(), "seconds": round(seconds, 1)}
    _save(cfg, results)
    write(cfg, results)


def record_verify(cfg: DrConfig, ok: bool, seconds: float, figures: dict[str, Any]) -> None:
    results = _load(cfg)
    results["verify"] = {"result": int(ok), "time": time.time(), "seconds": round(seconds, 1),
                         "backup": figures.get("backup"), "rto_seconds": figures.get("rto_seconds")}
    _save(cfg, results)
    write(cfg, results)


def write(cfg: DrConfig, results: dict[str, Any] | None = None, info: StanzaInfo | None = None) -> Path | None:
    """Rewrite the .prom file (atomically: the collector never reads half a file)."""
    if cfg.metrics_dir is None:
        return None
    results = results if results is not None else _load(cfg)
    if info is None:
        # The repository may be the thing that is broken: the results recorded still go out.
        with contextlib.suppress(DrError):
            info = PgBackRest(cfg).info()
    labels = {"repo": str(cfg.repo or 1), "stanza": cfg.stanza}
    reg = CollectorRegistry()
    names = ["repo", "stanza", "type"]
    last_ok = Gauge("kntc_backup_last_success_timestamp_seconds",
                    "End of the newest good backup of this type or a stronger one, in the repository", names,
                    registry=reg)
    result = Gauge("kntc_backup_last_result", "1 if the last backup of this type run here succeeded", names,
                   registry=reg)
    duration = Gauge("kntc_backup_last_duration_seconds", "How long the last backup of this type took", names,
                     registry=reg)
    max_age = Gauge("kntc_backup_max_age_seconds", "Age past which the newest backup of this type is overdue",
                    names, registry=reg)
    for t in TYPES:
        lab = {**labels, "type": t}
        if info is not None:
            stops = [b.stop.timestamp() for b in info.backups if b.type in _COVERS[t] and not b.error]
            if stops:
                last_ok.labels(**lab).set(max(stops))
        ran = results.get("backup", {}).get(t)
        if ran:
            result.labels(**lab).set(ran["result"])
            duration.labels(**lab).set(ran["seconds"])
        if t in cfg.backup_max_age:
            max_age.labels(**lab).set(cfg.backup_max_age[t])
    verify = results.get("verify")
    if verify:
        vnames = ["repo", "stanza"]
        Gauge("kntc_restore_verify_last_timestamp_seconds", "When the last restore verification ended", vnames,
              registry=reg).labels(**labels).set(verify["time"])
        Gauge("kntc_restore_verify_last_result", "1 if the last restore verification passed", vnames,
              registry=reg).labels(**labels).set(verify["result"])
        Gauge("kntc_restore_verify_last_duration_seconds", "How long the last restore verification took", vnames,
              registry=reg).labels(**labels).set(verify["seconds"])
    if info is not None and info.backups:
        Gauge("kntc_backup_repository_bytes", "Bytes the newest backup set occupies in the repository",
              ["repo", "stanza"], registry=reg).labels(**labels).set(info.backups[-1].repo_size)
    cfg.metrics_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.metrics_dir / PROM_FILE
    write_to_textfile(str(path), reg)
    os.chmod(path, 0o644)
    return path
