// The operator's pages of `patchgate serve`, answered without a token:
//   - /healthz: 200 "ok" while the server accepts and answers requests (the event loop
//     answers it itself, so a busy or attacked server still does);
//   - /metrics: the counters of Metrics in the Prometheus text format (version 0.0.4),
//     then `extra` (e.g. the chain's compliance states), if any.
// Responses are left in the PendingSend the event loop sends; each returns whether the
// connection may go on. Thread-safe.
#pragma once

#include <functional>
#include <string>

#include "server/event_loop.h"
#include "server/metrics.h"

namespace patchgate::server {

bool HealthPage(PendingSend* out, Metrics* m, bool keep, bool head_only);
// `m` should hold the current connections_open (the caller knows its loops).
bool MetricsPage(PendingSend* later, Metrics* m, const std::function<std::string()>& extra, bool keep,
                 bool head_only);

}  // namespace patchgate::server
