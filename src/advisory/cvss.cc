#include "advisory/cvss.h"

#include <cmath>
#include <map>
#include <vector>

namespace patchgate::advisory {

namespace {

// Appendix A: the smallest number, to one decimal place, equal to or higher than its input,
// computed on integers to avoid floating-point surprises.
double Roundup(double x) {
  long long i = std::llround(x * 100000);
  if (i % 10000 == 0) return static_cast<double>(i) / 100000.0;
  return (std::floor(static_cast<double>(i) / 10000.0) + 1) / 10.0;
}

struct Metric {
  const char* name;
  const char* values;  // allowed one-letter values
};
constexpr Metric kBase[] = {{"AV", "NALP"}, {"AC", "LH"}, {"PR", "NLH"}, {"UI", "NR"},
                            {"S", "UC"},    {"C", "HLN"}, {"I", "HLN"},  {"A", "HLN"}};

}  // namespace

std::string CvssSeverity(double s) {
  if (s <= 0) return "NONE";
  if (s < 4.0) return "LOW";
  if (s < 7.0) return "MEDIUM";
  if (s < 9.0) return "HIGH";
  return "CRITICAL";
}

Result<Cvss31> ParseCvss31(std::string_view v) {
  if (v.size() > kMaxCvssVectorLength) return InvalidArgument("the CVSS vector is too long");
  constexpr std::string_view kPrefix = "CVSS:3.1/";
  if (v.substr(0, kPrefix.size()) != kPrefix)
    return InvalidArgument("a CVSS v3.1 vector starts with CVSS:3.1/ (e.g. CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H)");
  v.remove_prefix(kPrefix.size());
  std::map<std::string, char> got;
  while (!v.empty()) {
    size_t slash = v.find('/');
    std::string_view part = v.substr(0, slash);
    v = slash == std::string_view::npos ? std::string_view() : v.substr(slash + 1);
    if (slash != std::string_view::npos && v.empty()) return InvalidArgument("the CVSS vector ends with '/'");
    size_t colon = part.find(':');
    if (colon == std::string_view::npos || colon + 2 != part.size())
      return InvalidArgument("malformed CVSS metric '" + std::string(part) + "' (expected NAME:V)");
    std::string name(part.substr(0, colon));
    char value = part[colon + 1];
    const Metric* m = nullptr;
    for (const auto& b : kBase)
      if (name == b.name) m = &b;
    if (!m) return InvalidArgument("CVSS metric " + name + " is not a base metric (give the base vector only)");
    if (std::string_view(m->values).find(value) == std::string_view::npos)
      return InvalidArgument("CVSS metric " + name + " has no value '" + std::string(1, value) + "'");
    if (!got.emplace(name, value).second) return InvalidArgument("CVSS metric " + name + " appears twice");
  }
  if (got.size() != std::size(kBase)) return InvalidArgument("a CVSS v3.1 base vector needs AV, AC, PR, UI, S, C, I and A");
  Cvss31 out;
  out.vector = std::string(kPrefix.substr(0, kPrefix.size() - 1));
  for (const auto& b : kBase) out.vector += std::string("/") + b.name + ":" + got[b.name];
  bool changed = got["S"] == 'C';
  auto cia = [](char c) { return c == 'H' ? 0.56 : c == 'L' ? 0.22 : 0.0; };
  double av = std::map<char, double>{{'N', 0.85}, {'A', 0.62}, {'L', 0.55}, {'P', 0.2}}[got["AV"]];
  double ac = got["AC"] == 'L' ? 0.77 : 0.44;
  double pr = got["PR"] == 'N' ? 0.85 : got["PR"] == 'L' ? (changed ? 0.68 : 0.62) : (changed ? 0.5 : 0.27);
  double ui = got["UI"] == 'N' ? 0.85 : 0.62;
  double iss = 1 - (1 - cia(got["C"])) * (1 - cia(got["I"])) * (1 - cia(got["A"]));
  double impact = changed ? 7.52 * (iss - 0.029) - 3.25 * std::pow(iss - 0.02, 15) : 6.42 * iss;
  double exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0)
    out.base_score = 0;
  else if (changed)
    out.base_score = Roundup(std::min(1.08 * (impact + exploitability), 10.0));
  else
    out.base_score = Roundup(std::min(impact + exploitability, 10.0));
  out.severity = CvssSeverity(out.base_score);
  return out;
}

}  // namespace patchgate::advisory
