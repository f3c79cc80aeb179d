"""The neighbourhood of an address for duplicate detection: trigram codes kept per party, in one
index range per address unit, so that a duplicate check reads one contiguous range and compares
integer arrays instead of scoring every case of the commune with pg_trgm's similarity().

Why (measured with `make bench-dedup N=5000000`, 1 Dec 2026): at 5 million case files a commune
holds a median of 1,193 parties and up to 11,723. kntc.dedup_match scored every one of them:
an index lookup into case_file (about 4 us) and similarity() on the subject (about 8 us: it
extracts the trigrams of both strings on every call). The check took p95 110 ms. With the codes
stored, the intersection of two sorted integer arrays (intarray) gives the same figure in about
1 us, and only the few cases that pass are read and scored exactly as before. The old bounded
neighbourhood (LIMIT 5000) also left out part of the largest communes; this reads all of it.

Revision ID: 0004_dedup_neighbourhood
Revises: 0003_actor_plpgsql
"""

from alembic import op

revision = "0004_dedup_neighbourhood"
down_revision = "0003_actor_plpgsql"
branch_labels = None
depends_on = None

SQL = r"""
-- intarray in a schema of its own: installed in public it would take over the int[] operators
-- (&&, @>, <@) of every query and index in the database. It is used here by name only.
CREATE SCHEMA kntc_intarray;
REVOKE ALL ON SCHEMA kntc_intarray FROM PUBLIC;
CREATE EXTENSION intarray WITH SCHEMA kntc_intarray;

-- The trigrams of a text as sorted, distinct 32-bit codes: the same set pg_trgm's similarity()
-- compares (show_trgm gives it), so |a & b| / (|a| + |b| - |a & b|) is the same figure, unless
-- two trigrams of the pair share a code (about 1 in 10^6 pairs, and then by one trigram).
-- hashtext() is PostgreSQL's hash of text, the one hash partitioning relies on across upgrades.
CREATE FUNCTION kntc.trigram_codes(t text) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT pg_catalog.hashtext(g) ORDER BY pg_catalog.hashtext(g)), '{}')
      FROM unnest(public.show_trgm(t)) AS g
$$;

-- One expression, neither STRICT nor with a FROM, so that the planner inlines it: called as a
-- function it would cost more than the comparison.
CREATE FUNCTION kntc.code_similarity(a integer[], b integer[]) RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (cardinality(kntc_intarray._int_inter(a, b))::real
            / greatest(1, cardinality(a) + cardinality(b) - cardinality(kntc_intarray._int_inter(a, b))))::real
$$;

-- Derived data, one row per party, kept by the triggers below; nobody but the owner reads it
-- (the codes of a name are a fingerprint of it).
CREATE TABLE kntc.dedup_key (
    party_id         uuid PRIMARY KEY REFERENCES kntc.party(id) ON DELETE CASCADE,
    case_id          uuid NOT NULL,
    address_unit_id  integer,
    name_codes       integer[] NOT NULL,
    subject_codes    integer[] NOT NULL,
    respondent_codes integer[]
);
REVOKE ALL ON kntc.dedup_key FROM PUBLIC, kntc_app, kntc_readonly;

INSERT INTO kntc.dedup_key
SELECT p.id, p.case_id, p.address_unit_id, kntc.trigram_codes(p.name_norm),
       coalesce(kntc.trigram_codes(c.subject_norm), '{}'), kntc.trigram_codes(c.respondent_norm)
  FROM kntc.party p JOIN kntc.case_file c ON c.id = p.case_id
 ORDER BY p.address_unit_id;
-- Indexes after the rows: building one is quicker than growing it row by row (5 M: 3.5 min, not 7).
-- The whole neighbourhood of an address from the index alone, in key order: one range of
-- adjacent pages whatever order the parties were recorded in.
CREATE INDEX dedup_key_unit ON kntc.dedup_key (address_unit_id)
    INCLUDE (case_id, name_codes, subject_codes, respondent_codes);
CREATE INDEX dedup_key_case ON kntc.dedup_key (case_id);
ANALYZE kntc.dedup_key;

-- Parties arrive in sets (an intake form, a COPY of 20,000): one statement, one join.
CREATE FUNCTION kntc.dedup_key_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO kntc.dedup_key
    SELECT a.id, a.case_id, a.address_unit_id, kntc.trigram_codes(a.name_norm),
           coalesce(kntc.trigram_codes(c.subject_norm), '{}'), kntc.trigram_codes(c.respondent_norm)
      FROM added a JOIN kntc.case_file c ON c.id = a.case_id;
    RETURN NULL;
END $$;
CREATE TRIGGER party_dedup_key_added AFTER INSERT ON kntc.party
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION kntc.dedup_key_added();

CREATE FUNCTION kntc.dedup_key_party_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE kntc.dedup_key k
       SET case_id = NEW.case_id, address_unit_id = NEW.address_unit_id,
           name_codes = kntc.trigram_codes(NEW.name_norm),
           subject_codes = coalesce(kntc.trigram_codes(c.subject_norm), '{}'),
           respondent_codes = kntc.trigram_codes(c.respondent_norm)
      FROM kntc.case_file c
     WHERE k.party_id = NEW.id AND c.id = NEW.case_id;
    RETURN NULL;
END $$;
CREATE TRIGGER party_dedup_key_changed AFTER UPDATE OF full_name, address_unit_id, case_id ON kntc.party
    FOR EACH ROW EXECUTE FUNCTION kntc.dedup_key_party_changed();

-- A corrected subject or respondent: the case's parties are compared by the new text.
CREATE FUNCTION kntc.dedup_key_case_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE kntc.dedup_key
       SET subject_codes = coalesce(kntc.trigram_codes(NEW.subject_norm), '{}'),
           respondent_codes = kntc.trigram_codes(NEW.respondent_norm)
     WHERE case_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER case_dedup_key_changed AFTER UPDATE OF subject, respondent ON kntc.case_file
    FOR EACH ROW WHEN (OLD.subject IS DISTINCT FROM NEW.subject OR OLD.respondent IS DISTINCT FROM NEW.respondent)
    EXECUTE FUNCTION kntc.dedup_key_case_changed();

-- The rules are those of 0002 (see there); only the way to the neighbours changes. A neighbour
-- is kept for exact scoring when its codes say the subject is at least loosely similar, or the
-- name similar with some likeness of subject; the margin of 0.01 keeps every case the exact
-- figures would keep even if two trigrams shared a code.
CREATE OR REPLACE FUNCTION kntc.dedup_match(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                            p_respondent text, p_limit integer DEFAULT 20,
                                            p_exclude uuid DEFAULT NULL)
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
        SELECT DISTINCT kntc.norm(t.n) AS n, t.u, kntc.trigram_codes(kntc.norm(t.n)) AS codes
          FROM unnest(coalesce(p_names, '{}'), coalesce(p_units, '{}')) AS t(n, u)
         WHERE t.n IS NOT NULL AND t.u IS NOT NULL
    ), near AS (
        SELECT k.case_id, max(x.ns) AS ns
          FROM qp JOIN kntc.dedup_key k ON k.address_unit_id = qp.u
         CROSS JOIN LATERAL (SELECT kntc.code_similarity(k.name_codes, qp.codes) AS ns,
                                    kntc.code_similarity(k.subject_codes, qs_codes) AS ss) x
         WHERE x.ss >= 0.39 OR (x.ns >= 0.69 AND x.ss >= 0.29)
         GROUP BY k.case_id
    ), hits AS (
        SELECT p.case_id, 'id_number'::text AS reason, 1.0::real AS w
          FROM kntc.party p
         WHERE p.id_number = ANY (coalesce(p_ids, '{}'))
        UNION ALL
        SELECT p.case_id, 'name_address', 0.8
          FROM qp JOIN kntc.party p ON p.address_unit_id = qp.u AND p.name_norm = qp.n
        UNION ALL
        SELECT n.case_id, 'near', n.ns FROM near n
    ), per_case AS (
        SELECT h.case_id,
               array_agg(DISTINCT h.reason) FILTER (WHERE h.reason <> 'near') AS strong,
               max(h.w) FILTER (WHERE h.reason <> 'near') AS person_w,
               coalesce(max(h.w) FILTER (WHERE h.reason = 'near'), 0) AS name_sim
          FROM hits h
         WHERE h.case_id IS DISTINCT FROM p_exclude
         GROUP BY h.case_id
    ), scored AS MATERIALIZED (
        SELECT pc.case_id, pc.strong, pc.person_w, pc.name_sim,
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
               || CASE WHEN s.rs >= 0.6 THEN '{similar_respondent}'::text[] ELSE '{}' END AS why
          FROM scored s
    )
    SELECT j.case_id, j.why,
           (0.6 * coalesce(j.person_w, CASE WHEN 'similar_name_address' = ANY (j.why) THEN 0.5 * j.name_sim ELSE 0 END)
            + 0.3 * j.ss + 0.1 * j.rs)::real AS score,
           j.ss, j.rs
      FROM judged j
     WHERE j.strong IS NOT NULL OR 'similar_name_address' = ANY (j.why) OR 'similar_subject' = ANY (j.why)
     ORDER BY 3 DESC, 1
     LIMIT p_limit;
END $$;

REVOKE ALL ON FUNCTION kntc.dedup_key_added(), kntc.dedup_key_party_changed(), kntc.dedup_key_case_changed()
    FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
