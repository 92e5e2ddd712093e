// Group-committed download audit. Begin() blocks the calling connection until its record
// is durable in the store; records that arrive while a commit is running are batched into
// the next transaction, so throughput stays high under concurrency. Finish() is queued and
// batched the same way. Thread-safe. Flush() waits until every queued finish is written.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "server/metrics.h"
#include "store/store.h"

namespace patchgate::server {

class AuditLog {
 public:
  AuditLog(Store* store, Metrics* metrics);
  ~AuditLog();  // flushes
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // The record's id once durable; an error (kUnavailable...) means: do not serve.
  Result<int64_t> Begin(const DownloadStart& start);
  void Finish(const DownloadFinish& finish);
  void Flush();  // waits at most 15 s (the store may be down)

 private:
  struct PendingBegin {
    DownloadStart start;
    std::promise<Result<int64_t>> done;
  };
  void Run();

  Store* store_;
  Metrics* metrics_;
  std::mutex mu_;
  std::condition_variable cv_, flushed_;
  std::deque<PendingBegin> begins_;
  std::vector<DownloadFinish> finishes_;
  bool stop_ = false;
  bool busy_ = false;
  std::thread thread_;
};

}  // namespace patchgate::server
