#include "client/metadata_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace patchgate::client {
namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/pgmwXXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string path;
};

// The real disk, with a log of every step in order, and steps that can be made to fail.
class LoggingFs : public ForwardingFileSystem {
 public:
  LoggingFs() : ForwardingFileSystem(&RealFileSystem::Get()) {}
  Status WriteFileNoWait(const std::string& p, std::string_view d) override {
    Log("write " + Base(p));
    if (fail_write == Base(p)) return IOError("disk full");
    return target_->WriteFileNoWait(p, d);
  }
  Status SyncFile(const std::string& p) override {
    Log("sync " + Base(p));
    if (fail_sync == Base(p)) return IOError("fsync failed");
    return target_->SyncFile(p);
  }
  Status Rename(const std::string& f, const std::string& t) override {
    Log("rename " + Base(t));
    return target_->Rename(f, t);
  }
  Status SyncDir(const std::string& p) override {
    Log("syncdir");
    return target_->SyncDir(p);
  }
  Status WriteFileAtomic(const std::string& p, std::string_view d) override {
    Log("atomic " + Base(p));
    return target_->WriteFileAtomic(p, d);
  }
  void Log(std::string s) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back(std::move(s));
  }
  static std::string Base(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }
  std::mutex mu;
  std::vector<std::string> log;
  std::string fail_write, fail_sync;
};

std::string Read(const std::string& path) { return *RealFileSystem::Get().ReadFile(path, 1 << 20); }

TEST(MetadataWriter, NothingIsInPlaceBeforeFlushAndEverythingIsAfterOneDirectorySync) {
  TempDir d;
  ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(d.path + "/timestamp.json", "old").ok());
  LoggingFs fs;
  MetadataWriter w(&fs);
  EXPECT_TRUE(w.Flush().ok());  // nothing written
  ASSERT_TRUE(w.Write(d.path + "/timestamp.json", "t1").ok());
  ASSERT_TRUE(w.Write(d.path + "/snapshot.json", "s").ok());
  ASSERT_TRUE(w.Write(d.path + "/timestamp.json", "t2").ok());  // replaces the first write
  EXPECT_EQ(w.pending(), 2u);
  // Not yet in place: the old file is whole, the new one absent.
  EXPECT_EQ(Read(d.path + "/timestamp.json"), "old");
  EXPECT_FALSE(RealFileSystem::Get().Exists(d.path + "/snapshot.json"));
  ASSERT_TRUE(w.Flush().ok());
  EXPECT_EQ(Read(d.path + "/timestamp.json"), "t2");
  EXPECT_EQ(Read(d.path + "/snapshot.json"), "s");
  EXPECT_EQ(d.Names(), (std::vector<std::string>{"snapshot.json", "timestamp.json"}));  // no temporary file left
  // Each file synced before any rename; one directory sync, after the renames.
  std::vector<std::string> log = fs.log;
  size_t first_rename = 0, last_sync = 0, syncdirs = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].rfind("sync ", 0) == 0) last_sync = i;
    if (log[i].rfind("rename ", 0) == 0 && first_rename == 0) first_rename = i;
    if (log[i] == "syncdir") ++syncdirs;
  }
  EXPECT_LT(last_sync, first_rename);
  EXPECT_EQ(syncdirs, 1u);
  EXPECT_EQ(log.back(), "syncdir");
  EXPECT_EQ(w.pending(), 0u);
}

// Crash guarantee: a file whose bytes could not be made durable is never renamed into
// place; the old file stays whole and the other files still land.
TEST(MetadataWriter, AFileThatCannotBeSyncedIsNotPutInPlaceAndTheOthersLand) {
  TempDir d;
  ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(d.path + "/snapshot.json", "old").ok());
  LoggingFs fs;
  fs.fail_sync = "snapshot.json.tmp." + std::to_string(::getpid());
  MetadataWriter w(&fs);
  ASSERT_TRUE(w.Write(d.path + "/timestamp.json", "t").ok());
  ASSERT_TRUE(w.Write(d.path + "/snapshot.json", "s").ok());
  ASSERT_TRUE(w.Write(d.path + "/targets.json", "x").ok());
  Status st = w.Flush();
  EXPECT_EQ(st.code(), ErrorCode::kIOError) << st.ToString();
  EXPECT_NE(st.message().find("snapshot.json"), std::string::npos) << st.message();
  EXPECT_TRUE(w.Flush().ok());  // reported once
  EXPECT_EQ(Read(d.path + "/snapshot.json"), "old");
  EXPECT_EQ(Read(d.path + "/timestamp.json"), "t");
  EXPECT_EQ(Read(d.path + "/targets.json"), "x");
  for (const auto& l : fs.log) EXPECT_NE(l, "rename snapshot.json");
  EXPECT_EQ(d.Names(), (std::vector<std::string>{"snapshot.json", "targets.json", "timestamp.json"}));
}

TEST(MetadataWriter, AWriteThatFailsIsReportedAtOnceAndLeavesNothing) {
  TempDir d;
  LoggingFs fs;
  fs.fail_write = "snapshot.json.tmp." + std::to_string(::getpid());
  MetadataWriter w(&fs);
  ASSERT_TRUE(w.Write(d.path + "/timestamp.json", "t").ok());
  Status st = w.Write(d.path + "/snapshot.json", "s");
  EXPECT_EQ(st.code(), ErrorCode::kIOError);
  EXPECT_NE(st.message().find("snapshot.json"), std::string::npos) << st.message();
  EXPECT_EQ(w.pending(), 1u);
  ASSERT_TRUE(w.Flush().ok());
  EXPECT_EQ(d.Names(), (std::vector<std::string>{"timestamp.json"}));
}

TEST(MetadataWriter, ABackgroundFlushLandsAndItsFailureIsReportedByTheNextFlush) {
  TempDir d;
  LoggingFs fs;
  fs.fail_sync = "b.json.tmp." + std::to_string(::getpid());
  MetadataWriter w(&fs);
  ASSERT_TRUE(w.Write(d.path + "/a.json", "1").ok());
  ASSERT_TRUE(w.Write(d.path + "/b.json", "2").ok());
  w.FlushInBackground();
  EXPECT_EQ(w.pending(), 0u);
  ASSERT_TRUE(w.Write(d.path + "/a.json", "3").ok());  // waits for the background flush first
  EXPECT_EQ(Read(d.path + "/a.json"), "1");
  Status st = w.Flush();
  EXPECT_EQ(st.code(), ErrorCode::kIOError) << st.ToString();
  EXPECT_NE(st.message().find("b.json"), std::string::npos) << st.message();
  EXPECT_EQ(Read(d.path + "/a.json"), "3");
  EXPECT_EQ(d.Names(), (std::vector<std::string>{"a.json"}));
  EXPECT_TRUE(w.Flush().ok());  // reported once
}

TEST(MetadataWriter, TheDestructorFlushes) {
  TempDir d;
  {
    MetadataWriter w(&RealFileSystem::Get());
    ASSERT_TRUE(w.Write(d.path + "/a.json", "{\"a\":1}").ok());
    ASSERT_TRUE(w.Flush().ok());
    EXPECT_EQ(Read(d.path + "/a.json"), "{\"a\":1}");
    ASSERT_TRUE(w.Write(d.path + "/b.json", "{}").ok());
  }  // the destructor flushes
  EXPECT_EQ(Read(d.path + "/b.json"), "{}");
}

// A FileSystem without the two-step calls (the defaults) still gets every file durably.
TEST(MetadataWriter, AFileSystemWithoutTheTwoStepCallsStillWritesDurably) {
  TempDir d;
  class Plain : public FileSystem {
   public:
    Result<std::string> ReadFile(const std::string& p, uint64_t m) override { return real().ReadFile(p, m); }
    Status WriteFileAtomic(const std::string& p, std::string_view d) override {
      ++atomic;
      return real().WriteFileAtomic(p, d);
    }
    Status Rename(const std::string& f, const std::string& t) override { return real().Rename(f, t); }
    Status Remove(const std::string& p) override { return real().Remove(p); }
    Status MakeDirs(const std::string& p) override { return real().MakeDirs(p); }
    bool Exists(const std::string& p) override { return real().Exists(p); }
    Result<std::vector<std::string>> ListDir(const std::string& p) override { return real().ListDir(p); }
    Status SyncDir(const std::string& p) override { return real().SyncDir(p); }
    static RealFileSystem& real() { return RealFileSystem::Get(); }
    int atomic = 0;
  } fs;
  MetadataWriter w(&fs);
  ASSERT_TRUE(w.Write(d.path + "/a.json", "1").ok());
  ASSERT_TRUE(w.Flush().ok());
  EXPECT_EQ(fs.atomic, 1);
  EXPECT_EQ(Read(d.path + "/a.json"), "1");
  EXPECT_EQ(d.Names(), (std::vector<std::string>{"a.json"}));
}

}  // namespace
}  // namespace patchgate::client
