-- Incident scope asks "which downloads on node N overlapped [from, to]". A download that
-- ended inside the window may have started before it, so the index range on started_at
-- must reach back by the longest download the node ever recorded. That bound used to be a
-- 24 h constant: a seed-sized window (170 downloads) then read the node's whole previous
-- day (17,000 rows on a busy node), and a download longer than 24 h was missed.
--
-- download_bounds keeps, per node, the longest finished download (ended_at - started_at)
-- ever written, maintained by triggers on every insert and every end written, whoever
-- writes it. Downloads whose end was never recorded (ended_at IS NULL) have no length;
-- the scope reads them through their own small partial index.
CREATE TABLE download_bounds (
  node TEXT PRIMARY KEY,
  longest_micros BIGINT NOT NULL
);
INSERT INTO download_bounds (node, longest_micros)
  SELECT node, MAX(ended_at - started_at) FROM downloads WHERE ended_at IS NOT NULL GROUP BY node;
CREATE INDEX downloads_unfinished ON downloads (node, started_at) WHERE ended_at IS NULL;
-- engine: sqlite
-- One primary-key probe per row written; the bound row is rewritten only when it grows.
CREATE TRIGGER downloads_bound_insert AFTER INSERT ON downloads WHEN NEW.ended_at IS NOT NULL
BEGIN
  INSERT INTO download_bounds (node, longest_micros) VALUES (NEW.node, NEW.ended_at - NEW.started_at)
    ON CONFLICT (node) DO UPDATE SET longest_micros = excluded.longest_micros
    WHERE excluded.longest_micros > download_bounds.longest_micros;
END;
CREATE TRIGGER downloads_bound_update AFTER UPDATE OF started_at, ended_at, node ON downloads
  WHEN NEW.ended_at IS NOT NULL
BEGIN
  INSERT INTO download_bounds (node, longest_micros) VALUES (NEW.node, NEW.ended_at - NEW.started_at)
    ON CONFLICT (node) DO UPDATE SET longest_micros = excluded.longest_micros
    WHERE excluded.longest_micros > download_bounds.longest_micros;
END;
-- engine: postgresql
-- Once per statement over its new rows (a bulk import or a batch of ends is one
-- aggregate, not one trigger call per row).
CREATE FUNCTION downloads_note_bounds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO download_bounds (node, longest_micros)
    SELECT node, MAX(ended_at - started_at) FROM new_rows WHERE ended_at IS NOT NULL GROUP BY node
    ON CONFLICT (node) DO UPDATE SET longest_micros = EXCLUDED.longest_micros
    WHERE download_bounds.longest_micros < EXCLUDED.longest_micros;
  RETURN NULL;
END
$$;
CREATE TRIGGER downloads_bound_insert AFTER INSERT ON downloads REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION downloads_note_bounds();
CREATE TRIGGER downloads_bound_update AFTER UPDATE ON downloads REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION downloads_note_bounds();
-- The scope's rows straight from an index (index-only scan), like SQLite's covering index
-- of migration 0006. A PostgreSQL index entry may not exceed about 2.7 kB, which a row with
-- a long imported path, user and node name could; so the covering index holds the rows
-- whose texts fit (all but hostile ones), and downloads_node_long the others, and the
-- scope reads both. The predicate is written the same way in the scope query
-- (sql_store.cc, kPgFitsScopeIndex), so the planner can prove which index applies.
CREATE INDEX downloads_node_scope ON downloads (node, started_at)
  INCLUDE (id, ended_at, source, outcome, bytes_sent, http_status, org_id, username, target_path, sha256, unknown_user,
           unknown_target)
  WHERE octet_length(node) + octet_length(username) + octet_length(target_path) + octet_length(sha256) <= 2300;
CREATE INDEX downloads_node_long ON downloads (node, started_at)
  WHERE octet_length(node) + octet_length(username) + octet_length(target_path) + octet_length(sha256) > 2300;
