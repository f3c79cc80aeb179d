"""The database objects that write the audit trail, checked against what this code expects.

The owner role owns the audited tables, so it can disable their triggers (ALTER TABLE ... DISABLE
TRIGGER) or replace the functions that write and hash the log. Each is tampering:
- an audit trigger missing, disabled (tgenabled 'D', or 'R': fires only for replication), or calling
  another function;
- a function of the trail whose definition is not the one shipped with this code (a fingerprint of
  its body, settings, security and volatility);
- a row whose content is not its last audited image (kntc.audit_drift): a write made while a
  trigger was off, even if it was enabled again since. This one runs in the database, so only
  once the fingerprint of kntc.audit_drift itself matched.

A migration that changes one of these functions changes FINGERPRINTS in the same commit
(`kntc audit fingerprints` prints them from a migrated database).
"""

from __future__ import annotations

import hashlib
from typing import Any

from core_app.audit.chain import Problem, Report

AUDITED = ("case_file", "party", "petition", "case_deadline", "account", "access_log")
CAPTURE = ("audit_ins", "audit_upd", "audit_del")
APPEND_ONLY = ("audit_log", "access_log")
PROTECT = ("audit_log_protect", "audit_log_no_truncate")

# kntc.<name>: sha256 of prosrc, proconfig, prosecdef, provolatile (see fingerprint()).
FINGERPRINTS: dict[str, str] = {
    "audit_capture": "8f4442d81cec71559ea7da872a05ac2deda5c99be8ed46e2813923796f166721",
    "audit_text": "c4f0aa92e26446f32d7c4573d7501aa1a530ef67376bc043fcdcc03dba59e800",
    "audit_canonical": "15067037ddcf580e37a1396d35e5ab45bd6aa341ec3cdb9448b6664fb0a4fc11",
    "audit_refuse_change": "34c76010a94d817aff838771124609954f42addaca62d2c06c7d1516f4ef4357",
    "audit_chain_of": "3a27d3b82d378ee59ca4437c7f5116eb073292cb3e4c21da76bfc92fff0f66b3",
    "audit_chain_count": "1ac1369c354063fb92c5f93602897569f8bc677ed343037fc7fd647d2702a5d3",
    "audit_head": "92c8f99d49557ca9cf226e32ec795b68577dce3a17ab50910d278911454304b1",
    "audit_drift": "539d1b34900bb54d125d9789bcf6a5ea7300dad513416d860a7241203765b77a",
    "record_access": "6ac94b5b93523fa7ee5112f8e914aece036b86dd71eecea667993785d5fb4d2b",
    "record_declassification": "c29a4c9b8c01a5552dad6b7d22bd3153d988fe884252b485bdec4d71827253df",
    "record_login_failure": "72b5006a422ba288628feda8ede9ae5a69dbcb7bc83111e50e39e7f32ddba8e7",
    "session_open": "f28a23b0a370285f0e6ee74b564336f0cc33ba7be204e681882d457aa30bc000",
    "account_admin": "26633f92cb435aab53cb8958d57715b8a423d27474a2496bf49a8eb152ebd9bd",
    "record_account_import": "18102a7c629ec8a88767a472c00b8ab51615d3eb734ad75be2fb9d31ca361add",
    "password_set": "851315fee80a4fe2ed6a0316776f46679d058b5a3e2c4f8a31a568cf8fb65bcb",
    "factor_confirm": "6ad3d94a5d07a301ec9cfbc7e596d673f58e0fa441eb2ce2cf537d8516e55ef9",
    "session_end": "96382e477374d2989f386a8d6dff2cf1f7219770ff314ed61e5819834a8ea420",
    "session_max_hours": "67aa538c4ea54423d4f430057ad18bb19767c76cc8368286396c7f578008e44e",
    "record_exchange_read": "3415ff1ec741ea2621a550b364e57772d7c1b640a43eb693d9da9c7853f7d3bd",
    "exchange_log_append": "178cd2e1bdcc8167e33fede259b896d9ef3686f02bebdc91c9c3a29f09a4c9ac",
}

TRIGGERS = """
SELECT c.relname AS table_name, t.tgname, t.tgenabled, p.proname, pn.nspname AS fn_schema
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
  JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
 WHERE n.nspname = 'kntc' AND NOT t.tgisinternal
"""

FUNCTIONS = """
SELECT p.proname, p.prosrc, coalesce(array_to_string(p.proconfig, ','), '') AS config, p.prosecdef,
       p.provolatile::text AS volatility
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'kntc' AND p.proname = ANY (%s)
"""


def fingerprint(row: dict[str, Any]) -> str:
    text = "\x00".join([row["prosrc"], row["config"], str(bool(row["prosecdef"])), row["volatility"]])
    return hashlib.sha256(text.encode()).hexdigest()


def functions(conn: Any) -> dict[str, list[str]]:
    """name -> fingerprints of every function of that name (an added overload is a second entry)."""
    out: dict[str, list[str]] = {}
    for row in conn.execute(FUNCTIONS, (list(FINGERPRINTS) or ["audit_capture"],)).fetchall():
        out.setdefault(row["proname"], []).append(fingerprint(row))
    return out


def check_triggers(conn: Any, rep: Report) -> None:
    found = {(r["table_name"], r["tgname"]): r for r in conn.execute(TRIGGERS).fetchall()}
    expected = [(t, g, "audit_capture") for t in AUDITED for g in CAPTURE]
    expected += [(t, g, "audit_refuse_change") for t in APPEND_ONLY for g in PROTECT]
    expected += [("case_file", "case_declassified", "record_declassification")]
    # The exchange log (migration 0011) is append-only like the audit log.
    expected += [("exchange_log", "exchange_log_protect", "audit_refuse_change"),
                 ("exchange_log", "exchange_log_no_truncate", "audit_refuse_change")]
    for table, name, function in expected:
        row = found.get((table, name))
        if row is None:
            problem = "is missing / đã bị xóa"
        elif row["tgenabled"] in ("D", "R"):
            problem = "is disabled / đã bị tắt"
        elif (row["fn_schema"], row["proname"]) != ("kntc", function):
            problem = f"calls {row['fn_schema']}.{row['proname']} instead of kntc.{function}"
        else:
            continue
        rep.problems.append(Problem(-1, 0, "trigger", f"{name} on kntc.{table} {problem}"))


def check_functions(conn: Any, rep: Report) -> bool:
    """True when every function of the trail is the one shipped (so kntc.audit_drift may be trusted)."""
    got = functions(conn)
    ok = True
    for name, want in FINGERPRINTS.items():
        have = got.get(name, [])
        if have != [want]:
            ok = False
            what = "is missing" if not have else "was replaced / đã bị thay" if len(have) == 1 else "has overloads"
            rep.problems.append(Problem(-1, 0, "function", f"kntc.{name}() {what}"))
    return ok


def check_drift(conn: Any, rep: Report, limit: int = 100) -> None:
    for row in conn.execute("SELECT * FROM kntc.audit_drift(%s)", (limit,)).fetchall():
        rep.problems.append(Problem(-1, 0, "drift", f"kntc.{row['table_name']} row {row['row_key']}: "
                                    f"{row['problem']} (written while an audit trigger was off)"))
