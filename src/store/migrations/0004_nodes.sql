-- The chain of nodes: node tokens (only their SHA-256 is stored), sync records (a node's
-- pulls from its upstream; never customer downloads), the latest heartbeat of each node
-- with its compliance fields, and the fleet's compliance policy (one row).
CREATE TABLE node_tokens (
  node TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE node_syncs (
  id {ID},
  node TEXT NOT NULL,
  what TEXT NOT NULL,
  at BIGINT NOT NULL,
  files BIGINT NOT NULL DEFAULT 0,
  bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX node_syncs_node_time ON node_syncs (node, at);
CREATE TABLE node_heartbeats (
  node TEXT PRIMARY KEY,
  at BIGINT NOT NULL,
  role TEXT NOT NULL DEFAULT '',
  software_version TEXT NOT NULL DEFAULT '',
  snapshot_version BIGINT NOT NULL DEFAULT 0,
  origin_snapshot_version BIGINT NOT NULL DEFAULT 0,
  lag_seconds BIGINT NOT NULL DEFAULT 0,
  upstream_ok INTEGER NOT NULL DEFAULT 1,
  upstream_error TEXT NOT NULL DEFAULT '',
  scanner_loaded INTEGER NOT NULL DEFAULT 0,
  signature_age_seconds BIGINT NOT NULL DEFAULT -1,
  scan_infected BIGINT NOT NULL DEFAULT 0,
  watch_alive INTEGER NOT NULL DEFAULT 0,
  last_full_verify_at BIGINT NOT NULL DEFAULT 0,
  last_full_verify_ok INTEGER NOT NULL DEFAULT 0,
  quarantine_pending BIGINT NOT NULL DEFAULT 0,
  tls INTEGER NOT NULL DEFAULT 0,
  fenced INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE chain_policy (
  id INTEGER PRIMARY KEY,
  require_scanner INTEGER NOT NULL DEFAULT 0,
  max_signature_age_seconds BIGINT NOT NULL DEFAULT 0,
  require_watch INTEGER NOT NULL DEFAULT 0,
  max_lag_seconds BIGINT NOT NULL DEFAULT 0,
  max_heartbeat_age_seconds BIGINT NOT NULL DEFAULT 120,
  fence INTEGER NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL DEFAULT 0
);
