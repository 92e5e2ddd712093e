#include "core/fs.h"
#include "core/scratch_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace patchgate {
namespace {

TEST(RealFileSystem, AtomicWriteAndCappedRead) {
  auto& fs = RealFileSystem::Get();
  ScratchDir scratch("fs");
  const std::string& dir = scratch.path();
  std::string p = JoinPath(dir, "a/b/f.json");
  ASSERT_TRUE(fs.MakeDirs(DirName(p)).ok());
  ASSERT_TRUE(fs.WriteFileAtomic(p, "hello").ok());
  EXPECT_EQ(*fs.ReadFile(p, 100), "hello");
  auto big = fs.ReadFile(p, 4);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(fs.ReadFile(dir + "/nope", 10).status().code(), ErrorCode::kNotFound);
  auto names = fs.ListDir(DirName(p));
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), 1u);  // no temp file left behind
}

// A batch of syncs (the real file system submits them to the kernel at once): one Status
// per path, in order; a file that cannot be opened fails alone, the others are synced.
// Through a forwarding file system the default runs (SyncFile per path).
TEST(RealFileSystem, SyncFilesReportsEachFileInOrder) {
  auto& real = RealFileSystem::Get();
  ScratchDir scratch("fs");
  std::vector<std::string> paths;
  for (int i = 0; i < 5; ++i) {
    paths.push_back(JoinPath(scratch.path(), "f" + std::to_string(i) + ".tmp"));
    ASSERT_TRUE(real.WriteFileNoWait(paths.back(), std::string(3000 + i, 'x')).ok());
  }
  paths.insert(paths.begin() + 2, JoinPath(scratch.path(), "missing.tmp"));
  ForwardingFileSystem forwarding(&real);
  for (FileSystem* fs : {static_cast<FileSystem*>(&real), static_cast<FileSystem*>(&forwarding)}) {
    std::vector<Status> synced = fs->SyncFiles(paths);
    ASSERT_EQ(synced.size(), paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      if (i == 2) {
        EXPECT_EQ(synced[i].code(), ErrorCode::kIOError) << synced[i].ToString();
        EXPECT_NE(synced[i].message().find("missing.tmp"), std::string::npos) << synced[i].ToString();
      } else {
        EXPECT_TRUE(synced[i].ok()) << paths[i] << ": " << synced[i].ToString();
      }
    }
    EXPECT_TRUE(fs->SyncFiles({}).empty());
    auto one = fs->SyncFiles({paths[0]});
    ASSERT_EQ(one.size(), 1u);
    EXPECT_TRUE(one[0].ok());
  }
}

class FailingWrites : public ForwardingFileSystem {
 public:
  using ForwardingFileSystem::ForwardingFileSystem;
  Status WriteFileAtomic(const std::string&, std::string_view) override {
    return IOError("disk full (injected)");
  }
};

TEST(ForwardingFileSystem, OverridesOneCall) {
  FailingWrites fs(&RealFileSystem::Get());
  ScratchDir scratch("fs");
  const std::string& dir = scratch.path();
  EXPECT_EQ(fs.WriteFileAtomic(dir + "/x", "y").code(), ErrorCode::kIOError);
  EXPECT_TRUE(fs.Exists(dir));
}

TEST(Paths, JoinAndDirName) {
  EXPECT_EQ(JoinPath("a/", "/b"), "a/b");
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
}

}  // namespace
}  // namespace patchgate
