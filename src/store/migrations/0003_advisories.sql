-- patchgate store, version 3: advisories, and notifications about any subject.
-- A notification is now about a subject: 'incident:<id>' or 'advisory:<ID>:<step>'
-- (step = prenotice | workaround | publish). incident_id stays, set for incident
-- notifications only. claimed_until is a lease (microseconds) taken by the one sender
-- that may send the row now, so two runners never send the same notification twice.
CREATE TABLE notifications_v3 (
  id {ID},
  subject TEXT NOT NULL,
  incident_id BIGINT REFERENCES incidents(id),
  org_id BIGINT NOT NULL REFERENCES organisations(id),
  channel TEXT NOT NULL,
  recipients TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  sent_at BIGINT,
  acked_at BIGINT,
  ack_token_hash TEXT NOT NULL UNIQUE,
  claimed_until BIGINT NOT NULL DEFAULT 0,
  UNIQUE (subject, org_id, channel)
);
INSERT INTO notifications_v3 (subject, incident_id, org_id, channel, recipients, state, attempts, last_error,
                              sent_at, acked_at, ack_token_hash)
  SELECT 'incident:' || CAST(incident_id AS TEXT), incident_id, org_id, channel, recipients, state, attempts,
         last_error, sent_at, acked_at, ack_token_hash
  FROM notifications ORDER BY id;
DROP TABLE notifications;
ALTER TABLE notifications_v3 RENAME TO notifications;
CREATE INDEX notifications_incident ON notifications (incident_id);
-- An advisory: indexed columns for the provider and the due-step runner, the model
-- (texts, revisions, schedule, steps done, rendered documents) as JSON in `data`.
-- `version` is the row version for compare-and-swap updates.
CREATE TABLE advisories (
  id TEXT PRIMARY KEY,
  product TEXT NOT NULL,
  state TEXT NOT NULL,
  tlp TEXT NOT NULL,
  publish_at BIGINT,
  version BIGINT NOT NULL DEFAULT 1,
  data TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
