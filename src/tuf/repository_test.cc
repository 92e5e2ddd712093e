#include "tuf/repository.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <map>

#include "core/fs.h"
#include "tuf/metadata.h"

namespace patchgate::tuf {
namespace {

class RepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgrepoXXXXXX";
    base_ = mkdtemp(tmpl);
    dir_ = base_ + "/repo";
    InitOptions o;
    o.dir = dir_;
    o.bins_threshold = 4;
    o.bin_bits = 2;
    ASSERT_TRUE(InitRepository(o, access_, clock_).ok());
  }
  std::string File(const std::string& name, const std::string& content) {
    std::string p = base_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  // Every file under metadata/ and its bytes.
  std::map<std::string, std::string> Snapshot() {
    std::map<std::string, std::string> m;
    auto names = RealFileSystem::Get().ListDir(dir_ + "/metadata");
    for (const auto& n : *names)
      m[n] = *RealFileSystem::Get().ReadFile(dir_ + "/metadata/" + n, 1 << 26);
    return m;
  }
  Result<std::vector<PublishedTarget>> Pub(std::vector<std::string> files, bool replace = false,
                                           const KeyAccess* access = nullptr) {
    PublishOptions o{dir_, "office", "2.1", replace, nullptr};
    return Publish(o, files, access ? *access : access_, clock_);
  }

  std::string base_, dir_;
  KeyAccess access_{"test-passphrase", false};
  FakeClock clock_{1'800'000'000};
};

TEST_F(RepoTest, PublishAndVerify) {
  auto r = Pub({File("a.exe", "AAA"), File("b.txt", "BBB")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].path, "office/a.exe");
  EXPECT_EQ((*r)[0].custom["product"], "office");
  EXPECT_EQ((*r)[0].custom["version"], "2.1");
  auto v = VerifyRepository(dir_, clock_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  EXPECT_EQ(v->targets_checked, 2u);
  auto cat = LoadCatalogue(dir_);
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  ASSERT_EQ(cat->size(), 2u);
  EXPECT_EQ((*cat)[0].product, "office");
  EXPECT_TRUE(RealFileSystem::Get().Exists((*cat)[0].file));
}

TEST_F(RepoTest, ConflictWithoutReplaceChangesNothing) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  auto before = Snapshot();
  auto r = Pub({File("a.exe", "two")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kConflict);
  EXPECT_EQ(Snapshot(), before);
  auto same = Pub({File("a.exe", "one")});  // same bytes: a no-op
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE((*same)[0].unchanged);
  EXPECT_EQ(Snapshot(), before);
  ASSERT_TRUE(Pub({File("a.exe", "two")}, true).ok());
  EXPECT_NE(Snapshot(), before);
  EXPECT_TRUE(VerifyRepository(dir_, clock_)->problems.empty());
}

TEST_F(RepoTest, WrongPassphraseOrMissingKeyWritesNothing) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  auto before = Snapshot();
  KeyAccess wrong{"not-it", false};
  auto r = Pub({File("b.exe", "x")}, false, &wrong);
  EXPECT_EQ(r.status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(Snapshot(), before);
  ASSERT_EQ(::rename((dir_ + "/keys/snapshot.key.json").c_str(), (base_ + "/moved").c_str()), 0);
  r = Pub({File("b.exe", "x")});
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(Snapshot(), before);
  ASSERT_EQ(::rename((base_ + "/moved").c_str(), (dir_ + "/keys/snapshot.key.json").c_str()), 0);
  ::chmod((dir_ + "/keys/snapshot.key.json").c_str(), 0644);  // wrongly protected
  r = Pub({File("b.exe", "x")});
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(RepoTest, FailingGateWritesNothing) {
  auto before = Snapshot();
  PublishOptions o{dir_, "office", "", false, [](const std::vector<std::string>&) -> Result<std::vector<Json>> {
                     return Status(ErrorCode::kInfected, "EICAR found");
                   }};
  auto r = Publish(o, {File("a.exe", "x")}, access_, clock_);
  EXPECT_EQ(r.status().code(), ErrorCode::kInfected);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(RepoTest, SplitsIntoHashBinsPastThreshold) {
  std::vector<std::string> files;
  for (int i = 0; i < 7; ++i) files.push_back(File("f" + std::to_string(i) + ".bin", "content " + std::to_string(i)));
  ASSERT_TRUE(Pub(files).ok());
  auto meta = Snapshot();
  EXPECT_TRUE(meta.count("1.products%2Foffice-bins-0.json"));
  EXPECT_TRUE(meta.count("1.products%2Foffice-bins-3.json"));
  ASSERT_TRUE(Pub({File("late.bin", "late")}).ok());
  auto v = VerifyRepository(dir_, clock_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  EXPECT_EQ(v->targets_checked, 8u);
  EXPECT_EQ(LoadCatalogue(dir_)->size(), 8u);
}

TEST_F(RepoTest, RotationsAndRefreshKeepTheChainValid) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  for (const char* role : {"root", "timestamp", "snapshot", "targets", "products/office"}) {
    RotateOptions o{dir_, role, std::nullopt, std::nullopt};
    Status st = RotateKey(o, access_, clock_);
    ASSERT_TRUE(st.ok()) << role << ": " << st.ToString();
    auto v = VerifyRepository(dir_, clock_);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->problems.empty()) << role << ": " << v->problems[0];
  }
  RotateOptions o{dir_, "root", 2, 3};
  ASSERT_TRUE(RotateKey(o, access_, clock_).ok());
  auto v = VerifyRepository(dir_, clock_);
  EXPECT_TRUE(v->problems.empty());
  EXPECT_EQ(v->root_version, 6);
  // Time passes: snapshot and timestamp expire; refresh re-signs them.
  clock_.Advance(8 * 86400);
  v = VerifyRepository(dir_, clock_);
  EXPECT_FALSE(v->problems.empty());
  auto r = Refresh(dir_, false, 3600, access_, clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);
  EXPECT_TRUE(VerifyRepository(dir_, clock_)->problems.empty());
  EXPECT_FALSE(*Refresh(dir_, false, 3600, access_, clock_));
}

TEST_F(RepoTest, VerifyReportsTamperedTargetsAndMetadata) {
  ASSERT_TRUE(Pub({File("a.exe", "original")}).ok());
  auto cat = LoadCatalogue(dir_);
  std::ofstream((*cat)[0].file) << "infected";
  auto v = VerifyRepository(dir_, clock_);
  ASSERT_EQ(v->problems.size(), 1u);
  EXPECT_NE(v->problems[0].find("office/a.exe"), std::string::npos);
  // Tamper with signed metadata.
  std::string p = dir_ + "/metadata/1.products%2Foffice.json";
  std::string text = *RealFileSystem::Get().ReadFile(p, 1 << 20);
  text.replace(text.find("\"length\":8"), 10, "\"length\":9");
  std::ofstream(p) << text;
  v = VerifyRepository(dir_, clock_);
  EXPECT_GE(v->problems.size(), 2u);
  EXPECT_EQ(LoadCatalogue(dir_).status().code(), ErrorCode::kCorrupt);
}

TEST(Repository, InitRefusesBadInput) {
  char tmpl[] = "/tmp/pgrepoXXXXXX";
  std::string base = mkdtemp(tmpl);
  InitOptions o;
  o.dir = base + "/r";
  EXPECT_EQ(InitRepository(o, {"", false}, SystemClock::Get()).code(), ErrorCode::kInvalidArgument);
  o.root_threshold = 2;
  EXPECT_EQ(InitRepository(o, {"pw", false}, SystemClock::Get()).code(), ErrorCode::kInvalidArgument);
  o.root_threshold = 1;
  ASSERT_TRUE(InitRepository(o, {"pw", false}, SystemClock::Get()).ok());
  EXPECT_EQ(InitRepository(o, {"pw", false}, SystemClock::Get()).code(), ErrorCode::kAlreadyExists);
  PublishOptions p{o.dir, "bad/name", "", false, nullptr};
  EXPECT_EQ(Publish(p, {"/etc/hostname"}, {"pw", false}, SystemClock::Get()).status().code(), ErrorCode::kInvalidArgument);
  p.product = "ok";
  EXPECT_EQ(Publish(p, {base + "/missing"}, {"pw", false}, SystemClock::Get()).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Publish(p, {base}, {"pw", false}, SystemClock::Get()).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace patchgate::tuf
