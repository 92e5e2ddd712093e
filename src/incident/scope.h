// Incident scope: exactly who received what, when and from which node. Computes the
// successful downloads served by a node in a window (a download still streaming when the
// window opens counts, and so does one whose end the node never recorded), optionally limited to some targets, grouped organisation -> users
// -> files, and renders it as a table, CSV, JSON or a self-contained HTML report.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/store.h"

namespace patchgate::incident {

struct ScopeQuery {
  std::string node;
  int64_t from = 0, to = 0;  // microseconds
  std::vector<std::string> targets;
  int64_t incident_id = 0;    // 0: ad hoc
  std::string cause;
};

struct OrgScope {
  int64_t org_id = 0;  // 0: the "(unknown user)" group, no organisation behind it
  std::string name, tier, account_manager, account_manager_email, phone;
  std::vector<std::string> contacts;
  std::string webhook_url;
  std::vector<Download> downloads;  // ordered by user, then time
  size_t users = 0, files = 0;
};

struct Scope {
  ScopeQuery query;
  std::vector<OrgScope> orgs;  // by name; downloads by unknown users under "(unknown user)"
  size_t downloads = 0, files = 0, users = 0;
  size_t unfinished = 0;  // served records never finished: the node stopped mid-transfer
  // "N downloads of M files by U users in K organisations", plus a note on unfinished ones.
  std::string Totals() const;
};

Result<Scope> ComputeScope(Store& store, const ScopeQuery& q);
Result<ScopeQuery> QueryForIncident(IncidentRegister& store, int64_t incident_id);

std::string RenderTable(const Scope& s);
std::string RenderCsv(const Scope& s);
std::string RenderJson(const Scope& s);
std::string RenderHtml(const Scope& s);  // one self-contained file: sortable table, SVG timeline

}  // namespace patchgate::incident
