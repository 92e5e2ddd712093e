-- Incident scope reads every download a node served in a window. Through an index on
-- (node, started_at) alone each of those rows is a random read of the table: about one
-- page per row on a busy trail (17,000 pages for a busy node-day). On SQLite this index
-- carries every column the scope reports, so the window is one contiguous range of index
-- pages and the table is not read at all; it replaces downloads_node_span (same leading
-- columns). PostgreSQL keeps downloads_node_span: its index entries are capped at about
-- 2.7 kB, which a long imported path could exceed, and its index-only scans depend on the
-- visibility map; there the window is read with a bitmap heap scan.
-- engine: sqlite
CREATE INDEX downloads_node_scope ON downloads (node, started_at, ended_at, source, outcome, bytes_sent,
  http_status, org_id, username, target_path, sha256, unknown_user, unknown_target);
DROP INDEX downloads_node_span;
-- engine: postgresql
SELECT 1;
