"""A local source cluster with WAL archiving into a local encrypted pgBackRest repository.

It is what the tests, the PITR drill and a developer (`kntc-dr sandbox up`) run the runbooks'
commands against before the two-site lab exists: a PostgreSQL 15 cluster (data checksums) on a
loopback port with a small KNTC-like schema, archive_command into its own stanza, a repository
encrypted with aes-256-cbc under a passphrase generated into the sandbox folder (never in git),
and a dr.toml that points kntc-dr at all of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dr import config, pg, proc
from dr.config import DrConfig
from dr.errors import DrError
from dr.pgbackrest import PgBackRest, archive_settings_conf, write_conf

SCHEMA = Path(__file__).with_name("sandbox_schema.sql")


def sandbox_config(workdir: Path, port: int, stanza: str, scratch_port: int,
                   pgbackrest_options: dict[str, str] | None = None) -> DrConfig:
    return DrConfig(stanza=stanza, repo_path=workdir / "repo", pg_path=workdir / "source" / "pg", pg_port=port,
                    pg_socket=workdir / "source" / "sock", database="kntc", cipher="aes-256-cbc",
                    cipher_pass_file=workdir / "repo-cipher-pass", state_dir=workdir / "state",
                    scratch_port=scratch_port, pgbackrest_options=dict(pgbackrest_options or {}),
                    source=workdir / "dr.toml")


def source_cluster(cfg: DrConfig) -> pg.Cluster:
    return pg.Cluster(datadir=cfg.pg_path, port=cfg.pg_port, socket_dir=cfg.pg_socket,
                      log_file=cfg.pg_path.parent / "postgresql.log", pg_bin=cfg.pg_bin)


def down(workdir: Path, purge: bool = False) -> None:
    """Stop every cluster of a sandbox (source and scratch copies); with purge, delete it."""
    for pidfile in sorted(workdir.glob("**/postmaster.pid")) if workdir.exists() else []:
        datadir = pidfile.parent
        res = proc.run([pg.PG_BIN / "pg_ctl", "stop", "-m", "immediate", "-w", "-D", datadir], timeout=120)
        if res.returncode != 0 and pg.pid_alive((pg.read_pidfile(datadir) or pg.PidFile(-1, None, None)).pid):
            raise DrError(f"không dừng được / cannot stop the cluster in {datadir}: {res.stderr.strip()}")
    if purge and workdir.exists():
        shutil.rmtree(workdir)


def up(workdir: Path, port: int, stanza: str = "kntc-sandbox", scratch_port: int | None = None, scale: int = 2000,
       pgbackrest_options: dict[str, str] | None = None, fresh: bool = False) -> Path:
    """Create (or, with fresh, recreate) and start the sandbox; return the path of its dr.toml."""
    workdir = workdir.resolve()
    if fresh:
        down(workdir, purge=True)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    cfg = sandbox_config(workdir, port, stanza, scratch_port or port + 1, pgbackrest_options)
    toml = workdir / "dr.toml"
    values = {"stanza": stanza, "repo_path": "repo", "pg_path": "source/pg", "pg_port": port,
              "pg_socket": "source/sock", "database": "kntc", "cipher": "aes-256-cbc",
              "cipher_pass_file": "repo-cipher-pass", "state_dir": "state", "scratch_port": cfg.scratch_port}
    if pgbackrest_options:
        values["pgbackrest_options"] = dict(pgbackrest_options)
    config.write_toml(toml, values)
    write_conf(cfg, create_passphrase=True)
    cluster = source_cluster(cfg)
    proc.make_dir(cfg.pg_path.parent, 0o755)
    proc.make_dir(cfg.pg_socket, 0o750)
    created = not (cfg.pg_path / "PG_VERSION").exists()
    if created:
        if cfg.pg_path.exists():
            shutil.rmtree(cfg.pg_path)
        proc.run([cfg.pg_bin / "initdb", "-D", cfg.pg_path, "--data-checksums", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--auth-local=peer", "--auth-host=reject", "-U", "postgres"],
                 timeout=300, check=True, what="initdb")
        with (cfg.pg_path / "postgresql.conf").open("a") as f:
            f.write("\n# kntc-dr sandbox source\n"
                    f"port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{cfg.pg_socket}'\n"
                    "shared_buffers = '64MB'\nmax_connections = 40\nlog_line_prefix = '%m [%p] '\n"
                    "track_commit_timestamp = on\n" + archive_settings_conf(cfg))
    if not cluster.is_running():
        cluster.start()
    if created:
        proc.run([cfg.pg_bin / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cfg.pg_socket, "-p", str(port),
                  "-d", "postgres", "-c", "CREATE DATABASE kntc"], check=True, what="createdb")
        # On standard input: postgres may not be able to read the checkout (root's home, mode 0700).
        proc.run([cfg.pg_bin / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"scale={int(scale)}",
                  "-h", cfg.pg_socket, "-p", str(port), "-d", "kntc", "-f", "-"], timeout=600, check=True,
                 what="schema", input_text=SCHEMA.read_text())
        pgbr = PgBackRest(cfg)
        pgbr.stanza_create()
        pgbr.check()
    return toml
