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
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "pg-audit");
    Run();
  });
}

AuditLog::~AuditLog() {
  Flush();
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Result<int64_t> AuditLog::Begin(const DownloadStart& start) {
  auto p = std::make_shared<std::promise<Result<int64_t>>>();
  auto f = p->get_future();
  BeginAsync(start, [p](Result<int64_t> r) { p->set_value(std::move(r)); });
  return f.get();
}

void AuditLog::BeginAsync(DownloadStart start, std::function<void(Result<int64_t>)> done) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!stop_) {
      begins_.push_back(PendingBegin{std::move(start), std::move(done)});
      done = nullptr;
    }
  }
  if (done) return done(Unavailable("the audit log is shutting down"));
  cv_.notify_one();
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
  bool done = flushed_.wait_for(l, std::chrono::seconds(15), [&] { return begins_.empty() && finishes_.empty() && !busy_; });
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
    bool finishes_due = !finishes_.empty() && Clock::now() >= FinishesDueAt();
    if (begins_.empty() && !finishes_due) {
      if (stop_ && finishes_.empty()) return;
      if (finishes_.empty()) cv_.wait(l);
      else cv_.wait_until(l, FinishesDueAt());
      continue;
    }
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
    busy_ = true;
    l.unlock();

    if (!begins.empty()) {
      std::vector<DownloadStart> starts;
      starts.reserve(begins.size());
      for (auto& b : begins) starts.push_back(std::move(b.start));
      int64_t t0 = SystemClock::Get().NowMicros();
      auto ids = store_->BeginDownloads(starts);
      if (!ids.ok() && ids.status().code() == ErrorCode::kUnavailable) {
        // A connection that died while idle (the database restarted) is only found out
        // by the next statement; the store reconnects on the one after: try once more
        // before refusing downloads. Still down: refused.
        ids = store_->BeginDownloads(starts);
      }
      metrics_->ObserveAuditCommit(SystemClock::Get().NowMicros() - t0, begins.size());
      if (ids.ok()) {
        for (size_t i = 0; i < begins.size(); ++i) begins[i].done((*ids)[i]);
      } else if (begins.size() > 1 && ids.status().code() != ErrorCode::kUnavailable) {
        // Not an outage: something in one record was refused. One request's content must
        // never fail another's audit write, so each record is tried alone; only the bad
        // one is refused.
        ++metrics_->audit_row_retries;
        log::Warn("audit group commit refused; retrying its records one by one",
                  {{"records", std::to_string(begins.size())}, {"error", ids.status().ToString()}});
        for (size_t i = 0; i < begins.size(); ++i) {
          auto& b = begins[i];
          auto one = store_->BeginDownloads({starts[i]});
          if (one.ok() && one->size() == 1) {
            b.done((*one)[0]);
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
    Status finished = finishes.empty() ? Status::OK() : store_->FinishDownloads(finishes);

    l.lock();
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
    busy_ = false;
    flushed_.notify_all();
  }
}

}  // namespace patchgate::server
