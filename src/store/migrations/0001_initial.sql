-- patchgate store, version 1. Portable SQL: {ID} is the engine's auto-increment primary
-- key. Times are microseconds since the Unix epoch (UTC). Booleans are 0/1 integers.
CREATE TABLE organisations (
  id {ID},
  name TEXT NOT NULL UNIQUE,
  tier TEXT NOT NULL,
  am_name TEXT NOT NULL DEFAULT '',
  am_email TEXT NOT NULL DEFAULT '',
  am_phone TEXT NOT NULL DEFAULT '',
  contacts TEXT NOT NULL DEFAULT '',
  webhook_url TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);
CREATE TABLE users (
  id {ID},
  org_id BIGINT NOT NULL REFERENCES organisations(id),
  username TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL UNIQUE,
  revoked INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);
CREATE TABLE entitlements (
  org_id BIGINT NOT NULL REFERENCES organisations(id),
  product TEXT NOT NULL,
  PRIMARY KEY (org_id, product)
);
CREATE TABLE targets (
  path TEXT PRIMARY KEY,
  product TEXT NOT NULL,
  version TEXT NOT NULL DEFAULT '',
  length BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  published_at BIGINT NOT NULL,
  scan_verdict TEXT NOT NULL DEFAULT '',
  scan_engine TEXT NOT NULL DEFAULT '',
  scan_db_version TEXT NOT NULL DEFAULT '',
  infected INTEGER NOT NULL DEFAULT 0,
  infected_detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE nodes (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  upstream TEXT NOT NULL DEFAULT '',
  last_heartbeat BIGINT NOT NULL DEFAULT 0,
  compliance_json TEXT NOT NULL DEFAULT '{}',
  state TEXT NOT NULL DEFAULT 'ok'
);
CREATE TABLE node_quarantine (
  id {ID},
  node TEXT NOT NULL,
  path TEXT NOT NULL,
  expected_sha256 TEXT NOT NULL,
  actual_sha256 TEXT NOT NULL,
  at BIGINT NOT NULL
);
CREATE TABLE downloads (
  id {ID},
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
  import_key TEXT UNIQUE
);
CREATE INDEX downloads_node_time ON downloads (node, started_at);
CREATE INDEX downloads_org_time ON downloads (org_id, started_at);
CREATE INDEX downloads_user_time ON downloads (username, started_at);
CREATE TABLE incidents (
  id {ID},
  node TEXT NOT NULL,
  window_start BIGINT NOT NULL,
  window_end BIGINT NOT NULL,
  cause TEXT NOT NULL,
  detected_at BIGINT NOT NULL,
  targets TEXT NOT NULL DEFAULT ''
);
CREATE TABLE notifications (
  id {ID},
  incident_id BIGINT NOT NULL REFERENCES incidents(id),
  org_id BIGINT NOT NULL REFERENCES organisations(id),
  channel TEXT NOT NULL,
  recipients TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  sent_at BIGINT,
  acked_at BIGINT,
  ack_token_hash TEXT NOT NULL UNIQUE,
  UNIQUE (incident_id, org_id, channel)
);
CREATE TABLE scan_verdicts (
  sha256 TEXT NOT NULL,
  db_version TEXT NOT NULL,
  verdict TEXT NOT NULL,
  detections TEXT NOT NULL DEFAULT '',
  engine_version TEXT NOT NULL DEFAULT '',
  scanned_at BIGINT NOT NULL,
  PRIMARY KEY (sha256, db_version)
);
