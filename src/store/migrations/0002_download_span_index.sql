-- Incident scope asks "which downloads on node N overlapped [from, to]": with ended_at in
-- the index the overlap test is answered from the index alone, and only matching rows
-- are read from the table.
CREATE INDEX downloads_node_span ON downloads (node, started_at, ended_at);
DROP INDEX downloads_node_time;
