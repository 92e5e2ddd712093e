// The acknowledgement links of `patchgate serve` (the notices sent by `patchgate notify`
// carry /ack/<token>):
//   - GET or HEAD /ack/<token> only shows a page whose button POSTs back: mail link
//     scanners fetch links, and must not acknowledge anything;
//   - POST /ack/<token> records the acknowledgement (once; a second POST changes nothing)
//     through the store's NotificationLedger, looked up by the SHA-256 of the token. 404 for
//     an unknown token, 503 (and the connection closed) when the store cannot be used.
// No authentication: the token is the credential. Responses are left in the PendingSend the
// event loop sends; each returns whether the connection may go on. Thread-safe.
#pragma once

#include <string>

#include "server/event_loop.h"
#include "server/metrics.h"
#include "store/notification_ledger.h"

namespace patchgate::server {

// GET/HEAD: the confirmation page (nothing recorded).
bool AckPage(PendingSend* later, Metrics* m, const std::string& token, bool keep, bool head_only);
// POST: records the acknowledgement in `acks` (not owned).
bool AckConfirm(PendingSend* later, Metrics* m, NotificationLedger* acks, const std::string& token, bool keep);

}  // namespace patchgate::server
