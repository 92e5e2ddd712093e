// Incident scope: exactly who received what, when and from which node. Computes the
// successful downloads served by a node in a window (a download still streaming when the
// window opens counts, and so does one whose end the node never recorded), optionally limited to some targets, grouped organisation -> users
// -> files, and renders it as a table, CSV, JSON or a self-contained HTML report.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/auth_directory.h"
#include "store/download_trail.h"
#include "store/incident_register.h"
#include "store/node_registry.h"

namespace patchgate::incident {

struct ScopeQuery {
  std::string node;
  int64_t from = 0, to = 0;  // microseconds
  std::vector<std::string> targets;
  int64_t incident_id = 0;    // 0: ad hoc
  std::string cause;
};

// A download in a scope. Its texts point into the scope's text store (Scope::texts), which
// every copy of that Scope shares: they stay valid as long as the Scope, or a copy of it,
// lives. Equal texts of one scope share one copy (a user's name is stored once, not once
// per download).
struct ScopeDownload {
  int64_t id = 0;
  int64_t started_at = 0;
  uint64_t bytes_sent = 0;
  DownloadOutcome outcome = DownloadOutcome::kInProgress;
  bool unknown_user = false;    // imported: username not in the store
  bool unknown_target = false;  // imported: path not a published target
  std::string_view node, username;
  std::string_view org_name, org_tier;  // empty when the user is unknown
  std::string_view target_path, sha256;
  std::string_view source = "served";  // served | imported
  std::string_view detail;             // why it ended so (migration 0005), empty if ordinary
};

// The text store behind a Scope's downloads (scope.cc): grows, never moves what it holds.
class ScopeTexts;

struct OrgScope {
  int64_t org_id = 0;  // 0: the "(unknown user)" group, no organisation behind it
  std::string name, tier, account_manager, account_manager_email, phone;
  std::vector<std::string> contacts;
  std::string webhook_url;
  std::vector<ScopeDownload> downloads;  // ordered by user, then file, then time
  size_t users = 0, files = 0;
};

// An organisation's refusals in the window: requests the node answered with a refusal
// instead of the file (nothing was served; store/node_registry.h RefusalRecord).
struct OrgRefusals {
  std::string name, tier, account_manager, account_manager_email;
  std::vector<RefusalRecord> refusals;  // by time
};

struct Scope {
  ScopeQuery query;
  std::vector<OrgScope> orgs;  // by name; downloads by unknown users under "(unknown user)"
  size_t downloads = 0, files = 0, users = 0;
  size_t unfinished = 0;  // served records never finished: the node stopped mid-transfer
  // Refusals by organisation name (AttachRefusals). Not part of `orgs`: an organisation
  // that was only refused received nothing and is not notified.
  std::vector<OrgRefusals> refused;
  size_t refusals = 0;  // refusals in all (each record's repeats counted)
  // "N downloads of M files by U users in K organisations", plus a note on unfinished ones.
  std::string Totals() const;
  // What the downloads' texts point into (created by ComputeScope, or by the first Keep).
  std::shared_ptr<ScopeTexts> texts;
  // `d` as this scope keeps a download: its texts copied into `texts`. For a scope put
  // together by hand (tests, callers that filter one); the result belongs in this Scope's
  // `orgs` (or a copy of this Scope), no other.
  ScopeDownload Keep(const Download& d);
};

// Reads the window's downloads from `trail` and the organisations behind them from
// `directory` (usually one Store, passed for both roles).
Result<Scope> ComputeScope(DownloadTrail& trail, AuthDirectory& directory, const ScopeQuery& q);
Result<ScopeQuery> QueryForIncident(IncidentRegister& store, int64_t incident_id);
// Adds the node's refusals in the window (limited to the query's targets, if any), grouped
// by organisation, with each organisation's tier and account manager from `directory`.
Status AttachRefusals(AuthDirectory& directory, NodeRegistry& registry, Scope* scope);

std::string RenderTable(const Scope& s);
std::string RenderCsv(const Scope& s);
std::string RenderJson(const Scope& s);
// RenderJson's document built whole as one nlohmann value, as it was before RenderJson wrote
// the downloads itself: the reference RenderJson must equal byte for byte (tests).
std::string RenderJsonWhole(const Scope& s);
std::string RenderHtml(const Scope& s);  // one self-contained file: sortable table, SVG timeline

}  // namespace patchgate::incident
