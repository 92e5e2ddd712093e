// The integrity watch on a real directory with inotify, and a real (SQLite) store for the
// incidents it opens.
#include "mirror/watch.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/fs.h"
#include "crypto/hash.h"

namespace patchgate::mirror {
namespace {

class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgwatchXXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(RealFileSystem::Get().MakeDirs(dir_ + "/targets/office").ok());
    ASSERT_TRUE(RealFileSystem::Get().MakeDirs(dir_ + "/metadata").ok());
    good_ = std::string(5000, 'g');
    sha_ = Sha256Hex(good_);
    rel_ = "targets/office/" + sha_ + ".setup.exe";
    Write(rel_, good_);
    Write("metadata/timestamp.json", "{}");
    expected_[rel_] = ExpectedFile{sha_, good_.size(), "office/setup.exe"};
    expected_["metadata/timestamp.json"] = ExpectedFile{Sha256Hex("{}"), 2, ""};
    auto s = Store::Open("sqlite://" + dir_ + "/store.db");
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
  }
  void TearDown() override {
    if (watch_) watch_->Stop();
    (void)system(("rm -rf " + dir_).c_str());
  }
  void Write(const std::string& rel, const std::string& bytes, bool append = false) {
    std::ofstream(dir_ + "/" + rel, append ? std::ios::app | std::ios::binary : std::ios::binary) << bytes;
  }
  void StartWatch(bool with_restore) {
    WatchOptions o;
    o.dir = dir_;
    o.node = "m2";
    o.verify_interval_seconds = 3600;
    o.unknown_grace_ms = 200;
    WatchHooks h;
    h.store = store_.get();
    h.expected = [this] { return expected_; };
    if (with_restore)
      h.restore = [this](const std::string& rel) {
        ++restores_;
        Write(rel, good_);
        return Status::OK();
      };
    watch_ = std::make_unique<Watch>(o, h);
    ASSERT_TRUE(watch_->Start().ok());
  }
  std::vector<Incident> WaitIncidents(size_t n) {
    for (int i = 0; i < 200; ++i) {
      auto all = store_->ListIncidents();
      if (all.ok() && all->size() >= n) return *all;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return store_->ListIncidents().value_or(std::vector<Incident>{});
  }
  std::string dir_, good_, sha_, rel_;
  std::map<std::string, ExpectedFile> expected_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Watch> watch_;
  std::atomic<int> restores_{0};
};

TEST_F(WatchTest, AChangedFileIsQuarantinedRestoredAndAnIncidentOpened) {
  StartWatch(true);
  EXPECT_TRUE(watch_->status().alive);
  EXPECT_TRUE(watch_->status().last_full_verify_ok);
  int64_t before = SystemClock::Get().NowMicros();
  Write(rel_, "MARKER", true);
  auto incs = WaitIncidents(1);
  ASSERT_EQ(incs.size(), 1u);
  EXPECT_EQ(incs[0].node, "m2");
  EXPECT_EQ(incs[0].cause, "integrity");
  EXPECT_EQ(incs[0].targets, std::vector<std::string>{"office/setup.exe"});
  EXPECT_LE(incs[0].window_start, before);
  EXPECT_GE(incs[0].window_end, before);
  EXPECT_LT(incs[0].detected_at - before, 1'000'000);
  for (int i = 0; i < 100 && restores_ == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(restores_.load(), 1);
  auto q = RealFileSystem::Get().ListDir(dir_ + "/.patchgate/quarantine");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 1u);
  auto kept = RealFileSystem::Get().ReadFile(dir_ + "/.patchgate/quarantine/" + (*q)[0], 1 << 20);
  EXPECT_EQ(*kept, good_ + "MARKER");
  // The restore hook returns before the watch clears the file's pending state: waited for.
  for (int i = 0; i < 500 && watch_->status().quarantine_pending != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(watch_->status().quarantine_pending, 0);
}

TEST_F(WatchTest, WithoutRestoreTheNodeStaysQuarantined) {
  StartWatch(false);
  ::unlink((dir_ + "/" + rel_).c_str());
  auto incs = WaitIncidents(1);
  ASSERT_EQ(incs.size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(watch_->status().quarantine_pending, 1);
}

TEST_F(WatchTest, AnUnexpectedFileIsQuarantinedAfterItsGrace) {
  StartWatch(true);
  Write("targets/office/dropper.exe", "evil");
  auto incs = WaitIncidents(1);
  ASSERT_EQ(incs.size(), 1u);
  EXPECT_EQ(incs[0].targets, std::vector<std::string>{"targets/office/dropper.exe"});
  EXPECT_NE(access((dir_ + "/targets/office/dropper.exe").c_str(), F_OK), 0);
  EXPECT_EQ(restores_.load(), 0);  // nothing to restore for a file that never belonged
}

TEST_F(WatchTest, AFileNamedByItsOwnHashIsAdopted) {
  StartWatch(true);
  std::string bytes = "new release";
  Write("targets/office/" + Sha256Hex(bytes) + ".new.exe", bytes);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(store_->ListIncidents()->empty());
}

TEST_F(WatchTest, AFileNamedByAHashItDoesNotHaveIsQuarantined) {
  StartWatch(true);
  // A sha256 name over other bytes, and a sha512-length name this watch cannot check.
  std::string wrong = "targets/office/" + Sha256Hex("something else") + ".new.exe";
  std::string long_name = "targets/office/" + Sha256Hex("a") + Sha256Hex("b") + ".big.exe";
  Write(wrong, "infected bytes");
  Write(long_name, "b");
  std::set<std::string> files;
  for (int i = 0; i < 300 && files.size() < 2; ++i) {
    files.clear();
    for (const auto& inc : store_->ListIncidents().value_or(std::vector<Incident>{}))
      files.insert(inc.targets.begin(), inc.targets.end());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(files, (std::set<std::string>{wrong, long_name}));
  EXPECT_NE(access((dir_ + "/" + wrong).c_str(), F_OK), 0);
}

TEST_F(WatchTest, TheFirstFullVerificationCatchesWhatChangedWhileNoOneWatched) {
  Write(rel_, "X", true);
  StartWatch(true);
  EXPECT_FALSE(watch_->status().last_full_verify_ok);
  EXPECT_EQ(WaitIncidents(1).size(), 1u);
}

}  // namespace
}  // namespace patchgate::mirror
