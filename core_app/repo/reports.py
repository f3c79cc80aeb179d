"""The periodic report forms and their SQL: figures per unit, and the list behind each figure.

The forms are the data tables of the Government Inspectorate's periodic report under Circular
01/2024/TT-TTCP, numbered and worded as in the annex of Circular 02/2021/TT-TTCP that it replaced
(the annex of 01/2024 is to be checked against them: runbooks/reports.md §1): 01/TCD citizen
reception, 01/XLD petition handling, 01/KQGQ complaint resolution, 03/KQGQ denunciation resolution.
Each keeps the columns this database holds the facts for (see runbooks/reports.md for those it
does not).

A form is a list of columns; a column is a predicate over the rows of one *source* (receptions,
petitions, handling decisions, resolution rounds), counted or summed. The figure and the list behind
it are built from the same source and the same predicate, so a figure is always the length (or, for
people, the sum) of its list.

Every query runs in the officer's `Database.acting()` transaction: row-level security has already cut
the rows to the officer's area and clearance, so a figure counts only what the viewer may open: a
case classified above their clearance counts nowhere, its reception and petitions included (their
policies follow the case's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from core_app.domain.periods import Period
from core_app.repo import keyset

# A delegation ("đoàn đông người"): five people or more coming about one matter (the Citizen Reception
# Law 2013, art. 30, and Decree 64/2014/NĐ-CP ask such a group to send representatives).
DELEGATION = 5


@dataclass(frozen=True)
class Source:
    """Rows a form counts: one per reception, petition, handling decision or resolution round.

    `sql` selects them for the unit subtree `%(path)s` and the period; each row has `item_id` (text),
    `sort_key` (its date or time: the list's order and page cursor), `unit_path` and `unit_id` (the unit
    it counts for) and the case it belongs to (`case_code`, NULL for a reception not recorded as one).
    """

    name: str
    sql: str
    sort_type: str  # the SQL type of sort_key: 'timestamptz' or 'date'
    dated_by: tuple[str, str]  # what sort_key is, for the list's heading


CASE_COLUMNS = ("c.id AS case_id, c.code AS case_code, c.kind AS case_kind, c.status AS case_status, "
                "c.subject AS case_subject")

# The case of a reception, petition or decision, looked up row by row (OFFSET 0 keeps it a lookup). Row-level
# security makes the planner believe few case files are visible (its quals compare with the session's
# scope, unknown when planning), so as a join it would read every visible case first and probe the
# period's rows from each one: a province's worth of probes for a quarter's rows.
_CASE_OF = ("LEFT JOIN LATERAL (SELECT c.id AS case_id, c.code AS case_code, c.kind AS case_kind, "
            "c.status AS case_status, c.subject AS case_subject FROM kntc.case_file c WHERE c.id = {fk} OFFSET 0) c "
            "ON true")
_CASE_FIELDS = "c.case_id, c.case_code, c.case_kind, c.case_status, c.case_subject"

RECEPTIONS = Source("receptions", f"""
SELECT r.id::text AS item_id, r.received_at AS sort_key, r.unit_path, r.unit_id, {_CASE_FIELDS},
       r.people_count AS people, r.action_taken
  FROM kntc.reception r {_CASE_OF.format(fk="r.case_id")}
 WHERE r.received_at >= %(start_at)s AND r.received_at < %(end_before)s AND r.unit_path <@ %(path)s::ltree
""", "timestamptz", ("Thời điểm tiếp", "Received at"))

# The unit a petition counts for is the unit that received it.
PETITIONS = Source("petitions", f"""
SELECT p.id::text AS item_id, p.received_on AS sort_key, u.path AS unit_path, p.unit_id, {_CASE_FIELDS},
       p.people_count AS people, p.channel, p.reception_id IS NOT NULL AS via_reception
  FROM kntc.unit u JOIN kntc.petition p ON p.unit_id = u.id {_CASE_OF.format(fk="p.case_id")}
 WHERE p.received_on BETWEEN %(start)s AND %(end)s AND u.path <@ %(path)s::ltree
""", "date", ("Ngày nhận đơn", "Petition received"))

# A handling decision on a case (accept, forward, guide, keep on file, return), counted for the unit
# that took it, on the day it took it (Vietnam's time): the case's timeline keeps every unit's.
DECISION_ACTIONS = ("accept", "forward", "guide", "file_away", "return")
DECISIONS = Source("decisions", f"""
SELECT e.id::text AS item_id, e.at AS sort_key, u.path AS unit_path, e.unit_id, {_CASE_FIELDS}, e.action
  FROM kntc.unit u JOIN kntc.case_event e ON e.unit_id = u.id {_CASE_OF.format(fk="e.case_id")}
 WHERE e.action IN ('accept', 'forward', 'guide', 'file_away', 'return')
   AND e.at >= %(start_at)s AND e.at < %(end_before)s AND u.path <@ %(path)s::ltree
""", "timestamptz", ("Thời điểm xử lý", "Decided at"))

# A resolution round: a case accepted for resolution (thụ lý) by the unit that holds it, still open at
# the period's start or accepted within it. A complaint resolved once and complained of again keeps its
# first round too: the second-round event kept the first round's dates and the unit that resolved it.
_OPEN_IN_PERIOD = "{a} <= %(end)s AND ({r} IS NULL OR {r} >= %(start)s)"
CURRENT_ROUND = f"""
SELECT c.id::text || '/' || c.complaint_round AS item_id, c.accepted_on AS sort_key, c.handling_unit_path AS unit_path,
       c.handling_unit_id AS unit_id, {CASE_COLUMNS}, c.complaint_round AS round, c.accepted_on, c.resolved_on,
       d.due_on, coalesce(d.extensions, 0) AS extensions
  FROM kntc.case_file c
  LEFT JOIN kntc.case_deadline d
         ON d.case_id = c.id AND d.step = CASE WHEN c.complaint_round = 1 THEN 'resolve' ELSE 'resolve.r2' END
 WHERE c.kind = %(kind)s AND {_OPEN_IN_PERIOD.format(a="c.accepted_on", r="c.resolved_on")}
   AND c.handling_unit_path <@ %(path)s::ltree
"""
FIRST_ROUND = f"""
SELECT c.id::text || '/1', f.accepted_on, u.path, e.unit_id, {CASE_COLUMNS}, 1, f.accepted_on, f.resolved_on,
       d.due_on, coalesce(d.extensions, 0)
  FROM kntc.case_file c
  JOIN kntc.case_event e ON e.case_id = c.id AND e.action = 'second_round'
  CROSS JOIN LATERAL (SELECT (e.data #>> '{{first_round,accepted_on}}')::date AS accepted_on,
                             (e.data #>> '{{first_round,resolved_on}}')::date AS resolved_on) f
  JOIN kntc.unit u ON u.id = e.unit_id
  LEFT JOIN kntc.case_deadline d ON d.case_id = c.id AND d.step = 'resolve'
 WHERE c.kind = %(kind)s AND c.complaint_round = 2 AND {_OPEN_IN_PERIOD.format(a="f.accepted_on", r="f.resolved_on")}
   AND u.path <@ %(path)s::ltree
"""
COMPLAINT_ROUNDS = Source("complaint_rounds", CURRENT_ROUND + "UNION ALL" + FIRST_ROUND, "date",
                          ("Ngày thụ lý", "Accepted"))
DENUNCIATION_ROUNDS = Source("denunciation_rounds", CURRENT_ROUND, "date", ("Ngày thụ lý", "Accepted"))


@dataclass(frozen=True)
class Column:
    key: str
    label: tuple[str, str]
    source: Source
    where: str = "true"      # SQL over the source's row
    people: bool = False     # the sum of people rather than the count of rows
    group: tuple[str, str] | None = None  # the heading above a run of columns


@dataclass(frozen=True)
class Form:
    code: str
    number: str              # the circular's table number
    title: tuple[str, str]
    columns: tuple[Column, ...]
    # Column identities the table must satisfy ("(1) = (2) + (3)"), as (total, parts): tested, and
    # printed under the table as the circular prints them.
    checks: tuple[tuple[str, tuple[str, ...]], ...]
    params: tuple[tuple[str, Any], ...] = ()
    unit_rule: tuple[str, str] = ("", "")

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    def numbered(self, key: str) -> int:
        return [c.key for c in self.columns].index(key) + 1

    @property
    def sources(self) -> list[Source]:
        seen: list[Source] = []
        for c in self.columns:
            if c.source not in seen:
                seen.append(c.source)
        return seen


def _c(key: str, vi: str, en: str, source: Source, where: str = "true", people: bool = False,
       group: tuple[str, str] | None = None) -> Column:
    return Column(key, (vi, en), source, where, people, group)


BY_CONTENT = ("Phân loại theo nội dung", "By content")
RECEPTION_RESULT = ("Kết quả tiếp", "Outcome of the reception")
DELEGATIONS = ("Đoàn đông người", "Delegations (5 people or more)")
BY_SOURCE = ("Theo nguồn đơn", "By where it came from")
HANDLING = ("Kết quả xử lý đơn trong kỳ (vụ việc)", "Handling decisions in the period (cases)")
TO_RESOLVE = ("Vụ việc phải giải quyết", "Cases to resolve")
RESOLVED = ("Đã giải quyết trong kỳ", "Resolved in the period")
OPEN_AT_END = ("Chưa giải quyết xong cuối kỳ", "Open at the end of the period")

TCD = Form("tcd", "01/TCD", ("Tổng hợp kết quả tiếp công dân", "Citizen reception"), (
    _c("turns", "Lượt tiếp", "Receptions", RECEPTIONS),
    _c("people", "Số người được tiếp", "People received", RECEPTIONS, people=True),
    _c("delegations", "Số đoàn", "Delegations", RECEPTIONS, f"people >= {DELEGATION}", group=DELEGATIONS),
    _c("delegation_people", "Số người trong đoàn", "People in them", RECEPTIONS, f"people >= {DELEGATION}",
       people=True, group=DELEGATIONS),
    _c("complaint", "Khiếu nại", "Complaint", RECEPTIONS, "case_kind = 'complaint'", group=BY_CONTENT),
    _c("denunciation", "Tố cáo", "Denunciation", RECEPTIONS, "case_kind = 'denunciation'", group=BY_CONTENT),
    _c("recommendation", "Kiến nghị, phản ánh", "Recommendation, feedback", RECEPTIONS,
       "case_kind = 'recommendation'", group=BY_CONTENT),
    _c("multi", "Nhiều nội dung", "Several contents", RECEPTIONS, "case_kind = 'multi'", group=BY_CONTENT),
    _c("no_case", "Chưa lập hồ sơ", "No case file yet", RECEPTIONS, "case_id IS NULL", group=BY_CONTENT),
    _c("recorded", "Nhận đơn, lập hồ sơ", "Petition taken, case file opened", RECEPTIONS,
       "action_taken IN ('accepted', 'recorded')", group=RECEPTION_RESULT),
    _c("guided", "Hướng dẫn", "Guided", RECEPTIONS, "action_taken = 'guided'", group=RECEPTION_RESULT),
    _c("transferred", "Chuyển đơn", "Transferred", RECEPTIONS, "action_taken = 'transferred'",
       group=RECEPTION_RESULT),
    _c("no_result", "Chưa ghi kết quả", "No outcome recorded", RECEPTIONS, "action_taken IS NULL",
       group=RECEPTION_RESULT),
), (("turns", ("complaint", "denunciation", "recommendation", "multi", "no_case")),
    ("turns", ("recorded", "guided", "transferred", "no_result"))),
    unit_rule=("Lượt tiếp tính cho đơn vị của cán bộ tiếp, theo thời điểm tiếp.",
               "A reception counts for the unit of the officer who received the visitor, at the time received."))

XLD = Form("xld", "01/XLD", ("Tổng hợp kết quả xử lý đơn", "Petition handling"), (
    _c("petitions", "Tổng số đơn tiếp nhận trong kỳ", "Petitions received", PETITIONS),
    _c("via_reception", "Qua tiếp công dân", "At a reception", PETITIONS,
       "via_reception OR channel = 'in_person'", group=BY_SOURCE),
    _c("by_post", "Qua dịch vụ bưu chính", "By post", PETITIONS,
       "NOT via_reception AND channel = 'letter'", group=BY_SOURCE),
    _c("transferred_in", "Cơ quan, tổ chức khác chuyển đến", "Transferred by another body", PETITIONS,
       "NOT via_reception AND channel = 'transferred'", group=BY_SOURCE),
    _c("other_channel", "Trực tuyến, thư điện tử, điện thoại, fax", "Online, e-mail, phone, fax", PETITIONS,
       "NOT via_reception AND channel IN ('online', 'email', 'phone', 'fax')", group=BY_SOURCE),
    _c("complaint", "Khiếu nại", "Complaint", PETITIONS, "case_kind = 'complaint'", group=BY_CONTENT),
    _c("denunciation", "Tố cáo", "Denunciation", PETITIONS, "case_kind = 'denunciation'", group=BY_CONTENT),
    _c("recommendation", "Kiến nghị, phản ánh", "Recommendation, feedback", PETITIONS,
       "case_kind = 'recommendation'", group=BY_CONTENT),
    _c("multi", "Nhiều nội dung", "Several contents", PETITIONS, "case_kind = 'multi'", group=BY_CONTENT),
    _c("several_signers", "Trong đó: đơn nhiều người đứng tên", "Of which: signed by several people", PETITIONS,
       "people > 1"),
    _c("decided", "Tổng số vụ việc đã xử lý", "Cases decided", DECISIONS, group=HANDLING),
    _c("accepted", "Thụ lý giải quyết (thuộc thẩm quyền)", "Accepted for resolution (competent)", DECISIONS,
       "action = 'accept'", group=HANDLING),
    _c("forwarded", "Chuyển đơn đến cơ quan có thẩm quyền", "Forwarded to the competent body", DECISIONS,
       "action = 'forward'", group=HANDLING),
    _c("guided", "Hướng dẫn công dân", "Citizen guided", DECISIONS, "action = 'guide'", group=HANDLING),
    _c("filed", "Lưu đơn", "Kept on file", DECISIONS, "action = 'file_away'", group=HANDLING),
    _c("returned", "Trả lại đơn", "Returned", DECISIONS, "action = 'return'", group=HANDLING),
), (("petitions", ("via_reception", "by_post", "transferred_in", "other_channel")),
    ("petitions", ("complaint", "denunciation", "recommendation", "multi")),
    ("decided", ("accepted", "forwarded", "guided", "filed", "returned"))),
    unit_rule=("Đơn tính cho đơn vị nhận đơn, theo ngày nhận; quyết định xử lý tính cho đơn vị ra quyết định, "
               "theo thời điểm ghi trên hồ sơ.",
               "A petition counts for the unit that received it, on the day received; a handling decision for the "
               "unit that took it, at the time on the case's timeline."))


def _resolution(code: str, number: str, title: tuple[str, str], source: Source, kind: str,
                rounds: bool) -> Form:
    cols = [
        _c("to_resolve", "Tổng số", "Total", source, group=TO_RESOLVE),
        _c("carried", "Kỳ trước chuyển sang", "Carried over", source, "accepted_on < %(start)s", group=TO_RESOLVE),
        _c("accepted", "Thụ lý trong kỳ", "Accepted in the period", source, "accepted_on >= %(start)s",
           group=TO_RESOLVE),
    ]
    if rounds:
        cols += [_c("first_round", "Lần đầu", "First complaint", source, "round = 1", group=TO_RESOLVE),
                 _c("second_round", "Lần hai", "Second complaint", source, "round = 2", group=TO_RESOLVE)]
    done = "resolved_on <= %(end)s"
    still = "(resolved_on IS NULL OR resolved_on > %(end)s)"
    cols += [
        _c("resolved", "Tổng số", "Total", source, done, group=RESOLVED),
        _c("on_time", "Đúng thời hạn", "Within the time limit", source,
           f"{done} AND due_on IS NOT NULL AND resolved_on <= due_on", group=RESOLVED),
        _c("late", "Quá thời hạn", "Past the time limit", source,
           f"{done} AND due_on IS NOT NULL AND resolved_on > due_on", group=RESOLVED),
        _c("no_limit", "Không có thời hạn ghi nhận", "No time limit recorded", source,
           f"{done} AND due_on IS NULL", group=RESOLVED),
        _c("open", "Tổng số", "Total", source, still, group=OPEN_AT_END),
        _c("open_late", "Trong đó đã quá hạn", "Of which past the limit", source,
           f"{still} AND due_on < %(end)s", group=OPEN_AT_END),
        _c("extended", "Vụ việc có gia hạn giải quyết", "Cases whose time limit was extended", source,
           "extensions > 0"),
    ]
    checks = [("to_resolve", ("carried", "accepted")), ("to_resolve", ("resolved", "open")),
              ("resolved", ("on_time", "late", "no_limit"))]
    if rounds:
        checks.insert(1, ("to_resolve", ("first_round", "second_round")))
    return Form(code, number, title, tuple(cols), tuple(checks), (("kind", kind),),
                ("Vụ việc tính cho đơn vị thụ lý, giải quyết (lần đầu và lần hai, mỗi lần một dòng).",
                 "A case counts for the unit that accepted and resolves it (each complaint round on its own)."))


KN = _resolution("kn", "01/KQGQ", ("Tổng hợp kết quả giải quyết khiếu nại", "Complaint resolution"),
                 COMPLAINT_ROUNDS, "complaint", rounds=True)
TC = _resolution("tc", "03/KQGQ", ("Tổng hợp kết quả giải quyết tố cáo", "Denunciation resolution"),
                 DENUNCIATION_ROUNDS, "denunciation", rounds=False)
FORMS: dict[str, Form] = {f.code: f for f in (TCD, XLD, KN, TC)}


async def tune(conn: AsyncConnection[Any], timeout_ms: int) -> None:
    """A report's transaction: its own statement timeout (it reads far more than a page; an officer
    runs one at a time, see `one_at_a_time`), no JIT, generic plans.

    Measured at a million case files (`make bench-reports`): compiling these plans took longer than
    running them (1.4 s of 2.6 s for a commune's 01/XLD); and the plan made for the country's own
    path reads every visible case to check each petition (3.7 s for a quarter's petitions), where
    the generic plan, which cannot know the path covers the country, goes unit by unit through the
    indexes of migration 0015 and checks only the quarter's (0.7 s); for a province or a commune it
    is as fast or faster. The report's statements are prepared (`prepare=True`) for that.
    """
    for name, value in (("statement_timeout", str(timeout_ms)), ("jit", "off"),
                        ("plan_cache_mode", "force_generic_plan")):
        await conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _params(form: Form, period: Period, path: str) -> dict[str, Any]:
    return {"path": path, "depth": path.count(".") + 1, "start": period.start, "end": period.end,
            "start_at": period.start_at, "end_before": period.end_before, **dict(form.params)}


def _measure(c: Column) -> str:
    if c.people:
        return f"coalesce(sum(people) FILTER (WHERE {c.where}), 0)::bigint AS {c.key}"
    return f"count(*) FILTER (WHERE {c.where}) AS {c.key}"


# One scan of a source answers every column of it, per child unit of the report's unit and in total
# (a row counts for the child whose subtree holds its unit; the unit's own rows are its "direct" row).
FIGURES = """
WITH items AS ({items})
SELECT grouping(child) = 1 AS is_total, child::text AS child, {measures}
  FROM (SELECT i.*, CASE WHEN nlevel(i.unit_path) > %(depth)s THEN subpath(i.unit_path, 0, %(depth)s + 1)
                         ELSE i.unit_path END AS child
          FROM items i) x
 GROUP BY GROUPING SETS ((child), ())
"""

CHILDREN = """
SELECT id, code, name, kind, level, path::text AS path, valid_to
  FROM kntc.unit WHERE parent_id = %s ORDER BY valid_to IS NOT NULL, id
"""


async def figures(conn: AsyncConnection[Any], form: Form, unit: dict[str, Any], period: Period,
                  timeout_ms: int = 120_000) -> dict[str, Any]:
    """The table of `form` for `unit` (a row of kntc.unit with `path`): its total, its own row (cases at
    the unit itself) and one row per unit directly below it (every current one; a former one when it has
    figures), each summing its subtree."""
    await tune(conn, timeout_ms)
    params = _params(form, period, unit["path"])
    total = dict.fromkeys((c.key for c in form.columns), 0)
    by_child: dict[str, dict[str, int]] = {}
    for source in form.sources:
        cols = [c for c in form.columns if c.source is source]
        measures = ", ".join(_measure(c) for c in cols)
        sql = FIGURES.replace("{items}", source.sql).replace("{measures}", measures)
        for r in await (await conn.execute(sql, params, prepare=True)).fetchall():
            values = {c.key: int(r[c.key]) for c in cols}
            if r["is_total"]:
                total.update(values)
            else:
                by_child.setdefault(r["child"], dict.fromkeys((c.key for c in form.columns), 0)).update(values)
    zero = dict.fromkeys((c.key for c in form.columns), 0)
    rows = [{"code": unit["code"], "name": unit["name"], "direct": True, "former": False,
             "values": by_child.get(unit["path"], zero)}]
    for child in await (await conn.execute(CHILDREN, (unit["id"],))).fetchall():
        values = by_child.get(child["path"])
        if values is None and child["valid_to"] is not None:
            continue  # a former unit (before the 2025 reform) with nothing in the period
        rows.append({"code": child["code"], "name": child["name"], "direct": False,
                     "former": child["valid_to"] is not None, "values": values or zero})
    return {"total": total, "rows": rows}


LIST = """
WITH items AS ({items}),
hits AS (SELECT * FROM items
          WHERE ({where}) {direct}
            AND (%(after_key)s::{sort_type} IS NULL OR (sort_key, item_id) > (%(after_key)s::{sort_type}, %(after_id)s))
          ORDER BY sort_key, item_id
          LIMIT %(limit)s)
SELECT h.*, u.code AS unit_code, u.name AS unit_name
  FROM hits h JOIN kntc.unit u ON u.id = h.unit_id
 ORDER BY h.sort_key, h.item_id
"""

COUNT = """
WITH items AS ({items})
SELECT {measure} FROM items WHERE true {direct}
"""


async def listing(conn: AsyncConnection[Any], form: Form, column: Column, unit: dict[str, Any], period: Period,
                  *, direct: bool, after: str | None, per_page: int = 50, timeout_ms: int = 120_000) -> dict[str, Any]:
    """One page of the rows behind a figure (oldest first), and the figure itself."""
    key = keyset.decode(after, 2)
    await tune(conn, timeout_ms)
    params = {**_params(form, period, unit["path"]), "after_key": key[0] if key else None,
              "after_id": key[1] if key else None, "limit": per_page + 1}
    only_here = "AND unit_path = %(path)s::ltree" if direct else ""
    src = column.source
    sql = (LIST.replace("{items}", src.sql).replace("{where}", column.where).replace("{direct}", only_here)
           .replace("{sort_type}", src.sort_type))
    got = keyset.page(await (await conn.execute(sql, params, prepare=True)).fetchall(), per_page, "sort_key", "item_id")
    count_sql = (COUNT.replace("{items}", src.sql).replace("{measure}", _measure(column))
                 .replace("{direct}", only_here))
    row = await (await conn.execute(count_sql, params, prepare=True)).fetchone()
    got["figure"] = int(row[column.key]) if row else 0
    return got


# One report (a table or a list) at a time per officer, across every worker and host: a national table
# reads the whole country, and an officer who fires many at once would hold as many database cores. The
# lock is the transaction's: it goes with the commit, the rollback or the statement timeout.
REPORT_LOCK_CLASS = 727014


async def one_at_a_time(conn: AsyncConnection[Any], account_id: int) -> bool:
    """Take the officer's report lock for this transaction; False if another of their reports holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s) AS got", (REPORT_LOCK_CLASS, account_id))
    row = await cur.fetchone()
    return bool(row and row["got"])


async def report_unit(conn: AsyncConnection[Any], code: str, area_path: str) -> dict[str, Any] | None:
    """The unit `code` if it lies in the officer's area (None otherwise, or if there is no such unit)."""
    cur = await conn.execute("SELECT id, code, name, level, kind, path::text AS path, valid_to FROM kntc.unit "
                             "WHERE code = %s AND path <@ %s::ltree", (code, area_path))
    return await cur.fetchone()
