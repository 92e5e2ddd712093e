#include "server/audit_log.h"

#include <pthread.h>

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"

namespace patchgate::server {

namespace {
// After the store refused a batch of completions, they are tried again this much later
// (begins keep flowing meanwhile).
constexpr std::chrono::milliseconds kFinishRetry{200};
}  // namespace

AuditLog::AuditLog(AuditSink* store, Metrics* metrics, std::chrono::milliseconds finish_delay)
    : store_(store), metrics_(metrics), finish_delay_(std::max(finish_delay, std::chrono::milliseconds(0))) {
  for (auto& t : threads_) {
    t = std::thread([this] {
      pthread_setname_np(pthread_self(), "pg-audit");
      Run();
    });
  }
}

AuditLog::~AuditLog() {
  Flush();
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

Result<int64_t> AuditLog::Begin(const DownloadStart& start) {
  auto p = std::make_shared<std::promise<Result<int64_t>>>();
  auto f = p->get_future();
  BeginAsync(start, [p](Result<int64_t> r) { p->set_value(std::move(r)); });
  return f.get();
}

void AuditLog::BeginAsync(DownloadStart start, std::function<void(Result<int64_t>)> done) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!stop_) {
      // A thread is woken only when one can take this begin now: not while a write runs
      // (its writer wakes the other thread when it ends, if begins are waiting), and not
      // when begins already wait (the wake-up they sent is on its way). Each needless
      // wake-up was a context switch on the request's path.
      wake = begins_.empty() && !writing_;
      begins_.push_back(PendingBegin{std::move(start), std::move(done)});
      done = nullptr;
    }
  }
  if (done) return done(Unavailable("the audit log is shutting down"));
  if (wake) cv_.notify_one();
}

void AuditLog::Finish(const DownloadFinish& finish) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (finishes_.empty()) oldest_finish_ = Clock::now();
    finishes_.push_back(finish);
    // The audit thread sleeps without a deadline only while nothing is queued: wake it to
    // set one, or when a batch is full. Otherwise it finds these on its next turn.
    wake = finishes_.size() == 1 || finishes_.size() == kMaxFinishBatch;
  }
  if (wake) cv_.notify_one();
}

bool AuditLog::Flush() {
  std::unique_lock<std::mutex> l(mu_);
  ++flush_requests_;
  cv_.notify_one();
  bool done = flushed_.wait_for(l, std::chrono::seconds(15), [&] {
    return begins_.empty() && finishes_.empty() && !writing_ && !unsynced_writes_ && syncing_ == 0;
  });
  --flush_requests_;
  return done;
}

AuditLog::Clock::time_point AuditLog::FinishesDueAt() const {
  Clock::time_point at = (stop_ || flush_requests_ > 0 || rest_due_ || finishes_.size() >= kMaxFinishBatch)
                             ? Clock::time_point::min()
                             : oldest_finish_ + finish_delay_;
  return std::max(at, retry_after_);
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    // A thread that has just written flushes what it wrote (no hand-over), at once, even
    // while the other thread's flush runs: flushes overlap (the disk takes them in
    // parallel) and each covers every batch written before it began. The other thread
    // meanwhile writes what arrived.
    if (unsynced_writes_) {
      SyncWritten(l);
      continue;
    }
    bool finishes_due = !finishes_.empty() && Clock::now() >= FinishesDueAt();
    if (!writing_ && (!begins_.empty() || finishes_due)) {
      WriteBatch(l);
      continue;
    }
    if (stop_ && begins_.empty() && finishes_.empty() && !unsynced_writes_) return;
    // Folding comes after every write and flush that is due; with begins waiting (the
    // other thread is writing) only once a backlog has built up.
    const bool fold_due = !stop_ && !folding_ && Clock::now() >= FoldDueAt();
    if (fold_due && (begins_.empty() || unfolded_ >= 4 * kFoldBatch)) {
      FoldBatch(l);
      continue;
    }
    // A fold held back by waiting begins is for whichever thread comes round once they
    // are written (it re-checks): no deadline for it, or this thread would spin.
    Clock::time_point wake = folding_ || stop_ || fold_due ? Clock::time_point::max() : FoldDueAt();
    if (!writing_ && !finishes_.empty()) wake = std::min(wake, FinishesDueAt());
    if (wake == Clock::time_point::max()) cv_.wait(l);
    else cv_.wait_until(l, wake);
  }
}

AuditLog::Clock::time_point AuditLog::FoldDueAt() const {
  if (more_to_fold_ || unfolded_ >= kFoldBatch || (flush_requests_ > 0 && unfolded_ > 0)) return Clock::time_point::min();
  Clock::time_point at = next_sweep_;
  if (unfolded_ > 0) at = std::min(at, oldest_unfolded_ + kFoldDelay);
  return at;
}

void AuditLog::FoldBatch(std::unique_lock<std::mutex>& l) {
  folding_ = true;
  const size_t counted = unfolded_;
  unfolded_ = 0;
  more_to_fold_ = false;
  next_sweep_ = Clock::now() + kFoldSweep;
  l.unlock();

  const int64_t unfinished_before =
      SystemClock::Get().NowMicros() - std::chrono::duration_cast<std::chrono::microseconds>(kFoldUnfinishedAfter).count();
  auto moved = store_->FoldDownloads(kFoldBatch, unfinished_before);
  if (moved.ok()) {
    metrics_->audit_folded += *moved;
  } else {
    ++metrics_->audit_fold_failures;
    log::Warn("could not fold the download journal; its records stay readable there, will retry",
              {{"error", moved.status().ToString()}});
  }

  l.lock();
  folding_ = false;
  if (moved.ok()) {
    more_to_fold_ = *moved == kFoldBatch;
  } else {  // tried again a fold delay from now
    if (unfolded_ == 0) oldest_unfolded_ = Clock::now();
    unfolded_ += std::max<size_t>(counted, 1);
  }
}

void AuditLog::WriteBatch(std::unique_lock<std::mutex>& l) {
  bool finishes_due = !finishes_.empty() && Clock::now() >= FinishesDueAt();
  std::deque<PendingBegin> begins;
  begins.swap(begins_);
  std::vector<DownloadFinish> finishes;
  if (finishes_due && finishes_.size() <= kFinishesPerCommit) {
    finishes.swap(finishes_);
    rest_due_ = false;
  } else if (finishes_due) {  // the rest go after the next begins, still due
    auto cut = finishes_.begin() + static_cast<std::ptrdiff_t>(kFinishesPerCommit);
    finishes.assign(finishes_.begin(), cut);
    finishes_.erase(finishes_.begin(), cut);
    rest_due_ = true;
  }
  writing_ = true;
  l.unlock();

  Written written;
  written.began = Clock::now();
  if (!begins.empty()) {
    std::vector<DownloadStart> starts;
    starts.reserve(begins.size());
    for (auto& b : begins) starts.push_back(std::move(b.start));
    auto ids = store_->WriteDownloads(starts);
    if (!ids.ok() && ids.status().code() == ErrorCode::kUnavailable) {
      // A connection that died while idle (the database restarted) is only found out
      // by the next statement; the store reconnects on the one after: try once more
      // before refusing downloads. Still down: refused.
      ids = store_->WriteDownloads(starts);
    }
    if (ids.ok()) {
      for (size_t i = 0; i < begins.size(); ++i) {
        written.done.push_back(std::move(begins[i].done));
        written.ids.push_back((*ids)[i]);
      }
    } else if (begins.size() > 1 && ids.status().code() != ErrorCode::kUnavailable) {
      // Not an outage: something in one record was refused. One request's content must
      // never fail another's audit write, so each record is tried alone; only the bad
      // one is refused.
      ++metrics_->audit_row_retries;
      log::Warn("audit group commit refused; retrying its records one by one",
                {{"records", std::to_string(begins.size())}, {"error", ids.status().ToString()}});
      for (size_t i = 0; i < begins.size(); ++i) {
        auto& b = begins[i];
        auto one = store_->WriteDownloads({starts[i]});
        if (one.ok() && one->size() == 1) {
          written.done.push_back(std::move(b.done));
          written.ids.push_back((*one)[0]);
        } else {
          ++metrics_->audit_failures;
          Status why = one.ok() ? Internal("the store returned no id for the record") : one.status();
          log::Error("audit record refused; refusing that download", {{"error", why.ToString()}});
          b.done(why);
        }
      }
    } else {
      metrics_->audit_failures += begins.size();
      log::Error("audit commit failed; refusing those downloads", {{"error", ids.status().ToString()}});
      for (auto& b : begins) b.done(ids.status());
    }
  }
  Status finished = finishes.empty() ? Status::OK() : store_->WriteFinishes(finishes);
  metrics_->audit_writes += (begins.empty() ? 0 : 1) + (finishes.empty() ? 0 : 1);

  l.lock();
  // Written ends moved their records into the trail (AuditSink::WriteFinishes): nothing
  // for a fold. Folds are left for records an earlier process did not end (the sweep).
  if (!finished.ok()) {
    if (stop_) {
      log::Error("could not complete download records before exit; they stay in_progress",
                 {{"records", std::to_string(finishes.size() + finishes_.size())}, {"error", finished.ToString()}});
      finishes_.clear();
      rest_due_ = false;
    } else {
      log::Error("could not complete download records; will retry", {{"error", finished.ToString()}});
      if (finishes_.empty()) oldest_finish_ = Clock::now();
      finishes_.insert(finishes_.begin(), finishes.begin(), finishes.end());
      retry_after_ = Clock::now() + kFinishRetry;
    }
  }
  if (!written.ids.empty() || (!finishes.empty() && finished.ok())) {
    unsynced_writes_ = true;
    if (!written.ids.empty()) unsynced_.push_back(std::move(written));
  }
  writing_ = false;
  // What queued meanwhile is for the other thread (this one flushes what it wrote next).
  // Woken only when there is something to write.
  if (!begins_.empty() || (!finishes_.empty() && Clock::now() >= FinishesDueAt()) || stop_) cv_.notify_all();
  flushed_.notify_all();
}

void AuditLog::SyncWritten(std::unique_lock<std::mutex>& l) {
  ++syncing_;
  unsynced_writes_ = false;
  std::vector<Written> batch;
  batch.swap(unsynced_);
  l.unlock();

  Status st = store_->SyncDownloads();
  ++metrics_->audit_flushes;
  auto now = Clock::now();
  std::vector<DownloadFinish> not_served;
  for (auto& w : batch) {
    metrics_->ObserveAuditCommit(std::chrono::duration_cast<std::chrono::microseconds>(now - w.began).count(),
                                 w.ids.size());
    for (size_t i = 0; i < w.ids.size(); ++i) {
      if (st.ok()) {
        w.done[i](w.ids[i]);
      } else {
        // Written but not known to be on disk: not served. Its record says so (if that
        // write ever reaches the disk, the record is true either way).
        w.done[i](st);
        not_served.push_back({w.ids[i], SystemClock::Get().NowMicros(), 0, DownloadOutcome::kAborted,
                              "not served: the record could not be made durable (" + st.message() + ")"});
      }
    }
  }
  if (!st.ok()) {
    size_t n = 0;
    for (auto& w : batch) n += w.ids.size();
    metrics_->audit_failures += n;
    log::Error("audit flush failed; refusing those downloads", {{"records", std::to_string(n)}, {"error", st.ToString()}});
  }

  l.lock();
  if (!not_served.empty()) {
    // Not retried: after a failed flush the kernel may have dropped the pages it could not
    // write, so a second flush proves nothing about them. Those downloads were refused.
    if (finishes_.empty()) oldest_finish_ = Clock::now();
    finishes_.insert(finishes_.end(), not_served.begin(), not_served.end());
    cv_.notify_one();
  }
  --syncing_;
  // A batch the other thread wrote meanwhile is flushed by that thread (its next turn):
  // nobody to wake here.
  flushed_.notify_all();
}

}  // namespace patchgate::server
