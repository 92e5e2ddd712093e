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
