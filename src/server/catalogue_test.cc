// The catalogue reloaded off the request path: answers come from the current catalogue
// while the next one loads, and the timestamp.json it hands out never names a target it
// does not hold.
#include "server/catalogue.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/clock.h"
#include "crypto/hash.h"
#include "tuf/naming.h"

namespace patchgate::server {
namespace {

class CatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgcatXXXXXX";
    dir_ = mkdtemp(tmpl);
    tuf::InitOptions io;
    io.dir = dir_ + "/repo";
    ASSERT_TRUE(tuf::InitRepository(io, access_, SystemClock::Get()).ok());
    ASSERT_TRUE(Publish("one.bin", "first").ok());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Status Publish(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ + "/" + name) << bytes;
    return tuf::Publish({dir_ + "/repo", "office", name, false, nullptr}, {dir_ + "/" + name}, access_, SystemClock::Get()).status();
  }
  std::string Rel(const std::string& name, const std::string& bytes) {
    return tuf::ConsistentTargetName("office/" + name, Sha256Hex(bytes));
  }
  std::string dir_;
  tuf::KeyAccess access_{"pw", false};
};

TEST_F(CatalogueTest, TheTimestampHandedOutNeverNamesATargetTheCatalogueLacks) {
  Catalogue c(dir_ + "/repo");
  ASSERT_TRUE(c.StartBackground().ok());
  ASSERT_TRUE(c.background());
  auto first = c.Timestamp();
  ASSERT_TRUE(first);
  EXPECT_TRUE(c.Find(Rel("one.bin", "first")));
  // A reader checking the invariant the server relies on while a publish lands: whenever
  // the timestamp handed out is the new one, the new target is found.
  std::atomic<bool> stop{false}, violated{false};
  std::atomic<int> old_seen{0}, new_seen{0};
  std::string new_rel = Rel("two.bin", "second");
  std::thread reader([&] {
    while (!stop) {
      auto ts = c.Timestamp();
      bool found = c.Find(new_rel) != nullptr;
      if (ts->etag == first->etag) ++old_seen;
      else if (found) ++new_seen;
      else violated = true;
    }
  });
  ASSERT_TRUE(Publish("two.bin", "second").ok());
  // The loader notices the new timestamp.json on its own (no request needed).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (c.Timestamp()->etag == first->etag && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  reader.join();
  EXPECT_FALSE(violated);
  EXPECT_GT(new_seen.load(), 0);
  EXPECT_TRUE(c.Find(new_rel));
  EXPECT_TRUE(c.Find(Rel("one.bin", "first")));
  EXPECT_TRUE(c.Refresh().ok());  // loads nothing: the last load's status
  // The bytes handed out are timestamp.json's bytes as loaded.
  std::ifstream in(dir_ + "/repo/metadata/timestamp.json");
  std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(*c.Timestamp()->bytes, disk);
  std::printf("reader saw the old timestamp %d times, the new one (with its target) %d times\n", old_seen.load(),
              new_seen.load());
}

TEST_F(CatalogueTest, ABrokenRepositoryKeepsTheLastGoodCatalogue) {
  Catalogue c(dir_ + "/repo");
  ASSERT_TRUE(c.StartBackground().ok());
  auto good = c.Timestamp();
  std::ofstream(dir_ + "/repo/metadata/timestamp.json.tmp") << "{\"not\": \"signed\"}";
  std::filesystem::rename(dir_ + "/repo/metadata/timestamp.json.tmp", dir_ + "/repo/metadata/timestamp.json");
  c.Expire();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (c.Refresh().ok() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(c.Refresh().ok());
  EXPECT_EQ(c.Timestamp()->etag, good->etag);  // still the last good one, with its targets
  EXPECT_TRUE(c.Find(Rel("one.bin", "first")));
}

}  // namespace
}  // namespace patchgate::server
