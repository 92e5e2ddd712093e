#include "server/audit_log.h"

#include "core/clock.h"
#include "core/log.h"

namespace patchgate::server {

AuditLog::AuditLog(Store* store, Metrics* metrics) : store_(store), metrics_(metrics) {
  thread_ = std::thread([this] { Run(); });
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
  std::future<Result<int64_t>> f;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return Unavailable("the audit log is shutting down");
    begins_.push_back(PendingBegin{start, {}});
    f = begins_.back().done.get_future();
  }
  cv_.notify_one();
  return f.get();
}

void AuditLog::Finish(const DownloadFinish& finish) {
  {
    std::lock_guard<std::mutex> l(mu_);
    finishes_.push_back(finish);
  }
  cv_.notify_one();
}

void AuditLog::Flush() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.notify_one();
  flushed_.wait_for(l, std::chrono::seconds(15), [&] { return begins_.empty() && finishes_.empty() && !busy_; });
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || !begins_.empty() || !finishes_.empty(); });
    if (begins_.empty() && finishes_.empty()) {
      if (stop_) return;
      continue;
    }
    std::deque<PendingBegin> begins;
    begins.swap(begins_);
    std::vector<DownloadFinish> finishes;
    finishes.swap(finishes_);
    busy_ = true;
    l.unlock();
    if (!begins.empty()) {
      std::vector<DownloadStart> starts;
      starts.reserve(begins.size());
      for (const auto& b : begins) starts.push_back(b.start);
      int64_t t0 = SystemClock::Get().NowMicros();
      auto ids = store_->BeginDownloads(starts);
      metrics_->ObserveAuditCommit(SystemClock::Get().NowMicros() - t0, begins.size());
      if (ids.ok()) {
        for (size_t i = 0; i < begins.size(); ++i) begins[i].done.set_value((*ids)[i]);
      } else {
        metrics_->audit_failures += begins.size();
        log::Error("audit commit failed; refusing those downloads", {{"error", ids.status().ToString()}});
        for (auto& b : begins) b.done.set_value(ids.status());
      }
    }
    if (!finishes.empty()) {
      Status st = store_->FinishDownloads(finishes);
      if (!st.ok()) {
        log::Error("could not complete download records; will retry", {{"error", st.ToString()}});
        l.lock();
        finishes_.insert(finishes_.begin(), finishes.begin(), finishes.end());
        busy_ = false;
        l.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        l.lock();
        continue;
      }
    }
    l.lock();
    busy_ = false;
    flushed_.notify_all();
  }
}

}  // namespace patchgate::server
