// Writes verified metadata files to the client's local cache off the caller's thread.
//
// Each file is written atomically and durably (FileSystem::WriteFileAtomic: temporary file,
// fsync, rename, fsync of the directory) on a thread of its own, so the writes of one
// refresh overlap with fetching and verifying the next role, with the download, and with
// each other (the filesystem's journal then commits concurrent fsyncs together: a cold
// refresh of a binned repository writes five or more files whose fsyncs, one after
// another, cost tens of milliseconds). Two writes to one path are never in flight at once:
// the second waits for the first. Only bytes already verified may be queued (the caller's
// rule): the cache never holds anything the client would not trust.
//
// Flush() waits until every write is done and returns the first failure in the order the
// writes were made (the others are still attempted). The destructor flushes too (and drops
// the status: call Flush() to learn it). Write() and Flush() are for one owning thread.
#pragma once

#include <memory>
#include <string>
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

  // Starts writing `bytes` (taken over) to `path`. Blocks only while an earlier write to
  // the same path is still in flight.
  void Write(std::string path, std::string bytes);
  // Waits for every write; OK when all of them landed.
  Status Flush();

 private:
  struct Job {
    std::string path;
    Status status;
    std::thread thread;
  };
  FileSystem* fs_;
  std::vector<std::unique_ptr<Job>> jobs_;  // in the order written
};

}  // namespace patchgate::client
