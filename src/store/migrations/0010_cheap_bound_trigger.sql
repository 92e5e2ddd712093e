-- patchgate store, version 10: the per-node bound of migration 0007 is kept without running
-- the trigger's statement for every row.
--
-- On SQLite the insert trigger ran its upsert into download_bounds for every finished row
-- inserted into `downloads`: for the fold of the download journal (migration 0009) that was
-- about a third of moving a row. The bound only changes when a download is longer than the
-- node's longest so far (rare), so the trigger now fires only then: its WHEN clause reads
-- the node's bound (one primary-key probe) and the upsert runs only for a longer download,
-- or for a node with no bound yet. The bound table ends up exactly as before. Every writer
-- of `downloads` (the fold, imports, a bulk load through sqlite3) still keeps it.
-- PostgreSQL's triggers run once per statement (migration 0007): nothing changes there.
-- engine: sqlite
DROP TRIGGER downloads_bound_insert;
CREATE TRIGGER downloads_bound_insert AFTER INSERT ON downloads
  WHEN NEW.ended_at IS NOT NULL AND NEW.ended_at - NEW.started_at >
       COALESCE((SELECT longest_micros FROM download_bounds WHERE node = NEW.node), -9223372036854775808)
BEGIN
  INSERT INTO download_bounds (node, longest_micros) VALUES (NEW.node, NEW.ended_at - NEW.started_at)
    ON CONFLICT (node) DO UPDATE SET longest_micros = excluded.longest_micros
    WHERE excluded.longest_micros > download_bounds.longest_micros;
END;
-- engine: postgresql
SELECT 1;
