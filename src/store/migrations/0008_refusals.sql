-- patchgate store, version 8: refusals. A node that answered an authenticated customer with
-- a refusal instead of the file (the target quarantined or failing its integrity check, the
-- node fenced off by the compliance policy, a published file missing on disk) records it
-- here, so incident scope can say what each organisation received: verified bytes
-- (downloads) or a refusal (this table). Nothing was served for these rows. `repeats`
-- counts the identical refusals (same node, user, target and reason) folded into this row:
-- nodes write at most one row per such key and minute, so a client retrying in a loop
-- cannot flood the store. Text is valid UTF-8 (the store's text rules); `target` is the
-- signed target path when the node knew it, else the request path (capped).
CREATE TABLE refusals (
  id {ID},
  node TEXT NOT NULL,
  at BIGINT NOT NULL,
  org_id BIGINT NOT NULL DEFAULT 0,
  organisation TEXT NOT NULL DEFAULT '',
  username TEXT NOT NULL DEFAULT '',
  target TEXT NOT NULL,
  reason TEXT NOT NULL,
  repeats BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX refusals_node_time ON refusals (node, at);
