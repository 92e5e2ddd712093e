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

#include <string>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class DownloadTrail {
 public:
  virtual ~DownloadTrail() = default;

  virtual Result<std::vector<Download>> QueryDownloads(const DownloadQuery& q) = 0;
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
