"""The duplicate check compares each key of the unit on the subject once, and looks further only at the near.

Why: `kntc.dedup_match` reads every duplicate key of the petitioner's address unit (a ward's
whole history) and keeps those near in subject, or near in name and somewhat near in subject. It
was written as one condition over two calls of `kntc.code_similarity`, which PostgreSQL expands
in place: every key of the ward had its subject codes intersected four times (the similarity
appears twice in the condition, and the function intersects twice), and the officer's hand on a
protected case (`kntc.handles_case`, a look-up of the officer each time) could be asked for any key,
near or not, depending on the order the planner gave the condition's parts. On the bench's ward
(5,294 keys, 603 protected; `make bench-app`'s intake, one client) the match took 22 to 35 ms of
the intake's 34 ms of database time.

The comparison now runs in a fenced subquery (OFFSET 0, which PostgreSQL does not look into):
the subject codes are intersected once per key; the name is compared only for keys at least 0.29
near in subject (every rule needs that much); protection and the identity number are checked after,
for the few keys that passed. The rules, thresholds and scores are the same: on the bench's
cluster the old and new functions gave the same candidates, reasons and scores for every party of
60 case files, and the match of the bench's intake took 11 to 13 ms (loadtests/CAPACITY.md,
"The duplicate check's comparisons in order").

Revision ID: 0030_dedup_subject_first
Revises: 0029_actor_remembered_in_one
"""

from alembic import op

revision = "0030_dedup_subject_first"
down_revision = "0029_actor_remembered_in_one"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION kntc.dedup_match(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                 p_respondent text, p_limit integer DEFAULT 20, p_exclude uuid DEFAULT NULL,
                                 p_name_ids text[] DEFAULT NULL)
RETURNS TABLE (case_id uuid, reasons text[], score real, subject_sim real, respondent_sim real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    qs text := coalesce(kntc.norm(p_subject), '');
    qr text := kntc.norm(p_respondent);
    qs_codes integer[] := kntc.trigram_codes(qs);
BEGIN
    RETURN QUERY
    WITH qp AS MATERIALIZED (
        SELECT DISTINCT kntc.norm(t.n) AS n, t.u, kntc.trigram_codes(kntc.norm(t.n)) AS codes, t.i AS idn
          FROM unnest(coalesce(p_names, '{}'), coalesce(p_units, '{}'), coalesce(p_name_ids, '{}')) AS t(n, u, i)
         WHERE t.n IS NOT NULL AND t.u IS NOT NULL
    ), near AS (
        -- Each key of the unit is compared on the subject first (one intersection of the codes, kept
        -- by the fence below); only a key near enough in subject is compared on the name, and only one
        -- near enough in both is checked for protection (a check of the officer's hand on the case),
        -- and for the identity number, which reads the party row.
        SELECT m.case_id, max(m.ns) FILTER (WHERE NOT (m.idn IS NOT NULL AND EXISTS (
                   SELECT 1 FROM kntc.party p WHERE p.id = m.party_id AND p.id_number IS NOT NULL
                                                AND p.id_number <> m.idn))) AS ns
          FROM (SELECT k.case_id, k.party_id, k.protected, qp.idn, s.ss,
                       CASE WHEN s.ss >= 0.29 THEN kntc.code_similarity(k.name_codes, qp.codes) END AS ns
                  FROM qp JOIN kntc.dedup_key k ON k.address_unit_id = qp.u
                 CROSS JOIN LATERAL (SELECT cardinality(kntc_intarray._int_inter(k.subject_codes, qs_codes)) AS n
                                      OFFSET 0) si
                 CROSS JOIN LATERAL (SELECT (si.n::real / greatest(1, cardinality(k.subject_codes)
                                                                      + cardinality(qs_codes) - si.n))::real AS ss) s
                 WHERE s.ss >= 0.29
                OFFSET 0) m
         WHERE (m.ss >= 0.39 OR m.ns >= 0.69)
           AND (NOT m.protected OR kntc.handles_case(m.case_id))
         GROUP BY m.case_id
    ), hits AS (
        SELECT p.case_id, 'id_number'::text AS reason, 1.0::real AS w
          FROM kntc.party p
         WHERE p.id_number = ANY (coalesce(p_ids, '{}'))
           AND (NOT p.identity_protected OR kntc.handles_case(p.case_id))
        UNION ALL
        SELECT p.case_id,
               CASE WHEN qp.idn IS NOT NULL AND p.id_number IS NOT NULL AND p.id_number <> qp.idn
                    THEN 'same_name_other_id' ELSE 'name_address' END,
               CASE WHEN qp.idn IS NOT NULL AND p.id_number IS NOT NULL AND p.id_number <> qp.idn
                    THEN 0.0 ELSE 0.8 END::real
          FROM qp JOIN kntc.party p ON p.address_unit_id = qp.u AND p.name_norm = qp.n
         WHERE NOT p.identity_protected OR kntc.handles_case(p.case_id)
        UNION ALL
        SELECT n.case_id, 'near', n.ns FROM near n
    ), per_case AS (
        SELECT h.case_id,
               array_agg(DISTINCT h.reason) FILTER (WHERE h.reason NOT IN ('near', 'same_name_other_id')) AS strong,
               max(h.w) FILTER (WHERE h.reason NOT IN ('near', 'same_name_other_id')) AS person_w,
               coalesce(max(h.w) FILTER (WHERE h.reason = 'near'), 0) AS name_sim,
               bool_or(h.reason = 'same_name_other_id') AS other_person
          FROM hits h
         WHERE h.case_id IS DISTINCT FROM p_exclude
         GROUP BY h.case_id
    ), scored AS MATERIALIZED (
        SELECT pc.case_id, pc.strong, pc.person_w, pc.name_sim, pc.other_person,
               CASE WHEN qs = '' THEN 0 ELSE similarity(c.subject_norm, qs) END::real AS ss,
               CASE WHEN qr IS NULL OR c.respondent_norm IS NULL THEN 0
                    ELSE similarity(c.respondent_norm, qr) END::real AS rs
          FROM per_case pc JOIN kntc.case_file c ON c.id = pc.case_id
    ), judged AS MATERIALIZED (
        SELECT s.*,
               coalesce(s.strong, '{}')
               || CASE WHEN s.strong IS NULL AND s.name_sim >= 0.7 AND s.ss >= 0.3
                       THEN '{similar_name_address}'::text[] ELSE '{}' END
               || CASE WHEN s.ss >= 0.6 OR (s.ss >= 0.4 AND s.rs >= 0.6) THEN '{similar_subject}'::text[]
                       ELSE '{}' END
               || CASE WHEN s.rs >= 0.6 THEN '{similar_respondent}'::text[] ELSE '{}' END
               || CASE WHEN s.strong IS NULL AND s.other_person THEN '{same_name_other_id}'::text[]
                       ELSE '{}' END AS why
          FROM scored s
    )
    SELECT j.case_id, j.why,
           (0.6 * coalesce(j.person_w, CASE WHEN 'similar_name_address' = ANY (j.why) THEN 0.5 * j.name_sim ELSE 0 END)
            + 0.3 * j.ss + 0.1 * j.rs)::real AS score,
           j.ss, j.rs
      FROM judged j
     WHERE j.strong IS NOT NULL OR 'similar_name_address' = ANY (j.why) OR 'similar_subject' = ANY (j.why)
        OR 'same_name_other_id' = ANY (j.why)
     ORDER BY 3 DESC, 1
     LIMIT p_limit;
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
