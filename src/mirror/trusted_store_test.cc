#include "mirror/trusted_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "tuf/metadata.h"

namespace patchgate::mirror {
namespace {

// A snapshot envelope listing targets v2 and two delegated roles at version 5 (unsigned:
// the store trusts what the Updater hands it, which the Updater has verified).
std::string Snapshot() {
  Json meta = Json::object();
  meta["targets.json"] = {{"version", 2}};
  meta["bins-0"] = {{"version", 5}};  // not a .json name: ignored
  meta["bins-1.json"] = {{"version", 5}};
  meta["products/mail.json"] = {{"version", 5}};
  Json signed_json = {{"_type", "snapshot"}, {"spec_version", "1.0.31"}, {"version", 7},
                      {"expires", "2099-01-01T00:00:00Z"}, {"meta", meta}};
  return Json{{"signatures", Json::array()}, {"signed", signed_json}}.dump();
}

class TrustedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgtrustedXXXXXX";
    dir_ = mkdtemp(tmpl);
    for (const char* d : {"trusted", "staging", "metadata"}) std::filesystem::create_directories(dir_ + "/" + d);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TrustedStoreOptions Options() {
    TrustedStoreOptions o;
    o.trusted_dir = dir_ + "/trusted";
    o.staging_dir = dir_ + "/staging";
    o.served = [this](const std::string& name) -> std::optional<std::string> {
      auto it = served_.find(name);
      if (it == served_.end()) return std::nullopt;
      return it->second;
    };
    o.place = [this](const std::string& staged, const std::string& rel, const std::string& bytes) {
      placed_.push_back(rel);
      EXPECT_EQ(*RealFileSystem::Get().ReadFile(staged, 1 << 20), bytes);
      return RealFileSystem::Get().Rename(staged, dir_ + "/" + rel);
    };
    return o;
  }
  std::string Read(const std::string& rel) {
    auto r = RealFileSystem::Get().ReadFile(dir_ + "/" + rel, 1 << 20);
    return r.ok() ? *r : "<" + r.status().ToString() + ">";
  }

  std::string dir_;
  std::map<std::string, std::string> served_;
  std::vector<std::string> placed_;
};

TEST_F(TrustedStoreTest, EachVerifiedRoleIsKeptAndPublishedUnderItsVersionedName) {
  TrustedStore s(Options());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/timestamp.json", "ts").ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/snapshot.json", Snapshot()).ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/targets.json", "top").ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/bins-1.json", "bin one").ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/products%2Fmail.json", "mail").ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/unlisted.json", "not in the snapshot").ok());
  // Readable at once, whether or not the writer got to it.
  EXPECT_EQ(*s.ReadFile(dir_ + "/trusted/bins-1.json", 100), "bin one");
  EXPECT_EQ(s.ReadFile(dir_ + "/trusted/bins-1.json", 3).status().code(), ErrorCode::kTooLarge);
  ASSERT_TRUE(s.Flush().ok());
  EXPECT_EQ(Read("trusted/snapshot.json"), Snapshot());
  EXPECT_EQ(Read("trusted/bins-1.json"), "bin one");
  EXPECT_EQ(Read("trusted/unlisted.json"), "not in the snapshot");
  EXPECT_EQ(Read("metadata/2.targets.json"), "top");
  EXPECT_EQ(Read("metadata/5.bins-1.json"), "bin one");
  EXPECT_EQ(Read("metadata/5.products%2Fmail.json"), "mail");
  std::map<std::string, std::string> want{
      {"2.targets.json", "top"}, {"5.bins-1.json", "bin one"}, {"5.products%2Fmail.json", "mail"}};
  EXPECT_EQ(s.Published(), want);
  // The rollback state is the Syncer's to publish (timestamp last, at the switch).
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/metadata/timestamp.json"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/metadata/7.snapshot.json"));
  EXPECT_EQ(std::filesystem::directory_iterator(dir_ + "/staging"), std::filesystem::directory_iterator());
}

TEST_F(TrustedStoreTest, AVersionedNameDirHoldsKeepsItsBytes) {
  served_["5.bins-1.json"] = "bin one";
  served_["5.products%2Fmail.json"] = "the mail role DIR serves";
  TrustedStore s(Options());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/snapshot.json", Snapshot()).ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/bins-1.json", "bin one").ok());
  ASSERT_TRUE(s.WriteFileAtomic(dir_ + "/trusted/products%2Fmail.json", "other bytes, same version").ok());
  Status st = s.Flush();
  EXPECT_EQ(st.code(), ErrorCode::kCorrupt);
  EXPECT_NE(st.message().find("immutable 5.products%2Fmail.json"), std::string::npos) << st.ToString();
  EXPECT_TRUE(placed_.empty());  // the same bytes are not written again; other bytes never
  EXPECT_TRUE(s.Published().empty());
}

}  // namespace
}  // namespace patchgate::mirror
