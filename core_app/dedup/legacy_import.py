"""`kntc import FILE.csv`: case files exported from the old system (since 15 March 2018).

Every row is checked first, and every rejected row is reported with its line number and reason;
one rejected row means nothing is imported. Rows then go in one short transaction each, through
the same duplicate rules as intake: a row that is the same matter as a case already held (same
person and a similar subject) joins that case as a petition; a weaker match is imported as a new
case and listed for review. Short transactions, because every audited write holds its audit
chain's lock until commit: one transaction for the whole file held it for minutes. An import
stopped half-way (or a row the database refused) is finished by running the same command on the
same file again: the rows it already imported are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core_app.dedup import units

CUTOVER = date(2018, 3, 15)
REQUIRED = ("source_ref", "received_on", "unit", "kind", "subject", "content", "party_name")
OPTIONAL = ("channel", "status", "respondent", "party_id_number", "party_address", "party_address_unit",
            "party_role", "accepted_on", "resolved_on", "closed_on", "classification", "identity_protected")
KINDS = {"complaint": "complaint", "kn": "complaint", "khieu_nai": "complaint",
         "denunciation": "denunciation", "tc": "denunciation", "to_cao": "denunciation",
         "recommendation": "recommendation", "knpa": "recommendation", "kien_nghi": "recommendation",
         "phan_anh": "recommendation", "multi": "multi", "nhieu_noi_dung": "multi"}
CHANNELS = {"in_person", "letter", "email", "fax", "phone", "online", "transferred"}
STATUSES = {"received", "in_handling", "accepted", "verifying", "resolved", "closed", "guided", "filed", "returned"}
ROLES = {"complainant", "denouncer", "petitioner", "representative"}
DEFAULT_ROLE = {"complaint": "complainant", "denunciation": "denouncer"}
# The Denunciations Law 2018 keeps every denouncer's identity secret unless they waive it; the old
# system did not record a waiver, so an imported denouncer is protected unless the row says 0.
PROTECTED_BY_DEFAULT = {"denouncer"}


@dataclass
class Row:
    line: int
    data: dict[str, Any]


@dataclass
class Outcome:
    imported: list[tuple[int, str, str]] = field(default_factory=list)  # (line, case code, 'new'|'linked')
    review: list[tuple[int, str, str]] = field(default_factory=list)  # (line, new code, possible duplicate)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    @property
    def ok(self) -> bool:
        return not self.rejected


def _date(value: str) -> date:
    value = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"ngày không hợp lệ / invalid date {value!r} (YYYY-MM-DD or DD/MM/YYYY)")


def parse(text: str, today: date) -> tuple[list[Row], list[tuple[int, str]]]:
    """Rows that passed the checks that need no database, and the rejected lines."""
    rows: list[Row] = []
    bad: list[tuple[int, str]] = []
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"thiếu cột / missing columns: {', '.join(missing)}")
        if unknown:
            parts.append(f"cột không biết / unknown columns: {', '.join(unknown)}")
        return [], [(1, "; ".join(parts))]
    reader.fieldnames = header
    seen: dict[str, int] = {}
    start = 2
    for raw in reader:
        line, start = start, reader.line_num + 1
        if None in raw:
            bad.append((line, f"thừa cột / {len(raw[None]) if raw[None] else 0} extra field(s)"))
            continue
        v = {k: (raw.get(k) or "").strip() for k in REQUIRED + OPTIONAL}
        if not any(v.values()):
            continue
        try:
            rows.append(Row(line, _check(v, today)))
        except ValueError as exc:
            bad.append((line, str(exc)))
            continue
        ref = v["source_ref"]
        if ref in seen:
            bad.append((line, f"source_ref {ref!r} trùng dòng / repeats line {seen[ref]}"))
        seen.setdefault(ref, line)
    return rows, bad


def _check(v: dict[str, str], today: date) -> dict[str, Any]:
    for col in REQUIRED:
        if not v[col]:
            raise ValueError(f"thiếu / missing {col}")
    if len(v["source_ref"]) > 100:
        raise ValueError("source_ref quá dài / longer than 100 characters")
    received = _date(v["received_on"])
    if received < CUTOVER:
        raise ValueError(f"received_on {received} trước / before {CUTOVER} (cut-over of the national database)")
    if received > today:
        raise ValueError(f"received_on {received} ở tương lai / is in the future")
    kind = KINDS.get(v["kind"].lower())
    if kind is None:
        raise ValueError(f"kind {v['kind']!r} không hợp lệ / invalid (complaint, denunciation, recommendation, multi)")
    channel = v["channel"] or "letter"
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r} không hợp lệ / invalid ({', '.join(sorted(CHANNELS))})")
    status = v["status"] or "received"
    if status not in STATUSES:
        raise ValueError(f"status {status!r} không hợp lệ / invalid")
    if not 3 <= len(v["subject"]) <= 500:
        raise ValueError("subject cần 3–500 ký tự / needs 3 to 500 characters")
    if len(v["content"]) > 100_000 or (v["respondent"] and len(v["respondent"]) > 500):
        raise ValueError("content or respondent too long")
    if not 2 <= len(v["party_name"]) <= 300:
        raise ValueError("party_name cần 2–300 ký tự / needs 2 to 300 characters")
    idn = v["party_id_number"] or None
    if idn and not (len(idn) == 12 and idn.isdigit()):
        raise ValueError(f"party_id_number {idn!r} phải gồm 12 chữ số / must be 12 digits")
    role = v["party_role"] or DEFAULT_ROLE.get(kind, "petitioner")
    if role not in ROLES:
        raise ValueError(f"party_role {role!r} không hợp lệ / invalid ({', '.join(sorted(ROLES))})")
    dates = {k: _date(v[k]) if v[k] else None for k in ("accepted_on", "resolved_on", "closed_on")}
    prev = received
    for k in ("accepted_on", "resolved_on", "closed_on"):
        if dates[k]:
            if dates[k] < prev or dates[k] > today:
                raise ValueError(f"{k} {dates[k]} không hợp lệ / out of order with the earlier dates or in the future")
            prev = dates[k]
    protect_raw = v["identity_protected"]
    if protect_raw not in ("", "0", "1"):
        raise ValueError("identity_protected phải là 0 hoặc 1 / must be 0 or 1")
    protected = role in PROTECTED_BY_DEFAULT if protect_raw == "" else protect_raw == "1"
    cls = int(v["classification"]) if v["classification"].isdigit() else (0 if not v["classification"] else -1)
    if cls not in (0, 1, 2):
        raise ValueError("classification phải là 0, 1 hoặc 2 / must be 0, 1 or 2")
    return {"source_ref": v["source_ref"], "received_on": received, "unit": v["unit"], "kind": kind,
            "channel": channel, "status": status, "subject": v["subject"], "content": v["content"],
            "respondent": v["respondent"] or None, "party_name": v["party_name"], "party_id_number": idn,
            "party_address": v["party_address"] or None, "party_address_unit": v["party_address_unit"] or None,
            "party_role": role, "identity_protected": protected,
            "denouncer_confidential": protected and kind in ("denunciation", "multi"), "classification": cls, **dates}


NEW_CASE = """
INSERT INTO kntc.case_file (code, kind, subject, content, respondent, classification, denouncer_confidential,
    channel, status, receiving_unit_id, handling_unit_id, received_on, accepted_on, resolved_on, closed_on,
    lookup_secret_hash)
VALUES (kntc.next_case_code(%(unit_id)s, %(year)s), %(kind)s, %(subject)s, %(content)s, %(respondent)s,
    %(classification)s, %(denouncer_confidential)s, %(channel)s, %(status)s, %(unit_id)s, %(unit_id)s, %(received_on)s,
    %(accepted_on)s, %(resolved_on)s, %(closed_on)s, %(secret)s)
RETURNING id, code
"""
NEW_PARTY = """
INSERT INTO kntc.party (case_id, role, full_name, id_number, address, address_unit_id, address_unit_written_id,
    identity_protected)
VALUES (%(case_id)s, %(party_role)s, %(party_name)s, %(party_id_number)s, %(party_address)s, %(address_unit_id)s,
    %(address_unit_written_id)s,
    %(identity_protected)s)
RETURNING id
"""
NEW_PETITION = """
INSERT INTO kntc.petition (case_id, unit_id, received_on, channel, sender_party_id, content, intake_check_id)
VALUES (%(case_id)s, %(unit_id)s, %(received_on)s, %(channel)s, %(party_id)s, %(content)s, %(check_id)s)
RETURNING id
"""
# The import's duplicate check and decision, kept with the case as an officer's are: what the
# matcher proposed, and what the import's rule decided (same person and similar subject: linked).
CHECK = """
INSERT INTO kntc.dedup_check (source, unit_id, unit_path, query, candidates)
SELECT 'import', u.id, u.path, %s, %s FROM kntc.unit u WHERE u.id = %s
RETURNING id
"""
DECISION = """
INSERT INTO kntc.dedup_decision (check_id, source, unit_id, unit_path, decision, case_id, petition_id, note)
SELECT %s, 'import', u.id, u.path, %s, %s, %s, %s FROM kntc.unit u WHERE u.id = %s
"""
MATCH = """
SELECT m.reasons, m.score, c.code FROM kntc.dedup_match(%s, %s, %s, %s, %s, 3, NULL, %s) m
  JOIN kntc.case_file c ON c.id = m.case_id ORDER BY m.score DESC
"""
STRONG_PERSON = {"id_number", "name_address"}


def run(conn: Any, path: Path, today: date, dry_run: bool = False) -> Outcome:
    """Import the file, one transaction per row (psycopg sync autocommit connection, owner role, dict rows)."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).digest()
    out = Outcome()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        out.rejected.append((1, f"tệp không phải UTF-8 / the file is not UTF-8 (byte {exc.start})"))
        return out
    rows, bad = parse(text, today)
    out.rejected.extend(bad)
    if not rows and not bad:
        out.rejected.append((1, "tệp không có dòng dữ liệu / the file has no data rows"))
    codes = [r.data["unit"] for r in rows]
    codes += [r.data["party_address_unit"] for r in rows if r.data["party_address_unit"]]
    resolved = units.resolve_sync(conn, codes)
    written = units.resolve_written_sync(conn, [r.data["party_address_unit"] for r in rows
                                                if r.data["party_address_unit"]])
    refs = [r.data["source_ref"] for r in rows]
    done = {x["source_ref"]: (x["code"], bytes(x["file_sha256"])) for x in conn.execute(
        "SELECT li.source_ref, c.code, li.file_sha256 FROM kntc.legacy_import li "
        "JOIN kntc.case_file c ON c.id = li.case_id WHERE li.source_ref = ANY (%s)", (refs,)).fetchall()}
    # Some rows, not all, of this very file went in: an interrupted import, finished by this run.
    from_this_file = sum(1 for ref in refs if ref in done and done[ref][1] == digest)
    resuming = 0 < from_this_file < len(rows)
    for r in rows:
        d = r.data
        if resolved.get(d["unit"]) is None:
            out.rejected.append((r.line, f"không tìm thấy đơn vị / unknown unit {d['unit']!r}"))
        elif d["party_address_unit"] and resolved.get(d["party_address_unit"]) is None:
            out.rejected.append((r.line, f"không tìm thấy đơn vị địa chỉ / unknown address unit "
                                         f"{d['party_address_unit']!r}"))
        elif d["source_ref"] in done and not (resuming and done[d["source_ref"]][1] == digest):
            out.rejected.append((r.line, f"đã nhập trước đó / already imported as case {done[d['source_ref']][0]}"))
    if out.rejected:
        out.rejected.sort()
        return out
    for r in rows:
        if r.data["source_ref"] in done:
            continue
        d = {**r.data, "unit_id": resolved[r.data["unit"]],
             "address_unit_id": resolved.get(r.data["party_address_unit"] or ""),
             "address_unit_written_id": (written.get(r.data["party_address_unit"] or "") or (None, None))[1],
             "year": r.data["received_on"].year, "secret": secrets.token_bytes(32)}
        try:
            with conn.transaction():
                _import_row(conn, d, r.line, digest, out)
                if dry_run:
                    # Each row is undone at once: a dry run holds no lock either. (Rows of the file that
                    # duplicate each other are therefore matched only by the real run.)
                    raise psycopg.Rollback
        except psycopg.Error as exc:  # a constraint the checks above missed: report the line, keep going
            reason = exc.diag.message_primary or str(exc).splitlines()[0]
            out.rejected.append((r.line, f"cơ sở dữ liệu từ chối / refused by the database: {reason}"))
    return out


def _import_row(conn: Any, d: dict[str, Any], line: int, digest: bytes, out: Outcome) -> None:
    ids = [d["party_id_number"]] if d["party_id_number"] else []
    # The name is looked for at the current unit and at the legacy one as written ("match on both").
    at = [u for u in (d["address_unit_id"], d["address_unit_written_id"]) if u]
    names, unit_ids = [d["party_name"]] * len(at), at
    name_ids = [d["party_id_number"]] * len(names)
    found = conn.execute(MATCH, (ids, names, unit_ids, d["subject"], d["respondent"], name_ids)).fetchall()
    top = found[0] if found else None
    query = {"source_ref": d["source_ref"], "line": line, "subject": d["subject"],
             "parties": [{"full_name": d["party_name"], "id_number": d["party_id_number"],
                          "address_unit": d["party_address_unit"]}]}
    proposed = [{"case_code": f["code"], "reasons": f["reasons"], "score": round(float(f["score"]), 3)} for f in found]
    check = conn.execute(CHECK, (Jsonb(query), Jsonb(proposed), d["unit_id"])).fetchone()
    d["check_id"] = check["id"]
    if top and STRONG_PERSON & set(top["reasons"]) and "similar_subject" in top["reasons"]:
        case = conn.execute("SELECT id, code FROM kntc.case_file WHERE code = %s", (top["code"],)).fetchone()
        pet = conn.execute(NEW_PETITION, {**d, "case_id": case["id"], "party_id": None}).fetchone()
        conn.execute(DECISION, (check["id"], "linked", case["id"], pet["id"],
                                "legacy import: same person, similar subject", d["unit_id"]))
        conn.execute("INSERT INTO kntc.case_event (case_id, unit_id, action, note, data) "
                     "VALUES (%s, %s, 'import', %s, %s)",
                     (case["id"], d["unit_id"], "petition from the legacy system joined this case",
                      Jsonb({"source_ref": d["source_ref"], "line": line, "reasons": top["reasons"]})))
        conn.execute("INSERT INTO kntc.legacy_import (source_ref, case_id, petition_id, legacy_unit, file_sha256, "
                     "line_no) VALUES (%s, %s, %s, %s, %s, %s)",
                     (d["source_ref"], case["id"], pet["id"], d["unit"], digest, line))
        out.imported.append((line, case["code"], "linked"))
        return
    case = conn.execute(NEW_CASE, d).fetchone()
    party = conn.execute(NEW_PARTY, {**d, "case_id": case["id"]}).fetchone()
    pet = conn.execute(NEW_PETITION, {**d, "case_id": case["id"], "party_id": party["id"]}).fetchone()
    conn.execute(DECISION, (check["id"], "new", case["id"], None,
                            "legacy import: to review, possible duplicate" if top else "legacy import: no candidate",
                            d["unit_id"]))
    conn.execute("INSERT INTO kntc.case_event (case_id, unit_id, action, to_status, note, data) "
                 "VALUES (%s, %s, 'import', %s, %s, %s)",
                 (case["id"], d["unit_id"], d["status"], "imported from the legacy system",
                  Jsonb({"source_ref": d["source_ref"], "legacy_unit": d["unit"], "line": line})))
    conn.execute("INSERT INTO kntc.legacy_import (source_ref, case_id, petition_id, legacy_unit, file_sha256, line_no) "
                 "VALUES (%s, %s, %s, %s, %s, %s)", (d["source_ref"], case["id"], pet["id"], d["unit"], digest, line))
    out.imported.append((line, case["code"], "new"))
    if top:
        out.review.append((line, case["code"], f"{top['code']} ({', '.join(top['reasons'])})"))
