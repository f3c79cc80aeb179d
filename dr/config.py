"""The configuration of `kntc-dr`: one small TOML file, each key overridable from the environment.

The same commands work on a developer's machine (the sandbox, `kntc-dr sandbox up`) and later on
the lab and production hosts (a file written by the Ansible pgbackrest role); only this file
differs. Lookup order: `--config`, then `$KNTC_DR_CONFIG`, then /etc/kntc-dr/dr.toml. Each key can
be overridden by `KNTC_DR_<KEY>` (upper case), e.g. `KNTC_DR_SCRATCH_PORT=55479`.

```toml
stanza = "kntc-dc1"                      # one stanza and repository per site (lab notes)
repo_path = "/var/lib/pgbackrest"
pg_path = "/var/lib/postgresql/15/main"
pg_bin = "/usr/lib/postgresql/15/bin"        # the same major version as pg_path's
pg_port = 5432
pg_socket = "/var/run/postgresql"
database = "kntc"
cipher = "aes-256-cbc"                   # or "none" (only for throwaway sandboxes)
cipher_pass_file = "/etc/kntc-dr/repo-cipher-pass"   # mode 0600, never in git; escrow it offline
state_dir = "/var/lib/kntc-dr"           # manifests, reports, pgBackRest logs and locks
scratch_port = 55479                     # loopback port of restored scratch clusters
```

On a repository host (the lab and production: Ansible writes the file), four more keys say where
it is: `repo` (the repository's index in the shared pgbackrest.conf), `source_dsn` (how to reach
the primary for restore points and manifests, instead of the local socket), `site` and
`metrics_dir` (the node exporter's textfile folder, where backup and verification results go as
metrics), and `backup_max_age` (per backup type, the age past which a backup is overdue).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dr.errors import ConfigError

DEFAULT_PATH = Path("/etc/kntc-dr/dr.toml")
KEY_TABLES = ("kntc.unit", "kntc.account", "kntc.case_file", "kntc.petition", "kntc.party", "kntc.case_event")
_STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class DrConfig:
    stanza: str
    repo_path: Path
    pg_path: Path
    pg_port: int = 5432
    pg_socket: Path = Path("/var/run/postgresql")
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")
    database: str = "kntc"
    cipher: str = "aes-256-cbc"
    cipher_pass_file: Path | None = None
    state_dir: Path = Path("/var/lib/kntc-dr")
    # Set it to use a pgbackrest.conf written by someone else (Ansible); unset, kntc-dr renders
    # <state_dir>/pgbackrest.conf itself (`kntc-dr configure`).
    pgbackrest_conf: Path | None = None
    # Its include folder (pgBackRest drops its default one when --config is given): where the
    # repository's passphrase is, on a repository host.
    pgbackrest_include_path: Path | None = None
    scratch_port: int = 55479
    key_tables: tuple[str, ...] = KEY_TABLES
    retention_full: int = 2
    process_max: int = 1
    compress_type: str = "lz4"
    # Deadline for a restored cluster to reach its target and promote.
    start_timeout: int = 600
    # Extra [global] options for pgbackrest.conf (e.g. {"job-retry" = "0"} in tests).
    pgbackrest_options: dict[str, str] = field(default_factory=dict)
    # The repository's index in a pgbackrest.conf that names several (0: the only one).
    repo: int = 0
    # libpq conninfo of the primary for restore points and manifests when it is not local (a
    # repository host); None: the local socket as postgres.
    source_dsn: str | None = None
    # Folder of the node exporter's textfile collector; None: no metrics written.
    metrics_dir: Path | None = None
    # Seconds past which the newest backup of a type counts as overdue (from the timers' schedule).
    backup_max_age: dict[str, int] = field(default_factory=dict)
    # Backup types whose success is followed by a restore verification.
    verify_after: tuple[str, ...] = ("full", "diff")
    source: Path | None = None

    @property
    def conf_path(self) -> Path:
        return self.pgbackrest_conf or self.state_dir / "pgbackrest.conf"

    @property
    def conf_managed(self) -> bool:
        """kntc-dr writes pgbackrest.conf itself (not Ansible)."""
        return self.pgbackrest_conf is None

    @property
    def manifest_dir(self) -> Path:
        return self.state_dir / "manifests"

    @property
    def report_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def scratch_root(self) -> Path:
        return self.state_dir / "scratch"


def _coerce(name: str, value: Any, base: Path) -> Any:
    if name in {"repo_path", "pg_path", "pg_socket", "pg_bin", "cipher_pass_file", "state_dir", "pgbackrest_conf",
                "pgbackrest_include_path", "metrics_dir"}:
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else (base / p).resolve()
    if name in {"pg_port", "scratch_port", "retention_full", "process_max", "start_timeout", "repo"}:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cấu hình / config: {name} phải là số nguyên / must be an integer: {value!r}") from exc
    if name == "backup_max_age":
        if not isinstance(value, dict) or not all(isinstance(v, int) and v > 0 for v in value.values()):
            raise ConfigError("cấu hình / config: backup_max_age là bảng kiểu → số giây / must map types to seconds")
        return {str(k): int(v) for k, v in value.items()}
    if name in {"key_tables", "verify_after"}:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(t).strip() for t in items if str(t).strip())
    if name == "pgbackrest_options":
        if not isinstance(value, dict):
            raise ConfigError("cấu hình / config: pgbackrest_options phải là bảng / must be a table")
        return {str(k): str(v) for k, v in value.items()}
    return str(value)


def load(path: Path | None = None) -> DrConfig:
    chosen = path or (Path(os.environ["KNTC_DR_CONFIG"]) if os.environ.get("KNTC_DR_CONFIG") else DEFAULT_PATH)
    raw: dict[str, Any] = {}
    if chosen.exists():
        try:
            raw = tomllib.loads(chosen.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"cấu hình / config {chosen}: TOML không hợp lệ / invalid TOML: {exc}") from exc
    elif path is not None or os.environ.get("KNTC_DR_CONFIG"):
        raise ConfigError(f"không thấy tệp cấu hình / config file not found: {chosen}")
    known = {f.name for f in fields(DrConfig)} - {"source"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"cấu hình / config {chosen}: khóa lạ / unknown keys: {', '.join(sorted(unknown))}")
    for name in known:
        env = os.environ.get(f"KNTC_DR_{name.upper()}")
        if env is not None and name not in {"pgbackrest_options", "backup_max_age"}:
            raw[name] = env
    base = chosen.parent.resolve()
    values = {k: _coerce(k, v, base) for k, v in raw.items()}
    missing = [k for k in ("stanza", "repo_path", "pg_path") if k not in values]
    if missing:
        raise ConfigError(f"cấu hình / config {chosen}: thiếu / missing {', '.join(missing)} "
                          "(set them in the file or as KNTC_DR_<KEY>)")
    cfg = DrConfig(**values, source=chosen if chosen.exists() else None)
    validate(cfg)
    return cfg


def validate(cfg: DrConfig) -> None:
    if not _STANZA.match(cfg.stanza):
        raise ConfigError(f"cấu hình / config: stanza không hợp lệ / invalid stanza name {cfg.stanza!r}")
    if cfg.cipher not in {"aes-256-cbc", "none"}:
        raise ConfigError(f"cấu hình / config: cipher phải là 'aes-256-cbc' hoặc 'none' / must be one of those: "
                          f"{cfg.cipher!r}")
    if cfg.cipher != "none" and cfg.cipher_pass_file is None and cfg.conf_managed:
        raise ConfigError("cấu hình / config: cipher_pass_file là bắt buộc khi mã hóa / is required with a cipher")
    if cfg.repo < 0:
        raise ConfigError(f"cấu hình / config: repo phải ≥ 0 / must be 0 or more: {cfg.repo}")
    bad = [t for t in (*cfg.verify_after, *cfg.backup_max_age) if t not in {"full", "diff", "incr"}]
    if bad:
        raise ConfigError(f"cấu hình / config: loại sao lưu lạ / unknown backup type {bad[0]!r}: full | diff | incr")
    if cfg.compress_type not in {"lz4", "zst", "gz", "bz2", "none"}:
        raise ConfigError(f"cấu hình / config: compress_type không hợp lệ / invalid: {cfg.compress_type!r}")
    for t in cfg.key_tables:
        if not re.match(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$", t):
            raise ConfigError(f"cấu hình / config: key_tables cần dạng schema.table / need schema.table: {t!r}")
    if cfg.pg_port == cfg.scratch_port:
        raise ConfigError("cấu hình / config: scratch_port trùng pg_port / equals pg_port")


def write_toml(path: Path, values: dict[str, Any]) -> None:
    """Write a config file (used by `kntc-dr sandbox up`)."""
    lines = ["# kntc-dr configuration (see dr/config.py for every key)"]
    tables: dict[str, dict[str, Any]] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            tables[k] = v
        elif isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int):
            lines.append(f"{k} = {v}")
        elif isinstance(v, list | tuple):
            lines.append(f"{k} = [{', '.join(_q(str(x)) for x in v)}]")
        else:
            lines.append(f"{k} = {_q(str(v))}")
    for name, table in tables.items():
        lines.append(f"\n[{name}]")
        lines.extend(f"{_q(str(k))} = {_q(str(v))}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
