// Group-committed download audit.
//
// Begin() blocks the calling thread until its record is durable in the store; BeginAsync()
// returns at once and calls back (on an audit thread) when it is durable or refused, so an
// event loop can hold the response head without holding a thread. Records that arrive
// while a commit is running are batched into the next transaction, so throughput stays
// high under concurrency.
//
// Two commits in flight: a batch is written (Store::WriteDownloads: committed, visible)
// and then made durable (Store::SyncDownloads: on SQLite, one flush of the write-ahead
// log). Two threads share the work: the one that wrote batch k flushes it (no hand-over:
// one connection costs one flush per download), while the other writes batch k+1 from the
// begins that arrived meanwhile and flushes it at once, beside the first flush (the disk
// takes overlapping flushes in parallel: 8,000 flushes/s from one thread, 10,500 from two,
// measured on the benchmark VM); a flush covers every batch written before it began. A
// callback runs only after the flush that covers its record. A store that cannot split
// the two is durable at WriteDownloads and its SyncDownloads does nothing.
//
// Finish() (end time, bytes sent, outcome) never blocks and nothing waits for it to be
// durable, so completions are held back and written together: when the oldest one has
// waited `finish_delay`, when kMaxFinishBatch are queued, or on Flush() (the drain on
// SIGTERM) — instead of one more fsync'd commit per download. After a crash (kill -9) a
// download that ended within the last `finish_delay` stays on the record as in_progress,
// exactly as one cut off mid-transfer would.
//
// Folding: the store journals begins (AuditSink, migration 0009); a written end moves its
// record into the indexed trail with the end in place (no rewrite of the journal row).
// What is left in the journal is moved by FoldDownloads, in batches of kFoldBatch, by
// whichever audit thread is free: at start (what an earlier process left), every kFoldSweep,
// and kFoldDelay after a fold failed (or on Flush() then). Unfinished records begun more than
// kFoldUnfinishedAfter ago are folded as they are (their node stopped). A fold never holds
// a begin: begins waiting are written first, and a fold is one bounded transaction. Nothing
// waits for a fold: readers see the journal too.
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
  static constexpr size_t kFoldBatch = 256;                  // records per fold transaction
  static constexpr std::chrono::milliseconds kFoldDelay{1000};
  static constexpr std::chrono::milliseconds kFoldSweep{60'000};
  static constexpr std::chrono::minutes kFoldUnfinishedAfter{60};

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
  // Records written and not yet known durable (with the callbacks waiting for that).
  struct Written {
    std::vector<std::function<void(Result<int64_t>)>> done;
    std::vector<int64_t> ids;
    Clock::time_point began;  // when the batch's write began (for the commit latency)
  };
  void Run();  // each of the two threads: writes or flushes, whichever is free and due
  // Writes the queued begins (and due completions) in one transaction. mu_ held (through
  // `l`), no write running; returns with mu_ held.
  void WriteBatch(std::unique_lock<std::mutex>& l);
  // Flushes everything written so far and answers its callbacks. mu_ held, no flush
  // running, something written and not flushed; returns with mu_ held.
  void SyncWritten(std::unique_lock<std::mutex>& l);
  Clock::time_point FinishesDueAt() const;  // when queued completions are to be written; mu_ held
  Clock::time_point FoldDueAt() const;      // when the journal is next to be folded; mu_ held
  // Folds one batch of the journal. mu_ held, no fold running; returns with mu_ held.
  void FoldBatch(std::unique_lock<std::mutex>& l);

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
  bool writing_ = false;               // a write is running (on either thread)
  std::vector<Written> unsynced_;      // written, not yet flushed
  bool unsynced_writes_ = false;       // something (begins or completions) written since the last flush began
  int syncing_ = 0;                    // flushes running (one per thread at most)
  size_t unfolded_ = 0;                // a fold failed: tried again kFoldDelay after oldest_unfolded_
  Clock::time_point oldest_unfolded_{};  // when unfolded_ last became non-zero
  Clock::time_point next_sweep_{};       // a fold is due then whatever unfolded_ says (start: at once)
  bool more_to_fold_ = false;          // the last fold moved a full batch
  bool folding_ = false;               // a fold is running (on either thread)
  std::thread threads_[2];
};

}  // namespace patchgate::server
