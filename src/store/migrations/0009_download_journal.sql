-- patchgate store, version 9: the download journal, the lean front of the audit trail.
--
-- A served download used to be one row of `downloads`, inserted (ended_at NULL) before its
-- first byte and updated at its end: each begin wrote the row and five index entries, and
-- each end moved the row in three of them. Now the serving path writes here: the begin is
-- one appended row (the only index is the primary key, the id), durable by the same group
-- commit before the first byte, and the end updates that row in place. A background fold
-- (AuditSink::FoldDownloads) later moves finished rows into `downloads` in large batches
-- (one INSERT of the final row, then DELETE here, in one transaction), so the indexes
-- of `downloads` take each download once.
--
-- The columns are those of `downloads`, so a reader of the trail reads both tables with
-- the same SELECT (UNION ALL): a download is in exactly one of them at every instant.
-- Ids come from the sequence of `downloads` (the row keeps its id when folded): on SQLite
-- each batch reserves its ids by advancing downloads' row of sqlite_sequence (ensured
-- below), on PostgreSQL with nextval of downloads' id sequence.
-- engine: sqlite
CREATE TABLE download_journal (
  id INTEGER PRIMARY KEY,
-- engine: postgresql
CREATE TABLE download_journal (
  id BIGINT PRIMARY KEY,
-- engine: all
  started_at BIGINT NOT NULL,
  ended_at BIGINT,
  node TEXT NOT NULL,
  user_id BIGINT,
  username TEXT NOT NULL DEFAULT '',
  org_id BIGINT,
  target_path TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT '',
  range_header TEXT NOT NULL DEFAULT '',
  bytes_sent BIGINT NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL,
  remote_addr TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT 'served',
  http_status INTEGER NOT NULL DEFAULT 200,
  unknown_user INTEGER NOT NULL DEFAULT 0,
  unknown_target INTEGER NOT NULL DEFAULT 0,
  import_key TEXT,
  detail TEXT NOT NULL DEFAULT ''
);
-- engine: sqlite
-- downloads' sequence row exists from now on (SQLite creates it at the first insert only).
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'downloads', COALESCE((SELECT MAX(id) FROM downloads), 0)
  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'downloads');
