// Group-committed download audit.
//
// Begin() blocks the calling thread until its record is durable in the store; BeginAsync()
// returns at once and calls back (on the audit thread) when it is durable or refused, so an
// event loop can hold the response head without holding a thread. Records that arrive
// while a commit is running are batched into the next transaction, so throughput stays
// high under concurrency.
//
// Finish() (end time, bytes sent, outcome) never blocks and nothing waits for it to be
// durable, so completions are held back and written together: when the oldest one has
// waited `finish_delay`, when kMaxFinishBatch are queued, or on Flush() (the drain on
// SIGTERM) — instead of one more fsync'd commit per download. After a crash (kill -9) a
// download that ended within the last `finish_delay` stays on the record as in_progress,
// exactly as one cut off mid-transfer would.
//
// A group commit that fails as unavailable is tried once more at once (a connection that
// died while idle is only found out by its next statement; the store then reconnects).
// A group commit the store refuses for a reason other than an outage (kUnavailable) is
// retried record by record, so a record the store cannot take fails only its own download.
//
// Thread-safe. The store (only its AuditSink role is used) is not owned and must outlive
// the log.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "server/metrics.h"
#include "store/audit_sink.h"

namespace patchgate::server {

class AuditLog {
 public:
  static constexpr size_t kMaxFinishBatch = 4096;     // this many queued: written at once
  static constexpr size_t kFinishesPerCommit = 512;   // so begins never wait behind a long one
  static constexpr std::chrono::milliseconds kDefaultFinishDelay{100};

  // finish_delay 0: every completion is written on the audit thread's next turn.
  AuditLog(AuditSink* store, Metrics* metrics, std::chrono::milliseconds finish_delay = kDefaultFinishDelay);
  ~AuditLog();  // flushes; completions the store still refuses after that are logged and dropped
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // The record's id once durable; an error (kUnavailable...) means: do not serve.
  Result<int64_t> Begin(const DownloadStart& start);
  // The same without waiting: `done` runs once, on the audit thread (or at once on this
  // thread when the log is shutting down), with the id once durable or the error. It must
  // not block (post to a loop).
  void BeginAsync(DownloadStart start, std::function<void(Result<int64_t>)> done);
  void Finish(const DownloadFinish& finish);
  // Writes every queued completion now and waits for it; waits at most 15 s (the store
  // may be down). Returns false if something was still unwritten then.
  bool Flush();

 private:
  struct PendingBegin {
    DownloadStart start;
    std::function<void(Result<int64_t>)> done;
  };
  using Clock = std::chrono::steady_clock;
  void Run();
  Clock::time_point FinishesDueAt() const;  // when queued completions are to be written; mu_ held

  AuditSink* store_;
  Metrics* metrics_;
  const std::chrono::milliseconds finish_delay_;
  std::mutex mu_;
  std::condition_variable cv_, flushed_;
  std::deque<PendingBegin> begins_;
  std::vector<DownloadFinish> finishes_;
  Clock::time_point oldest_finish_{};  // when finishes_ last became non-empty
  Clock::time_point retry_after_ = Clock::time_point::min();  // after the store refused some
  int flush_requests_ = 0;             // Flush() calls waiting
  bool rest_due_ = false;              // finishes_ holds the rest of a due batch
  bool stop_ = false;
  bool busy_ = false;
  std::thread thread_;
};

}  // namespace patchgate::server
