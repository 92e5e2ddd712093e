// Writes verified metadata files to the client's local cache off the caller's thread.
//
// Each file is written atomically and durably (FileSystem::WriteFileAtomic: temporary file,
// fsync, rename, fsync of the directory), in the order the writes were queued, by one
// background thread. A cold refresh writes three files whose fsyncs cost ~30-40 ms on a
// common disk; queued, they overlap with fetching and verifying the next role and with the
// download. Only bytes already verified may be queued (the caller's rule): the cache never
// holds anything the client would not trust.
//
// Flush() waits until every queued write is done and returns the first failure (later
// writes are skipped after one fails). The destructor flushes too (and drops the status:
// call Flush() to learn it). Write() and Flush() are for one owning thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "core/fs.h"
#include "core/status.h"

namespace patchgate::client {

class MetadataWriter {
 public:
  explicit MetadataWriter(FileSystem* fs) : fs_(fs) {}  // `fs` must outlive the writer
  ~MetadataWriter();
  MetadataWriter(const MetadataWriter&) = delete;
  MetadataWriter& operator=(const MetadataWriter&) = delete;

  // Queues `bytes` (taken over) for `path`. Never blocks on the disk.
  void Write(std::string path, std::string bytes);
  // Waits for every queued write; OK when all of them landed.
  Status Flush();

 private:
  void Run();

  FileSystem* fs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, std::string>> queue_;
  bool busy_ = false, stop_ = false;
  Status first_error_;
  std::thread thread_;  // started by the first Write
};

}  // namespace patchgate::client
