// NotificationLedger: what each organisation was told, by which channel, and whether it
// acknowledged. One row per (subject, organisation, channel) — the subject is
// "incident:<id>" or "advisory:<ID>:<step>" — with its delivery attempts, a sending lease
// (so two senders never send the same notification) and the hash of the acknowledgement
// token the message carried.
//
// Promises: Ensure* is idempotent per (subject, org, channel); an acknowledgement is
// recorded once; a claimed lease excludes other senders until it expires.
// Threading: safe to call from several threads and processes at once.
// Errors: kUnavailable when the database cannot be reached; kNotFound as named below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class NotificationLedger {
 public:
  virtual ~NotificationLedger() = default;

  // Returns the existing row for (incident, org, channel) or creates a pending one with
  // the given recipients and ack token hash.
  virtual Result<Notification> EnsureNotification(int64_t incident_id, int64_t org_id,
                                                  const std::string& channel,
                                                  const std::string& recipients,
                                                  const std::string& ack_token_hash) = 0;
  // Replaces the acknowledgement token hash of a notification that was not sent yet (a
  // token that was never delivered is worthless; the next attempt sends a fresh one).
  virtual Status ResetAckToken(int64_t notification_id, const std::string& ack_token_hash) = 0;
  virtual Status RecordNotificationAttempt(int64_t notification_id, bool sent,
                                           const std::string& error, int64_t at) = 0;
  virtual Result<std::vector<Notification>> ListNotifications(int64_t incident_id) = 0;
  // Records the acknowledgement once. kNotFound for an unknown token; OK (no change)
  // when already acknowledged.
  virtual Status Acknowledge(const std::string& ack_token_hash, int64_t at) = 0;

  // Notifications about any subject ("incident:<id>", "advisory:<ID>:<step>"): as above.
  virtual Result<Notification> EnsureSubjectNotification(const std::string& subject, int64_t org_id,
                                                         const std::string& channel,
                                                         const std::string& recipients,
                                                         const std::string& ack_token_hash) = 0;
  // Every notification whose subject starts with `subject_prefix`, by organisation name.
  virtual Result<std::vector<Notification>> ListSubjectNotifications(const std::string& subject_prefix) = 0;
  // Takes the sending lease of a notification not yet sent whose lease expired (before
  // `now`), until `until`. Returns false when it is sent or another sender holds it.
  virtual Result<bool> ClaimNotification(int64_t notification_id, int64_t now, int64_t until) = 0;
};

}  // namespace patchgate
