"""Notification benchmark: notifications per second through the outbox, queued and delivered.

On the local cluster it makes `--cases` case files whose citizen agreed to SMS and e-mail, then:
1. enqueue: records an acceptance on each (the case row and its timeline event, one transaction per
   case as an officer's action is) and times it, in turn with as many cases without consent, so the
   trigger's share is the difference. Each acceptance queues two messages (`kntc.notify_capture`).
2. delivery: runs `--workers` worker processes (`kntc notify deliver`, as operators run it) against the
   SMS gateway simulator (`kntc notify gateway-sim`) and a real SMTP server (aiosmtpd, in this
   process), first SMS alone, then e-mail alone, and counts the messages sent per second from the
   database's own timestamps (the first claim to the last message recorded sent), so process start
   is not counted.
It prints figures and asserts nothing.

    python -m loadtests.bench_notify                    # 400 cases, 1 worker
    python -m loadtests.bench_notify --cases 2000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests
from aiosmtpd.controller import Controller

from loadtests.stack import BIN, REPORTS, ROOT, StackError, free_port, local_env, prepare_database

UNIT = "X00008"  # Phường Ngọc Hà
API_KEY = "bench-notify-api-key-0123456789"


class Sink:
    """The SMTP server's handler: counts what arrives."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # aiosmtpd's name
        self.count += 1
        return "250 OK"


def make_cases(admin: str, n: int, consent: bool, tag: str) -> list[str]:
    """n received cases of the bench unit, each with one citizen (agreeing to SMS and e-mail, or not)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        ids = conn.execute(
            "INSERT INTO kntc.case_file (code, kind, subject, content, channel, receiving_unit_id, handling_unit_id, "
            "received_on, lookup_secret_hash, status) "
            "SELECT kntc.next_case_code(u.id, 2026), 'complaint', %s, 'Nội dung đo thông báo', 'in_person', u.id, "
            "u.id, current_date, sha256(gen_random_bytes(16)), 'in_handling' "
            "FROM kntc.unit u, generate_series(1, %s) WHERE u.code = %s RETURNING id",
            (f"bench-notify {tag}", n, UNIT)).fetchall()
        case_ids = [r[0] for r in ids]
        if len(case_ids) != n:
            raise StackError(f"no unit {UNIT} in this database: run kntc seed-units")
        conn.execute(
            "INSERT INTO kntc.party (case_id, role, full_name, phone, email, notify_channels) "
            "SELECT c, 'complainant', 'Người đo thông báo', '0912' || lpad((random() * 999999)::int::text, 6, '0'), "
            "'bench.' || substr(md5(c::text), 1, 8) || '@example.vn', %s FROM unnest(%s::uuid[]) c",
            (["sms", "email"] if consent else [], case_ids))
    return [str(c) for c in case_ids]


def accept_each(admin: str, silent: list[str], consenting: list[str]) -> tuple[float, float]:
    """Record an acceptance on each case, one transaction each, a case without consent and one with it
    in turn (so that the machine's drift weighs on both alike); the seconds each kind took."""
    took = {False: 0.0, True: 0.0}
    with psycopg.connect(admin) as conn:
        for pair in zip(silent, consenting, strict=True):
            for with_consent, cid in zip((False, True), pair, strict=True):
                t0 = time.perf_counter()
                conn.execute("UPDATE kntc.case_file SET status = 'accepted', accepted_on = current_date, "
                             "version = version + 1 WHERE id = %s", (cid,))
                conn.execute("INSERT INTO kntc.case_event (case_id, action, from_status, to_status) "
                             "VALUES (%s, 'accept', 'in_handling', 'accepted')", (cid,))
                conn.commit()
                took[with_consent] += time.perf_counter() - t0
    return took[False], took[True]


def deliver(env: dict[str, str], workers: int, admin: str, channel: str, case_ids: list[str], log: Path) -> tuple[
        int, float]:
    """Run the workers until every message of `channel` of these cases is sent; (messages, seconds)."""
    procs = []
    with log.open("w") as out:
        for _ in range(workers):
            procs.append(subprocess.Popen([str(BIN / "kntc"), "notify", "deliver", "--batch", "100"], env=env,
                                          stdout=out, stderr=subprocess.STDOUT))
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                left = conn.execute("SELECT count(*) FROM kntc.notification WHERE case_id = ANY (%s::uuid[]) "
                                    "AND channel = %s AND status = 'queued'", (case_ids, channel)).fetchone()[0]
                if not left:
                    break
                if any(p.poll() is not None for p in procs):
                    raise StackError(f"a worker exited: see {log}")
                time.sleep(0.2)
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('sent', 'delivered')), "
                "extract(epoch FROM max(sent_at) - min(last_attempt_at)) "
                "FROM kntc.notification WHERE case_id = ANY (%s::uuid[]) AND channel = %s",
                (case_ids, channel)).fetchone()
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    return int(row[0]), float(row[1] or 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg-root", type=Path, default=ROOT / ".data" / "local")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--cases", type=int, default=400)
    p.add_argument("--workers", type=int, default=1, help="worker processes delivering side by side")
    args = p.parse_args(argv)
    tag = secrets.token_hex(3)
    REPORTS.mkdir(parents=True, exist_ok=True)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    sim = None
    try:
        env = {**os.environ, **local_env(args.pg_root, args.pg_port)}
        prepare_database(env)
        admin = env["KNTC_ADMIN_DATABASE_URL"]
        # Earlier runs' and the demo's queued messages are not this run's to send.
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("UPDATE kntc.notification SET status = 'cancelled', last_error = 'bench: not this run' "
                         "WHERE status = 'queued'")
        silent = make_cases(admin, args.cases, False, tag)
        consenting = make_cases(admin, args.cases, True, tag)
        base_s, with_s = accept_each(admin, silent, consenting)
        queued = args.cases * 2

        smtp.start()
        sim_port = free_port()
        with (REPORTS / "bench-notify-sim.log").open("w") as out:
            sim = subprocess.Popen([str(BIN / "kntc"), "notify", "gateway-sim", "--port", str(sim_port),
                                    "--api-key", API_KEY], env=env, stdout=out, stderr=subprocess.STDOUT)
        sim_url = f"http://127.0.0.1:{sim_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(sim_url + "/_sim/state", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise StackError("the gateway simulator did not answer") from None
                time.sleep(0.2)
        sms_env = {**env, "KNTC_NOTIFY_SMS_GATEWAY_URL": sim_url, "KNTC_NOTIFY_SMS_API_KEY": API_KEY}
        mail_env = {**env, "KNTC_NOTIFY_SMTP_HOST": "127.0.0.1", "KNTC_NOTIFY_SMTP_PORT": str(smtp.port),
                    "KNTC_NOTIFY_SMTP_STARTTLS": "false", "KNTC_NOTIFY_MAIL_FROM": "thongbao@kntc.test"}
        sms_n, sms_s = deliver(sms_env, args.workers, admin, "sms", consenting, REPORTS / "bench-notify-sms.log")
        mail_n, mail_s = deliver(mail_env, args.workers, admin, "email", consenting,
                                 REPORTS / "bench-notify-mail.log")
        on_phones = len(requests.get(sim_url + "/_sim/state", timeout=10).json()["handset"])
    except StackError as exc:
        print(f"bench-notify: {exc}", file=sys.stderr)
        return 1
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(15)
        smtp.stop()
    print(f"cases: {args.cases} with consent (SMS and e-mail), {args.cases} without; workers: {args.workers}")
    print(f"enqueue   acceptances with consent   {args.cases / with_s:8.0f} /s   -> {queued / with_s:8.0f} "
          f"notifications/s queued  ({with_s * 1000 / args.cases:.2f} ms per acceptance)")
    print(f"          acceptances without        {args.cases / base_s:8.0f} /s   "
          f"({base_s * 1000 / args.cases:.2f} ms; the trigger's share: "
          f"{(with_s - base_s) * 1000 / args.cases:.2f} ms per acceptance)")
    print(f"delivery  SMS to the simulator       {sms_n / max(sms_s, 1e-9):8.0f} /s   ({sms_n} in {sms_s:.1f} s; "
          f"{on_phones} on the phones)")
    print(f"          e-mail to aiosmtpd         {mail_n / max(mail_s, 1e-9):8.0f} /s   ({mail_n} in {mail_s:.1f} s; "
          f"{sink.count} received)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
