// The audit log over a real SQLite store: begins are durable when Begin() returns,
// completions wait and go in batches, and Flush() / the destructor write them all.
#include "server/audit_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <thread>

#include "crypto/hash.h"
#include "store/sql.h"
#include "store/store.h"

namespace patchgate::server {
namespace {

using std::chrono::milliseconds;

// The audit log's only role on the store: a fake overrides the call it wants to break and
// forwards the other to the real store.
class ForwardingSink : public AuditSink {
 public:
  explicit ForwardingSink(AuditSink* target) : target_(target) {}
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& s) override {
    return target_->BeginDownloads(s);
  }
  Status FinishDownloads(const std::vector<DownloadFinish>& f) override { return target_->FinishDownloads(f); }

 private:
  AuditSink* target_;
};

// Counts completion commits; refuses the first `fail_finishes` of them.
class CountingStore : public ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;
  Status FinishDownloads(const std::vector<DownloadFinish>& f) override {
    ++finish_commits;
    if (fail_finishes > 0) {
      --fail_finishes;
      return Unavailable("database is down (injected)");
    }
    Status st = ForwardingSink::FinishDownloads(f);
    if (st.ok()) finish_records += f.size();  // counted once committed
    return st;
  }
  std::atomic<int> finish_commits{0}, fail_finishes{0};
  std::atomic<size_t> finish_records{0};
};

class UnavailableBegins : public ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>&) override {
    return Unavailable("database is down (injected)");
  }
};

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgauditXXXXXX";
    dir_ = mkdtemp(tmpl);
    url_ = "sqlite://" + dir_ + "/store.db";
    auto s = Store::Open(url_);
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->AddOrganisation({0, "Contoso", "premier"}).ok());
    auto uid = store_->AddUser("Contoso", "alice", Sha256Hex("t"));
    ASSERT_TRUE(uid.ok());
    user_id_ = *uid;
    counting_ = std::make_unique<CountingStore>(store_.get());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  DownloadStart Start() {
    DownloadStart s;
    s.started_at = 1000;
    s.node = "n";
    s.user_id = user_id_;
    s.target_path = "office/a";
    s.sha256 = std::string(64, 'a');
    return s;
  }
  // Outcomes as another connection sees them (what is committed).
  std::vector<DownloadOutcome> Outcomes() {
    auto other = Store::Open(url_);
    EXPECT_TRUE(other.ok());
    DownloadQuery q;
    q.node = "n";
    std::vector<DownloadOutcome> out;
    for (const auto& d : *(*other)->QueryDownloads(q)) out.push_back(d.outcome);
    return out;
  }
  size_t Count(DownloadOutcome o) {
    auto v = Outcomes();
    return static_cast<size_t>(std::count(v.begin(), v.end(), o));
  }

  std::string dir_, url_;
  int64_t user_id_ = 0;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CountingStore> counting_;
  Metrics metrics_;
};

TEST_F(AuditLogTest, BeginIsCommittedWhenItReturns) {
  AuditLog log(counting_.get(), &metrics_, milliseconds(600000));
  auto id = log.Begin(Start());
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(Count(DownloadOutcome::kInProgress), 1u);
}

TEST_F(AuditLogTest, CompletionsWaitThenFlushWritesThemInOneCommit) {
  AuditLog log(counting_.get(), &metrics_, milliseconds(600000));
  for (int i = 0; i < 5; ++i) {
    auto id = log.Begin(Start());
    ASSERT_TRUE(id.ok());
    log.Finish({*id, 2000, 10, DownloadOutcome::kComplete});
  }
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(counting_->finish_commits.load(), 0);
  EXPECT_EQ(Count(DownloadOutcome::kInProgress), 5u);
  EXPECT_TRUE(log.Flush());
  EXPECT_EQ(counting_->finish_commits.load(), 1);
  EXPECT_EQ(Count(DownloadOutcome::kComplete), 5u);
}

TEST_F(AuditLogTest, CompletionsAreWrittenAfterTheDelayWithoutAFlush) {
  AuditLog log(counting_.get(), &metrics_, milliseconds(50));
  auto id = log.Begin(Start());
  ASSERT_TRUE(id.ok());
  log.Finish({*id, 2000, 10, DownloadOutcome::kComplete});
  for (int i = 0; i < 500 && counting_->finish_records == 0; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(Count(DownloadOutcome::kComplete), 1u);
}

TEST_F(AuditLogTest, ZeroDelayWritesAtOnce) {
  AuditLog log(counting_.get(), &metrics_, milliseconds(0));
  auto id = log.Begin(Start());
  ASSERT_TRUE(id.ok());
  log.Finish({*id, 2000, 10, DownloadOutcome::kComplete});
  for (int i = 0; i < 500 && counting_->finish_records == 0; ++i) std::this_thread::sleep_for(milliseconds(2));
  EXPECT_EQ(counting_->finish_records.load(), 1u);
}

TEST_F(AuditLogTest, AFullBatchDoesNotWaitForTheDelay) {
  AuditLog log(counting_.get(), &metrics_, milliseconds(600000));
  for (size_t i = 0; i < AuditLog::kMaxFinishBatch; ++i)
    log.Finish({static_cast<int64_t>(i + 1000000), 2000, 10, DownloadOutcome::kComplete});  // ids need not exist
  for (int i = 0; i < 500 && counting_->finish_records < AuditLog::kMaxFinishBatch; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(counting_->finish_records.load(), AuditLog::kMaxFinishBatch);  // all of them, without a flush
  // In commits of at most kFinishesPerCommit, so a begin never waits behind a long one.
  EXPECT_EQ(static_cast<size_t>(counting_->finish_commits.load()),
            AuditLog::kMaxFinishBatch / AuditLog::kFinishesPerCommit);
}

TEST_F(AuditLogTest, TheDestructorWritesQueuedCompletions) {
  {
    AuditLog log(counting_.get(), &metrics_, milliseconds(600000));
    auto id = log.Begin(Start());
    ASSERT_TRUE(id.ok());
    log.Finish({*id, 2000, 10, DownloadOutcome::kAborted});
  }
  EXPECT_EQ(Count(DownloadOutcome::kAborted), 1u);
}

TEST_F(AuditLogTest, RefusedCompletionsAreRetriedAndDoNotHoldUpBegins) {
  counting_->fail_finishes = 3;
  AuditLog log(counting_.get(), &metrics_, milliseconds(0));
  auto id = log.Begin(Start());
  ASSERT_TRUE(id.ok());
  log.Finish({*id, 2000, 10, DownloadOutcome::kComplete});
  for (int i = 0; i < 200 && counting_->finish_commits == 0; ++i) std::this_thread::sleep_for(milliseconds(5));
  ASSERT_TRUE(log.Begin(Start()).ok());
  // The begin was durable while the completion still waited for its retries (3 x 200 ms):
  // an ordering, not a stopwatch, so a loaded machine cannot fail it.
  EXPECT_LT(counting_->finish_commits.load(), 4);
  EXPECT_TRUE(log.Flush());
  EXPECT_EQ(counting_->finish_commits.load(), 4);
  EXPECT_EQ(Count(DownloadOutcome::kComplete), 1u);
  EXPECT_EQ(Count(DownloadOutcome::kInProgress), 1u);
}

// Refuses (as PostgreSQL refuses bytes that are not UTF-8) any batch holding a record whose
// user agent is "poison"; holds the first commit until released so the others queue up.
class PoisonStore : public ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& s) override {
    if (calls++ == 0) {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return released_; });
    }
    for (const auto& d : s)
      if (d.user_agent == "poison") {
        if (s.size() > 1) ++refused_batches;
        return Internal("postgresql: invalid byte sequence for encoding \"UTF8\" (injected)");
      }
    return ForwardingSink::BeginDownloads(s);
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }
  std::atomic<int> calls{0}, refused_batches{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

TEST_F(AuditLogTest, ARefusedRecordFailsOnlyItsOwnDownload) {
  PoisonStore poison(store_.get());
  AuditLog log(&poison, &metrics_, milliseconds(0));
  std::thread holder([&] { EXPECT_TRUE(log.Begin(Start()).ok()); });
  while (poison.calls == 0) std::this_thread::sleep_for(milliseconds(1));
  // These queue behind the held commit and go together in the next one.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0}, refused{0};
  for (int i = 0; i < 6; ++i)
    clients.emplace_back([&, i] {
      DownloadStart s = Start();
      s.user_agent = i == 3 ? "poison" : "curl";
      auto id = log.Begin(s);
      (id.ok() ? ok : refused)++;
      if (i == 3) EXPECT_FALSE(id.ok());
    });
  std::this_thread::sleep_for(milliseconds(300));
  poison.Release();
  holder.join();
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(refused.load(), 1);
  EXPECT_GE(poison.refused_batches.load(), 1);  // the poisoned row really was in a group
  EXPECT_EQ(Count(DownloadOutcome::kInProgress), 6u);
  EXPECT_GE(metrics_.audit_row_retries.load(), 1u);
}

// An outage is not retried row by row (every row would fail the same way, slowly).
TEST_F(AuditLogTest, AnOutageIsNotRetriedRowByRow) {
  UnavailableBegins down(store_.get());
  AuditLog log(&down, &metrics_, milliseconds(0));
  EXPECT_EQ(log.Begin(Start()).status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(metrics_.audit_row_retries.load(), 0u);
}

// The two-step path of the real store (written, then flushed), with the flush held until
// released (or failed on demand) and every write counted.
class HeldFlush : public ForwardingSink {
 public:
  explicit HeldFlush(AuditSink* s) : ForwardingSink(s), real_(s) {}
  Result<std::vector<int64_t>> WriteDownloads(const std::vector<DownloadStart>& s) override {
    ++writes;
    return real_->WriteDownloads(s);
  }
  Status WriteFinishes(const std::vector<DownloadFinish>& f) override { return real_->WriteFinishes(f); }
  Status SyncDownloads() override {
    std::unique_lock<std::mutex> l(mu_);
    ++flushes_started;
    cv_.notify_all();
    cv_.wait(l, [&] { return !held_; });
    if (fail_) return Unavailable("fdatasync: input/output error (injected)");
    return real_->SyncDownloads();
  }
  void Hold(bool on, bool fail = false) {
    std::lock_guard<std::mutex> l(mu_);
    held_ = on;
    fail_ = fail;
    cv_.notify_all();
  }
  bool WaitFlushes(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10), [&] { return flushes_started >= n; });
  }
  std::atomic<int> writes{0};

 private:
  AuditSink* real_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false, fail_ = false;
  int flushes_started = 0;
};

// Waits (up to 10 s) for `pred`, polling.
template <typename P>
bool Eventually(P pred) {
  for (int i = 0; i < 1000 && !pred(); ++i) std::this_thread::sleep_for(milliseconds(10));
  return pred();
}

TEST_F(AuditLogTest, ABeginIsAnsweredOnlyAfterTheFlushThatCoversIt) {
  HeldFlush held(store_.get());
  AuditLog log(&held, &metrics_, milliseconds(0));
  held.Hold(true);
  std::atomic<bool> answered{false};
  log.BeginAsync(Start(), [&](Result<int64_t> r) {
    EXPECT_TRUE(r.ok());
    answered = true;
  });
  ASSERT_TRUE(held.WaitFlushes(1));
  // Written (another connection sees it) but not flushed: no answer yet.
  EXPECT_TRUE(Eventually([&] { return Count(DownloadOutcome::kInProgress) == 1; }));
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_FALSE(answered.load()) << "a begin was answered before its record was flushed";
  held.Hold(false);
  EXPECT_TRUE(Eventually([&] { return answered.load(); }));
}

TEST_F(AuditLogTest, WhileOneFlushRunsTheNextBatchIsWrittenAndFlushedAtOnceByTheOtherThread) {
  HeldFlush held(store_.get());
  AuditLog log(&held, &metrics_, milliseconds(0));
  held.Hold(true);
  std::atomic<int> answered{0};
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  ASSERT_TRUE(held.WaitFlushes(1));
  // The first flush is held; the next begin is still written meanwhile (a second commit
  // in flight) and its flush starts at once, beside the first one, not after it.
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  EXPECT_TRUE(Eventually([&] { return Count(DownloadOutcome::kInProgress) == 2; }));
  EXPECT_TRUE(held.WaitFlushes(2)) << "the second batch waited for the first flush before its own began";
  EXPECT_EQ(held.writes.load(), 2);
  // Both threads are flushing: later begins wait, and go together in one commit when a
  // thread is free.
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(Count(DownloadOutcome::kInProgress), 2u);
  EXPECT_EQ(held.writes.load(), 2);
  EXPECT_EQ(answered.load(), 0) << "a begin was answered before a flush covering it ended";
  held.Hold(false);
  EXPECT_TRUE(Eventually([&] { return answered.load() == 4; }));
  EXPECT_EQ(held.writes.load(), 3);
  EXPECT_EQ(Count(DownloadOutcome::kInProgress), 4u);
}

TEST_F(AuditLogTest, AFailedFlushRefusesItsDownloadsAndTheirRecordsSaySo) {
  HeldFlush held(store_.get());
  AuditLog log(&held, &metrics_, milliseconds(0));
  held.Hold(false, /*fail=*/true);
  auto r = log.Begin(Start());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(log.Flush());
  EXPECT_TRUE(Eventually([&] { return Count(DownloadOutcome::kAborted) == 1; }));
  auto other = Store::Open(url_);
  ASSERT_TRUE(other.ok());
  DownloadQuery q;
  q.node = "n";
  auto rows = (*other)->QueryDownloads(q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].bytes_sent, 0u);
  EXPECT_NE((*rows)[0].detail.find("not served"), std::string::npos) << (*rows)[0].detail;
  EXPECT_GE(metrics_.audit_failures.load(), 1u);
}

}  // namespace
}  // namespace patchgate::server

namespace patchgate::server {
namespace {

// The store journals begins (migration 0009); each end moves its record into the indexed
// trail with the end in place, also while begins keep arriving, and each record lands there
// once, complete: after the flush nothing is left in the journal and no fold was needed.
TEST_F(AuditLogTest, FinishedRecordsAreFoldedWhileBeginsKeepFlowing) {
  constexpr int kThreads = 8, kEach = 160;
  {
    AuditLog log(store_.get(), &metrics_, milliseconds(0));
    std::vector<std::thread> clients;
    std::atomic<int> failed{0};
    for (int t = 0; t < kThreads; ++t) {
      clients.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) {
          // Begun now: a record begun over an hour ago counts as left by a stopped node, and
          // the fold at start may move it unfinished (its end then completes it there).
          DownloadStart start = Start();
          start.started_at = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
          auto id = log.Begin(start);
          if (!id.ok()) {
            ++failed;
            continue;
          }
          log.Finish({*id, start.started_at + 10, 10, DownloadOutcome::kComplete});
        }
      });
    }
    for (auto& c : clients) c.join();
    ASSERT_EQ(failed.load(), 0);
    ASSERT_TRUE(log.Flush());
    EXPECT_EQ(metrics_.audit_folded.load(), 0u);
    EXPECT_EQ(metrics_.audit_fold_failures.load(), 0u);
  }
  auto shared = sql::ConnectionOf(*store_);
  ASSERT_TRUE(shared.has_value());
  {
    std::lock_guard<std::mutex> l(*shared->mu);
    auto left = shared->conn->Query("SELECT COUNT(*) FROM download_journal", {});
    ASSERT_TRUE(left.ok());
    EXPECT_EQ(*(*left)[0][0], "0");
    auto moved = shared->conn->Query("SELECT COUNT(*), COUNT(DISTINCT id) FROM downloads WHERE outcome = 'complete'", {});
    ASSERT_TRUE(moved.ok());
    EXPECT_EQ(*(*moved)[0][0], std::to_string(kThreads * kEach));
    EXPECT_EQ(*(*moved)[0][1], std::to_string(kThreads * kEach));
  }
  EXPECT_EQ(Count(DownloadOutcome::kComplete), static_cast<size_t>(kThreads * kEach));
}


// CPU time (ns) the audit log's threads ("pg-audit") have used so far: the kernel's
// per-thread accounting (/proc/self/task/*/schedstat), summed.
uint64_t AuditThreadsCpuNs() {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "pg-audit") continue;
    std::ifstream stat(e.path() / "schedstat");
    uint64_t ns = 0;
    if (stat >> ns) total += ns;
  }
  return total;
}

// A store whose begin writes take `delay_ms` (a slow disk, a busy database).
class SlowWrites : public ForwardingSink {
 public:
  explicit SlowWrites(AuditSink* s) : ForwardingSink(s), real_(s) {}
  Result<std::vector<int64_t>> WriteDownloads(const std::vector<DownloadStart>& s) override {
    if (int d = delay_ms.load(); d > 0) {
      in_slow_write = true;
      std::this_thread::sleep_for(milliseconds(d));
    }
    return real_->WriteDownloads(s);
  }
  Status WriteFinishes(const std::vector<DownloadFinish>& f) override { return real_->WriteFinishes(f); }
  Status SyncDownloads() override { return real_->SyncDownloads(); }
  Result<size_t> FoldDownloads(size_t max_rows, int64_t before) override {
    ++folds;
    if (folds_to_fail.load() > 0) {
      --folds_to_fail;
      return Unavailable("test: this fold fails");
    }
    return real_->FoldDownloads(max_rows, before);
  }
  std::atomic<int> delay_ms{0};
  std::atomic<int> folds{0}, folds_to_fail{0};
  std::atomic<bool> in_slow_write{false};

 private:
  AuditSink* real_;
};

// The audit threads sleep when they have nothing they can do: while idle, and while one of
// them waits on a slow store with begins queued behind it and a fold falling due meanwhile
// (a fold due but held back by waiting begins once made the other thread spin on a past
// deadline). Asserted as a share of the wall time, printed: a thread that spins uses a
// large share of it even on a loaded machine; a sleeping one next to nothing.
TEST_F(AuditLogTest, ItsThreadsSleepWhileIdleAndWhileTheStoreIsSlow) {
  SlowWrites slow(store_.get());
  // The fold at start fails, so the next one falls due kFoldDelay later: while the slow
  // write below runs with begins waiting.
  slow.folds_to_fail = 1;
  AuditLog log(&slow, &metrics_, milliseconds(0));
  ASSERT_TRUE(Eventually([&] { return slow.folds.load() >= 1; }));
  constexpr int kRecords = 20;
  for (int i = 0; i < kRecords; ++i) {
    auto id = log.Begin(Start());
    ASSERT_TRUE(id.ok());
    log.Finish({*id, 2000, 10, DownloadOutcome::kComplete});
  }
  // The ends are written (the fold falls due kFoldDelay after the failed one); now a begin
  // write takes 2.5 s and two more begins wait behind it.
  ASSERT_TRUE(Eventually([&] { return Count(DownloadOutcome::kComplete) == kRecords; }));
  slow.delay_ms = 2500;
  std::atomic<int> answered{0};
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  ASSERT_TRUE(Eventually([&] { return slow.in_slow_write.load(); }));
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  log.BeginAsync(Start(), [&](Result<int64_t> r) { answered += r.ok(); });
  auto share = [](std::chrono::milliseconds window) {
    const uint64_t cpu0 = AuditThreadsCpuNs();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(window);
    const uint64_t cpu = AuditThreadsCpuNs() - cpu0;
    const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(cpu) / static_cast<double>(wall);
  };
  const double waiting = share(milliseconds(2000));  // spans the fold falling due
  std::printf("audit threads' CPU while a write is slow: %.2f%% of the wall time\n", waiting * 100);
  EXPECT_LT(waiting, 0.05) << "the audit threads use CPU while waiting for the store";
  slow.delay_ms = 0;
  ASSERT_TRUE(Eventually([&] { return answered.load() == 3; }));
  ASSERT_TRUE(Eventually([&] { return slow.folds.load() >= 2; }));  // the held-back fold ran
  const double idle = share(milliseconds(1000));
  std::printf("audit threads' CPU while idle: %.2f%% of the wall time\n", idle * 100);
  EXPECT_LT(idle, 0.05) << "the audit threads use CPU while idle";
}

}  // namespace
}  // namespace patchgate::server
