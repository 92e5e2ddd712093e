// Writes verified metadata files to the client's local cache as one batch, durably, at the
// price of about two journal commits however many files there are.
//
// Write() puts the bytes in a temporary file beside the final path at once ("<path>.tmp.
// <pid>", FileSystem::WriteFileNoWait: the kernel starts writing it back, nobody waits).
// Flush() then makes every temporary file durable (FileSystem::SyncFile, all of them in
// parallel, so their flushes and journal commits coincide), renames each over its path,
// and syncs each directory once. A cold refresh of a binned repository writes five or more
// files; one after another, each with its own fsync, rename and directory fsync, they cost
// ten or more journal commits.
//
// Crash guarantees: a file is renamed into place only after its bytes are durable, so a
// crash at any point leaves each path holding its whole old file or its whole new one,
// never a short or empty one (which would fail verification, and a trusted timestamp or
// snapshot that is lost is lost rollback protection). Files of one batch may land
// independently of each other: every combination of old and new verified files is one
// the client accepts (each is verified on load, and versions only move forward). Only
// bytes already verified may be written (the caller's rule): the cache never holds
// anything the client would not trust.
//
// Flush() returns the first failure in the order the writes were made; a file whose sync
// failed is not renamed (its temporary file is removed) and the others still land. A
// second Write() to a path before Flush() replaces the first. FlushInBackground() starts
// the same work on a thread of its own (e.g. while a target downloads); the next Write()
// or Flush() waits for it, and Flush() reports its failure. The destructor flushes too
// (and drops the status: call Flush() to learn it). The calls are for one owning thread.
#pragma once

#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/fs.h"
#include "core/status.h"

namespace patchgate::client {

class MetadataWriter {
 public:
  explicit MetadataWriter(FileSystem* fs) : fs_(fs) {}  // `fs` must outlive the writer
  ~MetadataWriter();
  MetadataWriter(const MetadataWriter&) = delete;
  MetadataWriter& operator=(const MetadataWriter&) = delete;

  // Writes `bytes` to the temporary file of `path` now (not yet durable, not yet in
  // place). An error here means nothing of this write will land.
  Status Write(const std::string& path, std::string_view bytes);
  // Makes every pending write durable and puts it in place; OK when all of them landed.
  Status Flush();
  // Starts Flush() of what is pending on another thread and returns at once.
  void FlushInBackground();
  // Number of writes waiting for Flush().
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    std::string path, tmp;
  };
  static Status FlushBatch(FileSystem* fs, std::vector<Pending> batch);
  void JoinBackground();
  FileSystem* fs_;
  std::vector<Pending> pending_;  // in the order first written; one entry per path
  std::thread background_;        // FlushInBackground's, until joined
  Status background_status_;      // its result, until Flush() reports it
};

}  // namespace patchgate::client
