// Fleet compliance: a node's state from its latest heartbeat and the chain policy.
// Pure functions (no I/O), so `patchgate nodes`, /metrics and a node's own fence decision
// all read the same rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/node_registry.h"

namespace patchgate::mirror {

struct Compliance {
  std::string state;                 // compliant | non-compliant | stale | quarantined
  std::vector<std::string> reasons;  // why it is not compliant (empty when compliant)
};

// `now` in microseconds. A node with no heartbeat, or one older than the policy's
// max_heartbeat_age, is stale; one with files quarantined and not yet restored is
// quarantined; otherwise every unmet rule is a reason and the node is non-compliant.
Compliance Evaluate(const ChainPolicy& policy, const RegisteredNode& node, int64_t now_micros);

// "90s", "10m", "24h", "2d" or plain seconds -> seconds. kInvalidArgument otherwise.
Result<int64_t> ParseDuration(const std::string& text);
// Seconds as the shortest of "45s", "10m", "3h", "2d" that is exact, else seconds.
std::string FormatDuration(int64_t seconds);

}  // namespace patchgate::mirror
