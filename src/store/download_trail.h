// DownloadTrail: reading (and bulk-loading) the download audit trail: who received which
// bytes from which node and when, whether served by patchgate (written through AuditSink)
// or imported from another server's access log. Incident scope, `patchgate downloads` and
// advisory audiences ask here.
//
// Promises: a query answers from committed records only; ImportDownloads is all-or-nothing
// and idempotent per import_key (a line imported twice is counted as a duplicate).
// Threading: safe to call from several threads at once.
// Errors: kUnavailable when the database cannot be reached; kInvalidArgument for a query
// the store cannot answer.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

// One row of an incident scope seen in place (VisitScopeDownloads): the texts are valid
// during the callback only.
struct ScopeRowView {
  int64_t id = 0, started_at = 0;
  int64_t org_id = 0;  // 0 when the user is unknown
  uint64_t bytes_sent = 0;
  DownloadOutcome outcome = DownloadOutcome::kInProgress;
  std::string_view node, username, target_path, sha256, source;
  bool unknown_user = false, unknown_target = false;
};

class DownloadTrail {
 public:
  virtual ~DownloadTrail() = default;

  virtual Result<std::vector<Download>> QueryDownloads(const DownloadQuery& q) = 0;
  // The rows QueryDownloads(q) returns with q.scope_columns (implied here), handed to `row`
  // one by one in place, without a Download (eleven strings) built for each; then the
  // detail of each aborted row (migration 0005) to `detail(id, text)`. One snapshot, as
  // one QueryDownloads. The default reads QueryDownloads.
  virtual Status VisitScopeDownloads(const DownloadQuery& q, const std::function<void(const ScopeRowView&)>& row,
                                     const std::function<void(int64_t id, std::string_view detail)>& detail) {
    DownloadQuery scope = q;
    scope.scope_columns = true;
    PG_ASSIGN_OR_RETURN(std::vector<Download> rows, QueryDownloads(scope));
    for (const Download& d : rows)
      row({d.id, d.started_at, d.org_id, d.bytes_sent, d.outcome, d.node, d.username, d.target_path, d.sha256, d.source,
           d.unknown_user, d.unknown_target});
    for (const Download& d : rows)
      if (!d.detail.empty()) detail(d.id, d.detail);
    return Status::OK();
  }
  // The engine's plan for QueryDownloads(q) (EXPLAIN QUERY PLAN / EXPLAIN), one line per
  // plan node: lets tests and operators check which index a query uses.
  virtual Result<std::string> ExplainQueryDownloads(const DownloadQuery& q) = 0;
  // Bulk load of download rows recorded elsewhere (access-log import): every row carries
  // its import_key, and a row whose key exists already (or repeats within `rows`) is
  // skipped. Users are resolved by name: an unknown name keeps no organisation and the row
  // is flagged unknown_user whatever the caller set; unknown_target is kept as given. Rows
  // are stored with source "imported". One transaction: all rows or none.
  virtual Result<ImportResult> ImportDownloads(const std::vector<Download>& rows) = 0;
  // Organisations with a received (or possibly received) download of a target of `product`.
  virtual Result<std::vector<std::string>> OrganisationsThatDownloaded(const std::string& product) = 0;
};

}  // namespace patchgate
