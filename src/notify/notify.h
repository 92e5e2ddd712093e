// Customer notification for an incident: one message per affected organisation, to its
// security contacts with its account manager in copy, listing exactly that organisation's
// affected downloads (the first kMaxListedInBody in the body, all of them in a CSV
// attachment when there are more), with an acknowledgement link; and a signed JSON webhook for
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
#include "notify/delivery.h"
#include "notify/transport.h"
#include "store/store.h"

namespace patchgate::notify {

// Notifying an incident's organisations is one delivery (notify/delivery.h), with its options.
using NotifyOptions = DeliveryOptions;

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
