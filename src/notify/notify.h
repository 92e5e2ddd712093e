// Customer notification for an incident: one message per affected organisation, to its
// security contacts with its account manager in copy, listing exactly that organisation's
// affected downloads, with an acknowledgement link; and a signed JSON webhook for
// organisations that configured one. Every send is recorded in the store; a run sends only
// what is not yet sent (idempotent, resumable after a crash or an outage); transient
// failures are retried with backoff within a run and reported.
// Delivery is at-least-once: a crash between the server's acceptance and our record can
// repeat one message on the next run.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "incident/scope.h"
#include "store/store.h"

namespace patchgate::notify {

struct Mail {
  std::string from;
  std::vector<std::string> to, cc;
  std::string subject, body;
};

// The network seam: real implementations use libcurl (SMTP plain/STARTTLS/SMTPS with
// auth from the URL; HTTPS/HTTP POST for webhooks).
class Transport {
 public:
  virtual ~Transport() = default;
  virtual Status SendMail(const Mail& mail) = 0;
  virtual Status PostWebhook(const std::string& url, const std::string& body, const std::string& signature) = 0;
};
// smtp_url: smtp://[user:pass@]host:port (STARTTLS when offered; add ?starttls=required to
// insist) or smtps://[user:pass@]host:port.
std::unique_ptr<Transport> NewCurlTransport(const std::string& smtp_url);

struct NotifyOptions {
  std::string from;
  std::string ack_base_url = "http://127.0.0.1:8443";
  std::string webhook_secret;  // HMAC-SHA256 key for X-Patchgate-Signature
  bool dry_run = false;
  int max_attempts = 3;
  int backoff_ms = 500;
};

struct NotifyReport {
  size_t organisations = 0, sent = 0, already_sent = 0, failed = 0;
  std::vector<std::string> log;  // one line per organisation and channel
};

Result<NotifyReport> NotifyIncident(Store& store, int64_t incident_id, Transport& transport, const NotifyOptions& o,
                                    const Clock& clock);

// The text of the message to one organisation (exposed for tests and --dry-run).
Mail ComposeMail(const incident::Scope& scope, const incident::OrgScope& org, const std::string& from,
                 const std::string& ack_url);

}  // namespace patchgate::notify
