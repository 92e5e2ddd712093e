// Delivery: sends one message per organisation about one subject ("incident:<id>" or
// "advisory:<ID>:<step>") on each of its channels (e-mail to its security contacts with
// the account manager in copy; a signed JSON webhook when configured), and records every
// send in the store's notifications table. Shared by incident notices and advisories:
// the audience (who) and the message (what) are the caller's; delivery (how, exactly
// once) is this module's.
//
// Guarantees: a rerun or a restart never sends a notification that is recorded as sent;
// an outage midway leaves the rest pending/failed and the next run sends exactly those.
// Two senders running at once (e.g. `patchgate serve` and `advisory run-due`) never
// send the same notification both: each row is claimed with a lease in the store before
// it is sent. Delivery is at-least-once only across a crash between the server's
// acceptance and our record (one message may then repeat).
// Thread-safety: Deliver may run concurrently with itself (in-process or not).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "notify/transport.h"
#include "store/notification_ledger.h"

namespace patchgate::notify {

// One organisation's message. The composers receive the acknowledgement URL (a fresh
// token per attempt; only its hash is stored).
struct Outgoing {
  int64_t org_id = 0;
  std::string org_name;
  std::vector<std::string> contacts;
  std::string account_manager_email;
  std::string webhook_url;
  std::function<Mail(const std::string& ack_url)> mail;
  std::function<std::string(const std::string& ack_url)> webhook_json;
};

struct DeliveryOptions {
  std::string from;
  std::string ack_base_url = "http://127.0.0.1:8443";
  std::string webhook_secret;  // HMAC-SHA256 key for X-Patchgate-Signature
  bool dry_run = false;
  int max_attempts = 3;
  int backoff_ms = 500;
  int lease_seconds = 300;  // how long a claimed row is ours before another sender may retry it
  int parallel = 1;         // concurrent sends (each on its own reused SMTP connection)
};

struct DeliveryReport {
  size_t organisations = 0, sent = 0, already_sent = 0, failed = 0, busy = 0;
  std::vector<std::string> log;  // one line per organisation and channel
};

// `incident_id` is set for incident subjects (the row keeps it), else 0.
Result<DeliveryReport> Deliver(NotificationLedger& store, const std::string& subject, int64_t incident_id,
                               const std::vector<Outgoing>& outgoing, Transport& transport,
                               const DeliveryOptions& o, const Clock& clock);

// Caps of a message body: lists longer than kMaxListedInBody items, or a body over
// kMaxBodyBytes, go into a CSV attachment instead.
inline constexpr size_t kMaxListedInBody = 25;
inline constexpr size_t kMaxBodyBytes = 32 * 1024;

// One CSV cell: core/csv.h's CsvCell (RFC 4180 quoting, a leading = + - @ TAB or CR
// neutralised by a quote character, invalid UTF-8 escaped).
std::string CsvCell(const std::string& s);

}  // namespace patchgate::notify
