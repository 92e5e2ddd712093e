#include "client/metadata_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <vector>

namespace patchgate::client {
namespace {

// Records each write (in order) instead of touching the disk; fails writes to one path.
class RecordingFs : public ForwardingFileSystem {
 public:
  RecordingFs() : ForwardingFileSystem(&RealFileSystem::Get()) {}
  Status WriteFileAtomic(const std::string& p, std::string_view d) override {
    std::lock_guard<std::mutex> l(mu);
    if (p == fail_path) return IOError("disk full");
    writes.emplace_back(p, std::string(d));
    return Status::OK();
  }
  std::mutex mu;
  std::string fail_path;
  std::vector<std::pair<std::string, std::string>> writes;
};

TEST(MetadataWriter, WritesInOrderAndFlushWaitsForAll) {
  RecordingFs fs;
  MetadataWriter w(&fs);
  EXPECT_TRUE(w.Flush().ok());  // nothing queued
  for (int i = 0; i < 50; ++i) w.Write("m/" + std::to_string(i % 3), std::string(1000 + i, 'a' + i % 26));
  ASSERT_TRUE(w.Flush().ok());
  std::lock_guard<std::mutex> l(fs.mu);
  ASSERT_EQ(fs.writes.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(fs.writes[i].first, "m/" + std::to_string(i % 3));
    EXPECT_EQ(fs.writes[i].second.size(), 1000u + i);
  }
}

TEST(MetadataWriter, TheFirstFailureIsReportedAndLaterWritesAreSkipped) {
  RecordingFs fs;
  fs.fail_path = "m/snapshot.json";
  MetadataWriter w(&fs);
  w.Write("m/timestamp.json", "t");
  w.Write("m/snapshot.json", "s");
  w.Write("m/targets.json", "x");
  Status st = w.Flush();
  EXPECT_EQ(st.code(), ErrorCode::kIOError) << st.ToString();
  EXPECT_NE(st.message().find("m/snapshot.json"), std::string::npos) << st.message();
  std::lock_guard<std::mutex> l(fs.mu);
  ASSERT_EQ(fs.writes.size(), 1u);  // targets.json is not written after snapshot.json failed
  EXPECT_EQ(fs.writes[0].first, "m/timestamp.json");
}

TEST(MetadataWriter, RealFilesAreOnDiskAfterFlushAndAfterDestruction) {
  char tmpl[] = "/tmp/pgmwXXXXXX";
  std::string dir = mkdtemp(tmpl);
  {
    MetadataWriter w(&RealFileSystem::Get());
    w.Write(dir + "/a.json", "{\"a\":1}");
    ASSERT_TRUE(w.Flush().ok());
    EXPECT_EQ(*RealFileSystem::Get().ReadFile(dir + "/a.json", 100), "{\"a\":1}");
    w.Write(dir + "/b.json", "{}");
  }  // the destructor flushes
  EXPECT_EQ(*RealFileSystem::Get().ReadFile(dir + "/b.json", 100), "{}");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace patchgate::client
