// AuditSink: the durable download record, as the serving path writes it. A download is
// begun (who, what, which bytes, from where) before its first byte is sent and finished
// (end time, bytes sent, outcome) when it ends. Only the serving nodes write here; readers
// of the trail use DownloadTrail.
//
// Promises: when BeginDownloads returns OK every record in it is durable (committed in ONE
// transaction) and the caller may send the first byte; when it fails none is recorded and
// nothing may be served. FinishDownloads updates records begun earlier, also in one
// transaction. Text fields are stored as safe text (records.h caps, invalid UTF-8 escaped).
// Threading: safe to call from several threads at once (src/server/audit_log batches calls
// from one thread anyway).
// Errors: kUnavailable when the database cannot be reached (the caller must refuse to serve);
// another code when the store refuses the batch (the caller may retry record by record).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class AuditSink {
 public:
  virtual ~AuditSink() = default;

  // Inserts all records in ONE transaction and returns their ids in order; when it
  // returns OK the records are durable (the caller may then send the first byte).
  virtual Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& starts) = 0;
  virtual Status FinishDownloads(const std::vector<DownloadFinish>& finishes) = 0;
};

}  // namespace patchgate
