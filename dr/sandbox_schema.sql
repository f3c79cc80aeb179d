-- A small stand-in for the KNTC schema (same key table names as core_app's migrations), written
-- here so that dr/ and its tests never depend on core_app. Sizes scale with :scale.
CREATE SCHEMA kntc;

CREATE TABLE kntc.unit (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code text NOT NULL UNIQUE,
  name text NOT NULL,
  parent_id bigint REFERENCES kntc.unit
);
CREATE TABLE kntc.account (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username text NOT NULL UNIQUE,
  full_name text NOT NULL,
  unit_id bigint NOT NULL REFERENCES kntc.unit,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE kntc.case_file (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code text NOT NULL UNIQUE,
  unit_id bigint NOT NULL REFERENCES kntc.unit,
  kind text NOT NULL CHECK (kind IN ('complaint', 'denunciation', 'petition', 'reflection')),
  status text NOT NULL DEFAULT 'received',
  subject text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_file_unit_received ON kntc.case_file (unit_id, received_at);
CREATE TABLE kntc.petition (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id bigint NOT NULL REFERENCES kntc.case_file,
  channel text NOT NULL,
  content text NOT NULL
);
CREATE INDEX petition_case ON kntc.petition (case_id);
CREATE TABLE kntc.party (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id bigint NOT NULL REFERENCES kntc.case_file,
  role text NOT NULL,
  full_name text NOT NULL,
  id_number text
);
CREATE INDEX party_case ON kntc.party (case_id);
CREATE INDEX party_id_number ON kntc.party (id_number);
CREATE TABLE kntc.case_event (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id bigint NOT NULL REFERENCES kntc.case_file,
  kind text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  note text,
  writer_seq bigint UNIQUE  -- set by the PITR drill's writer: one row per acknowledged commit
);
CREATE INDEX case_event_case ON kntc.case_event (case_id, at);

INSERT INTO kntc.unit (code, name) VALUES ('T01', 'Thanh tra Chính phủ');
INSERT INTO kntc.unit (code, name, parent_id)
SELECT 'X' || lpad(g::text, 5, '0'), 'Phường ' || g, 1 FROM generate_series(1, 200) g;
INSERT INTO kntc.account (username, full_name, unit_id)
SELECT 'canbo.' || g, 'Cán bộ ' || g, 1 + g % 201 FROM generate_series(1, 300) g;
INSERT INTO kntc.case_file (code, unit_id, kind, subject, received_at)
SELECT 'HS-2026-' || lpad(g::text, 7, '0'), 1 + g % 201,
       (ARRAY['complaint', 'denunciation', 'petition', 'reflection'])[1 + g % 4],
       'Khiếu nại quyết định thu hồi đất số ' || g, timestamptz '2026-01-01' + g * interval '1 minute'
  FROM generate_series(1, :scale) g;
INSERT INTO kntc.petition (case_id, channel, content)
SELECT g, 'in_person', repeat('Tôi không đồng ý với mức bồi thường khi thu hồi đất ở. ', 4)
  FROM generate_series(1, :scale) g;
INSERT INTO kntc.party (case_id, role, full_name, id_number)
SELECT 1 + g % :scale, (ARRAY['complainant', 'respondent'])[1 + g % 2], 'Nguyễn Văn ' || g,
       lpad((1089000000 + g)::text, 12, '0')
  FROM generate_series(1, 2 * :scale) g;
INSERT INTO kntc.case_event (case_id, kind, note)
SELECT 1 + g % :scale, 'received', 'Tiếp nhận đơn' FROM generate_series(1, 3 * :scale) g;
ANALYZE;
