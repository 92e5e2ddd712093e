// CVSS v3.1 base metrics: parses a vector string ("CVSS:3.1/AV:N/AC:L/...") and computes
// the base score and severity exactly as the FIRST specification (section 7 and appendix
// A, Roundup) defines them. Pure; thread-safe. The vector is untrusted input (CLI, store):
// every metric must appear once with a defined value; temporal and environmental metrics
// are refused (the advisory states the vendor's base score only).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate::advisory {

inline constexpr size_t kMaxCvssVectorLength = 256;

struct Cvss31 {
  std::string vector;    // normalised: the eight base metrics in the specification's order
  double base_score = 0;  // 0.0 - 10.0, one decimal
  std::string severity;  // NONE | LOW | MEDIUM | HIGH | CRITICAL
};

Result<Cvss31> ParseCvss31(std::string_view vector);
// NONE/LOW/MEDIUM/HIGH/CRITICAL for a score (the specification's qualitative scale).
std::string CvssSeverity(double score);

}  // namespace patchgate::advisory
