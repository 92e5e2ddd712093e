#include "server/served_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "crypto/hash.h"

namespace patchgate::server {
namespace {

class ServedFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgservedXXXXXX";
    dir_ = mkdtemp(tmpl);
    ::mkdir((dir_ + "/metadata").c_str(), 0755);
    std::ofstream(dir_ + "/secret.key") << "private";
    std::ofstream(dir_ + "/metadata/timestamp.json") << "{\"v\":1}";
    dfd_ = ::open(dir_.c_str(), O_PATH | O_DIRECTORY);
  }
  void TearDown() override {
    ::close(dfd_);
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
  std::string dir_;
  int dfd_ = -1;
};

TEST_F(ServedFilesTest, LinksAndEscapesAreNeverOpened) {
  ASSERT_EQ(::symlink("../secret.key", (dir_ + "/metadata/tk.json").c_str()), 0);
  errno = 0;
  EXPECT_LT(OpenBeneath(dfd_, "metadata/tk.json"), 0);
  EXPECT_EQ(errno, ELOOP);
  EXPECT_LT(OpenBeneath(dfd_, "../secret.key"), 0);
  int fd = OpenBeneath(dfd_, "metadata/timestamp.json");
  EXPECT_GE(fd, 0);
  ::close(fd);
}

TEST_F(ServedFilesTest, TheCacheCheckSeesTheSameFileAndNeverALinkInItsPlace) {
  int fd = OpenBeneath(dfd_, "metadata/timestamp.json");
  ASSERT_GE(fd, 0);
  struct stat opened {}, checked {};
  ::fstat(fd, &opened);
  ::close(fd);
  ASSERT_TRUE(StatForCacheCheck(dfd_, "metadata/timestamp.json", &checked));
  EXPECT_EQ(MetadataFiles::KeyOf(checked), MetadataFiles::KeyOf(opened));
  // Replaced by a link to another file: not a regular file at the path, so no cache hit.
  ASSERT_EQ(::rename((dir_ + "/metadata/timestamp.json").c_str(), (dir_ + "/old.json").c_str()), 0);
  ASSERT_EQ(::symlink("../secret.key", (dir_ + "/metadata/timestamp.json").c_str()), 0);
  EXPECT_FALSE(StatForCacheCheck(dfd_, "metadata/timestamp.json", &checked));
  EXPECT_FALSE(StatForCacheCheck(dfd_, "metadata/missing.json", &checked));
  EXPECT_FALSE(StatForCacheCheck(dfd_, "metadata", &checked));  // a directory
}

TEST_F(ServedFilesTest, MetadataIsReusedUntilTheFileChanges) {
  MetadataFiles files;
  auto load = [&] {
    int fd = OpenBeneath(dfd_, "metadata/timestamp.json");
    struct stat st {};
    ::fstat(fd, &st);
    auto m = files.Load(fd, st, "timestamp.json");
    ::close(fd);
    EXPECT_TRUE(m.ok());
    return *m;
  };
  auto a = load();
  EXPECT_EQ(*a->bytes, "{\"v\":1}");
  EXPECT_EQ(a->etag, "\"" + Sha256Hex("{\"v\":1}") + "\"");
  EXPECT_EQ(load(), a);  // reused
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Replaced as publish does (a new file renamed over it): read again, new ETag.
  std::ofstream(dir_ + "/metadata/t.tmp") << "{\"v\":2}";
  ASSERT_EQ(::rename((dir_ + "/metadata/t.tmp").c_str(), (dir_ + "/metadata/timestamp.json").c_str()), 0);
  auto b = load();
  EXPECT_EQ(*b->bytes, "{\"v\":2}");
  EXPECT_NE(b->etag, a->etag);
  // Rewritten in place with the same length: mtime/ctime differ, so it is read again too.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ofstream(dir_ + "/metadata/timestamp.json") << "{\"v\":3}";
  EXPECT_EQ(*load()->bytes, "{\"v\":3}");
}

}  // namespace
}  // namespace patchgate::server
