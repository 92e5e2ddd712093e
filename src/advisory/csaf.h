// CSAF 2.0 documents (OASIS CSAF Version 2.0): an advisory renders as a
// csaf_security_advisory, an incident as a csaf_security_incident_response. Pure
// functions over the model; thread-safe. The output is validated in the tests by the CSAF
// project's own validator library (tests/advise/validate.mjs).
#pragma once

#include <string>
#include <vector>

#include "advisory/advisory.h"
#include "incident/scope.h"
#include "store/store.h"

namespace patchgate::advisory {

// Who publishes, and where the provider lives.
struct Publisher {
  std::string name = "patchgate vendor";
  std::string namespace_url = "https://vendor.example";
  std::string base_url = "https://127.0.0.1:8443";  // the provider's origin; documents live under /.well-known/csaf/
  std::string contact = "mailto:psirt@vendor.example";
};

// <base>/.well-known/csaf/<tlp lower case>/<YYYY>/<id lower case>.json
std::string DocumentUrl(const Publisher& p, const std::string& tlp, const std::string& year, const std::string& file);
// <base>/targets/<dir>/<sha256>.<file>: where the repository serves a target.
std::string TargetUrl(const Publisher& p, const FixTarget& t);

// The advisory as CSAF 2.0 JSON (2-space indented), as it stands: `tlp` its distribution
// label, `status` interim or final, `product_targets` the product's published targets
// (the product tree is built from their versions). `now` stamps the generator.
std::string RenderAdvisory(const Advisory& a, const std::vector<TargetRecord>& product_targets, const std::string& tlp,
                           const std::string& status, int64_t now_micros, const Publisher& p);

// The incident as a csaf_security_incident_response: what was served, when, from where,
// and what to do. Lists files (not customers): the document is for the public.
std::string RenderIncidentResponse(const Incident& inc, const incident::Scope& scope, const std::string& tlp,
                                   int64_t now_micros, const Publisher& p);

// Dotted numeric version order ("2.10" > "2.9"); non-numeric parts compare as text.
int CompareVersions(const std::string& a, const std::string& b);

}  // namespace patchgate::advisory
