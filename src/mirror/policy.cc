#include "mirror/policy.h"

#include <cctype>

namespace patchgate::mirror {

Compliance Evaluate(const ChainPolicy& p, const RegisteredNode& n, int64_t now) {
  Compliance c;
  if (n.revoked) {
    c.state = "non-compliant";
    c.reasons.push_back("node token revoked");
    return c;
  }
  if (!n.heartbeat) {
    c.state = "stale";
    c.reasons.push_back("no heartbeat yet");
    return c;
  }
  const NodeHeartbeat& h = *n.heartbeat;
  int64_t age = (now - h.at) / 1'000'000;
  if (age > p.max_heartbeat_age_seconds) {
    c.state = "stale";
    c.reasons.push_back("last heartbeat " + FormatDuration(age) + " ago (max " +
                        FormatDuration(p.max_heartbeat_age_seconds) + ")");
    return c;
  }
  if (h.quarantine_pending > 0) {
    c.state = "quarantined";
    c.reasons.push_back(std::to_string(h.quarantine_pending) + " file(s) quarantined, not restored yet");
    return c;
  }
  if (p.require_scanner && !h.scanner_loaded) c.reasons.push_back("no scanner");
  if (h.scanner_loaded && p.max_signature_age_seconds > 0 && h.signature_age_seconds > p.max_signature_age_seconds)
    c.reasons.push_back("signatures " + FormatDuration(h.signature_age_seconds) + " old (max " +
                        FormatDuration(p.max_signature_age_seconds) + ")");
  if (h.scan_infected > 0) c.reasons.push_back(std::to_string(h.scan_infected) + " infected file(s) found by its scan");
  if (p.require_watch && !h.watch_alive) c.reasons.push_back("integrity watch not running");
  if (p.max_lag_seconds > 0 && h.lag_seconds > p.max_lag_seconds)
    c.reasons.push_back("behind the origin for " + FormatDuration(h.lag_seconds) + " (max " +
                        FormatDuration(p.max_lag_seconds) + ")");
  if (!h.upstream_ok) c.reasons.push_back("stale: upstream refused (" + h.upstream_error + ")");
  if (h.last_full_verify_at > 0 && !h.last_full_verify_ok) c.reasons.push_back("last full verification failed");
  c.state = c.reasons.empty() ? "compliant" : "non-compliant";
  return c;
}

Result<int64_t> ParseDuration(const std::string& t) {
  if (t.empty() || t.size() > 20) return InvalidArgument("a duration looks like 90s, 10m, 24h or 2d (got '" + t + "')");
  size_t i = 0;
  int64_t v = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
    v = v * 10 + (t[i] - '0');
    if (v > int64_t{1} << 40) return InvalidArgument("duration too long: " + t);
    ++i;
  }
  if (i == 0) return InvalidArgument("a duration looks like 90s, 10m, 24h or 2d (got '" + t + "')");
  std::string unit = t.substr(i);
  if (unit.empty() || unit == "s") return v;
  if (unit == "m") return v * 60;
  if (unit == "h") return v * 3600;
  if (unit == "d") return v * 86400;
  return InvalidArgument("unknown duration unit in '" + t + "': use s, m, h or d");
}

std::string FormatDuration(int64_t s) {
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace patchgate::mirror
