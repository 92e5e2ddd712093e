#include "client/metadata_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <mutex>
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

TEST(MetadataWriter, FlushWaitsForAllAndWritesToOnePathLandInOrder) {
  RecordingFs fs;
  MetadataWriter w(&fs);
  EXPECT_TRUE(w.Flush().ok());  // nothing written
  for (int i = 0; i < 30; ++i) w.Write("m/" + std::to_string(i % 3), std::string(1000 + i, 'a' + i % 26));
  ASSERT_TRUE(w.Flush().ok());
  std::lock_guard<std::mutex> l(fs.mu);
  ASSERT_EQ(fs.writes.size(), 30u);
  std::map<std::string, size_t> last;  // per path, the sizes arrive in the order written
  for (const auto& [path, data] : fs.writes) {
    EXPECT_GT(data.size(), last[path]) << path;
    last[path] = data.size();
  }
  EXPECT_EQ(last["m/0"], 1027u);
  EXPECT_EQ(last["m/1"], 1028u);
  EXPECT_EQ(last["m/2"], 1029u);
}

TEST(MetadataWriter, TheFirstFailureIsReportedAndTheOtherWritesStillLand) {
  RecordingFs fs;
  fs.fail_path = "m/snapshot.json";
  MetadataWriter w(&fs);
  w.Write("m/timestamp.json", "t");
  w.Write("m/snapshot.json", "s");
  w.Write("m/targets.json", "x");
  Status st = w.Flush();
  EXPECT_EQ(st.code(), ErrorCode::kIOError) << st.ToString();
  EXPECT_NE(st.message().find("m/snapshot.json"), std::string::npos) << st.message();
  EXPECT_TRUE(w.Flush().ok());  // reported once
  std::lock_guard<std::mutex> l(fs.mu);
  std::map<std::string, std::string> got(fs.writes.begin(), fs.writes.end());
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(got["m/timestamp.json"], "t");
  EXPECT_EQ(got["m/targets.json"], "x");
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
