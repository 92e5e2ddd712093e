// AuditSink: the durable download record, as the serving path writes it. A download is
// begun (who, what, which bytes, from where) before its first byte is sent and finished
// (end time, bytes sent, outcome) when it ends. Only the serving nodes write here; readers
// of the trail use DownloadTrail.
//
// Where a record lives (the SQL store, migration 0009): a begin is appended to the download
// journal (one row, no index but its id); its end is written to that row; a fold
// (FoldDownloads) later moves finished rows into the trail's indexed table in large
// batches. Every reader of the trail (DownloadTrail: scope, list, export, audiences) reads
// both, so a record is seen, exactly once, from the moment its begin is committed, folded
// or not; a record keeps its id when folded.
//
// Promises: when BeginDownloads returns OK every record in it is durable (committed in ONE
// transaction) and the caller may send the first byte; when it fails none is recorded and
// nothing may be served. FinishDownloads updates records begun earlier, also in one
// transaction, wherever they are (journal or folded). A fold never loses or duplicates a
// record: it moves rows in one transaction (after a crash a record is either still in the
// journal or folded, never both or neither), and several folders on one store (nodes
// sharing a PostgreSQL store) move each row once. Text fields are stored as safe text
// (records.h caps, invalid UTF-8 escaped).
// Threading: safe to call from several threads at once (src/server/audit_log batches calls
// from one thread anyway).
// Errors: kUnavailable when the database cannot be reached (the caller must refuse to serve);
// another code when the store refuses the batch (the caller may retry record by record).
#pragma once

#include <cstddef>
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
  // The same in two steps, for the audit pipeline (src/server/audit_log): WriteDownloads
  // inserts in one transaction like BeginDownloads, but its records are durable only once
  // a later SyncDownloads() has returned OK. SyncDownloads may run on another thread while
  // the next WriteDownloads runs, so one flush to disk covers every batch written before
  // it. WriteFinishes: completions the same way. The defaults are the one-step calls
  // (durable at once; SyncDownloads does nothing); a sink that wraps another
  // (ForwardingStore) keeps them, so its BeginDownloads sees every record.
  virtual Result<std::vector<int64_t>> WriteDownloads(const std::vector<DownloadStart>& starts) {
    return BeginDownloads(starts);
  }
  virtual Status WriteFinishes(const std::vector<DownloadFinish>& finishes) { return FinishDownloads(finishes); }
  virtual Status SyncDownloads() { return Status::OK(); }
  // Moves up to `max_rows` records from the journal into the trail's indexed table, oldest
  // first: every finished one, and unfinished ones begun before `unfinished_before`
  // (microseconds; their node most likely stopped mid-transfer: they are kept as they are,
  // in_progress, and an end written later still completes them). One transaction. Returns
  // how many moved; fewer than `max_rows` means nothing else was due. Its durability is
  // that of a WriteFinishes (covered by the next SyncDownloads); a fold lost in a crash
  // leaves its rows in the journal, where readers still see them. A sink without a journal
  // moves nothing.
  virtual Result<size_t> FoldDownloads(size_t max_rows, int64_t unfinished_before) {
    (void)max_rows;
    (void)unfinished_before;
    return size_t{0};
  }
};

}  // namespace patchgate
