"""The duplicate check scores a case found near by its key from the key's codes.

Why: after `kntc.dedup_match` has found the keys of the ward near the petition in subject (by the
keys' trigram codes), it read each of those cases' rows and compared subject and respondent again
with pg_trgm's `similarity()`, about 15 µs a case. On a ward where many cases are about the same
matter (a land recovery, a site clearance) most of the ward is near: a check on the bench's ward of
4,807 keys read and compared some 2,700 cases.

The key's codes are the hashes of exactly the trigrams pg_trgm compares (`kntc.trigram_codes` over
`show_trgm` of the same normalised text, kept by the key's triggers when a case's subject or
respondent changes), and both measures are the shared trigrams over the trigrams of either. So a
case found near now carries the subject and respondent similarity computed from its key, and only a
case found by a strong hit alone (an ID number, an exact name and unit) has its row read. (Two
different trigrams of one comparison with the same 32-bit hash, about one comparison in a million,
count as one: the near keys were already chosen by the codes, and such a score moves by one
trigram.) Two smaller savings on the same rows: the respondent's codes are intersected once, not
twice, and a key's party is read for an identity number that would rule its name out only when the
name counts (0.7 and above, the only names that change a candidate's reasons or score).

On the bench's cluster the old and new functions gave the same rows, reasons and scores, to the
last bit, for 320 queries (51,410 rows), and a match on the bench's ward took 19–22 ms instead of
44–49 ms (loadtests/CAPACITY.md, "The duplicate check's candidates scored from their keys").

The function keeps its setting to plan once (`plan_cache_mode`), which a replacement would
otherwise drop.

Revision ID: 0034_dedup_scored_from_keys
Revises: 0033_audit_drift_once_per_row
"""

from alembic import op

revision = "0034_dedup_scored_from_keys"
down_revision = "0033_audit_drift_once_per_row"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION kntc.dedup_match(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                 p_respondent text, p_limit integer DEFAULT 20, p_exclude uuid DEFAULT NULL,
                                 p_name_ids text[] DEFAULT NULL)
RETURNS TABLE (case_id uuid, reasons text[], score real, subject_sim real, respondent_sim real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    qs text := coalesce(kntc.norm(p_subject), '');
    qr text := kntc.norm(p_respondent);
    qs_codes integer[] := kntc.trigram_codes(qs);
    qr_codes integer[] := kntc.trigram_codes(qr);
BEGIN
    RETURN QUERY
    WITH qp AS MATERIALIZED (
        SELECT DISTINCT kntc.norm(t.n) AS n, t.u, kntc.trigram_codes(kntc.norm(t.n)) AS codes, t.i AS idn
          FROM unnest(coalesce(p_names, '{}'), coalesce(p_units, '{}'), coalesce(p_name_ids, '{}')) AS t(n, u, i)
         WHERE t.n IS NOT NULL AND t.u IS NOT NULL
    ), near AS (
        -- Each key of the unit is compared on the subject first (one intersection of the codes, kept
        -- by the fence below); only a key near enough in subject is compared on the name, and only one
        -- near enough in both is checked for protection (a check of the officer's hand on the case).
        -- A name counts only from 0.7 (similar_name_address), so only such a key's party is read for
        -- an identity number that would rule the name out.
        SELECT m.case_id, max(m.ns) FILTER (WHERE m.ns >= 0.7 AND NOT (m.idn IS NOT NULL AND EXISTS (
                   SELECT 1 FROM kntc.party p WHERE p.id = m.party_id AND p.id_number IS NOT NULL
                                                AND p.id_number <> m.idn))) AS ns,
               max(m.ss) AS ss,
               max(CASE WHEN qr_codes IS NULL OR m.respondent_codes IS NULL THEN 0
                        ELSE (SELECT (r.n::real / greatest(1, cardinality(m.respondent_codes)
                                                              + cardinality(qr_codes) - r.n))::real
                                FROM (SELECT cardinality(kntc_intarray._int_inter(m.respondent_codes, qr_codes)) AS n
                                       OFFSET 0) r) END)::real AS rs
          FROM (SELECT k.case_id, k.party_id, k.protected, k.respondent_codes, qp.idn, s.ss,
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
        SELECT p.case_id, 'id_number'::text AS reason, 1.0::real AS w, NULL::real AS ss, NULL::real AS rs
          FROM kntc.party p
         WHERE p.id_number = ANY (coalesce(p_ids, '{}'))
           AND (NOT p.identity_protected OR kntc.handles_case(p.case_id))
        UNION ALL
        SELECT p.case_id,
               CASE WHEN qp.idn IS NOT NULL AND p.id_number IS NOT NULL AND p.id_number <> qp.idn
                    THEN 'same_name_other_id' ELSE 'name_address' END,
               CASE WHEN qp.idn IS NOT NULL AND p.id_number IS NOT NULL AND p.id_number <> qp.idn
                    THEN 0.0 ELSE 0.8 END::real, NULL, NULL
          FROM qp JOIN kntc.party p ON p.address_unit_id = qp.u AND p.name_norm = qp.n
         WHERE NOT p.identity_protected OR kntc.handles_case(p.case_id)
        UNION ALL
        SELECT n.case_id, 'near', n.ns, n.ss, n.rs FROM near n
    ), per_case AS (
        SELECT h.case_id,
               array_agg(DISTINCT h.reason) FILTER (WHERE h.reason NOT IN ('near', 'same_name_other_id')) AS strong,
               max(h.w) FILTER (WHERE h.reason NOT IN ('near', 'same_name_other_id')) AS person_w,
               coalesce(max(h.w) FILTER (WHERE h.reason = 'near'), 0) AS name_sim,
               bool_or(h.reason = 'same_name_other_id') AS other_person,
               max(h.ss) AS key_ss, max(h.rs) AS key_rs
          FROM hits h
         WHERE h.case_id IS DISTINCT FROM p_exclude
         GROUP BY h.case_id
    ), scored AS MATERIALIZED (
        SELECT pc.case_id, pc.strong, pc.person_w, pc.name_sim, pc.other_person,
               -- A case found near by its key is scored from the key's codes, which are the trigrams
               -- of the case's subject and respondent that pg_trgm compares. Only a case found by a
               -- strong hit alone (an ID number, an exact name) has its row read, one case at a time.
               CASE WHEN qs = '' THEN 0 WHEN pc.key_ss IS NOT NULL THEN pc.key_ss
                    ELSE (SELECT similarity(c.subject_norm, qs) FROM kntc.case_file c WHERE c.id = pc.case_id)
               END::real AS ss,
               CASE WHEN qr IS NULL THEN 0 WHEN pc.key_ss IS NOT NULL THEN pc.key_rs
                    ELSE (SELECT coalesce(similarity(c.respondent_norm, qr), 0) FROM kntc.case_file c
                           WHERE c.id = pc.case_id)
               END::real AS rs
          FROM per_case pc
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
