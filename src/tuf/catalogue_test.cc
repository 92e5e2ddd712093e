// CatalogueLoader: a load after a publish reads only the roles that changed, and a role it
// reuses is exactly as trusted as one read again (its file unchanged on disk, delegated
// with the same keys, threshold and paths).
#include "tuf/catalogue.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/fs.h"
#include "crypto/hash.h"
#include "tuf/metadata.h"
#include "tuf/naming.h"
#include "tuf/repository.h"

namespace patchgate::tuf {
namespace {

constexpr char kPassphrase[] = "test-passphrase";

class CatalogueLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgcatXXXXXX";
    base_ = mkdtemp(tmpl);
    dir_ = base_ + "/repo";
    InitOptions o;
    o.dir = dir_;
    o.bins_threshold = 4;
    o.bin_bits = 2;  // 4 bins
    ASSERT_TRUE(InitRepository(o, access_, clock_).ok());
    std::vector<std::string> files;
    for (int i = 0; i < 8; ++i) files.push_back(File("f" + std::to_string(i) + ".bin", "content " + std::to_string(i)));
    ASSERT_TRUE(Pub(files).ok());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }
  std::string File(const std::string& name, const std::string& content) {
    std::string p = base_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  Result<std::vector<PublishedTarget>> Pub(std::vector<std::string> files) {
    PublishOptions o{dir_, "office", "2.1", false, nullptr};
    return Publish(o, files, access_, clock_);
  }
  std::string Meta(const std::string& name) { return dir_ + "/metadata/" + name; }
  std::string Read(const std::string& path) { return *RealFileSystem::Get().ReadFile(path, 1 << 26); }
  PrivateKey Key(const std::string& role) {
    return std::move(*PrivateKey::Deserialize(Read(dir_ + "/keys/" + QuoteRoleName(role) + ".key.json"), kPassphrase, false));
  }
  Snapshot CurrentSnapshot(int64_t* version) {
    auto ts = Timestamp::FromSigned(Envelope::Parse(Read(Meta("timestamp.json")), kMaxTimestampBytes)->signed_json);
    *version = ts->snapshot.version;
    return *Snapshot::FromSigned(
        Envelope::Parse(Read(Meta(VersionedMetadataName(*version, "snapshot"))), kMaxSnapshotBytes)->signed_json);
  }
  // The signed part of the role file the current snapshot names.
  Json SignedOf(const std::string& role, int64_t* version) {
    int64_t sv = 0;
    *version = CurrentSnapshot(&sv).meta.at(role + ".json").version;
    return Envelope::Parse(Read(Meta(VersionedMetadataName(*version, role))), kMaxTargetsBytes)->signed_json;
  }
  void WriteSigned(const std::string& name, const Json& signed_json, const PrivateKey& key) {
    auto env = Envelope::FromSigned(signed_json);
    ASSERT_TRUE(env->Sign(key).ok());
    ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(Meta(name), *env->Serialize()).ok());
  }
  // A new snapshot listing `role` at `version` (everything else as it is), and a timestamp.
  void Commit(const std::string& role, int64_t version) {
    int64_t sv = 0;
    CurrentSnapshot(&sv);
    Json snap = Envelope::Parse(Read(Meta(VersionedMetadataName(sv, "snapshot"))), kMaxSnapshotBytes)->signed_json;
    snap["meta"][role + ".json"] = {{"version", version}};
    snap["version"] = sv + 1;
    WriteSigned(VersionedMetadataName(sv + 1, "snapshot"), snap, Key("snapshot"));
    std::string snap_bytes = Read(Meta(VersionedMetadataName(sv + 1, "snapshot")));
    Json ts = Envelope::Parse(Read(Meta("timestamp.json")), kMaxTimestampBytes)->signed_json;
    ts["version"] = ts["version"].get<int64_t>() + 1;
    ts["meta"] = {{"snapshot.json", {{"version", sv + 1}, {"length", snap_bytes.size()},
                                     {"hashes", {{"sha256", Sha256Hex(snap_bytes)}}}}}};
    WriteSigned("timestamp.json", ts, Key("timestamp"));
  }
  static std::set<std::string> Paths(const std::vector<CatalogueLoader::RoleEntries>& roles) {
    std::set<std::string> out;
    for (const auto& r : roles)
      for (const auto& e : *r) out.insert(e.path + "=" + e.sha256);
    return out;
  }

  std::string base_, dir_;
  KeyAccess access_{kPassphrase, false};
  FakeClock clock_{1'800'000'000};
};

TEST_F(CatalogueLoaderTest, APublishToOneBinReadsOnlyThatBinAgain) {
  CatalogueLoader loader(dir_);
  auto first = loader.Load();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(loader.roles_read(), 6u);  // targets, product.office, 4 bins
  EXPECT_EQ(loader.roles_reused(), 0u);
  EXPECT_EQ(Paths(*first).size(), 8u);

  ASSERT_TRUE(Pub({File("g.bin", "one more")}).ok());
  auto second = loader.Load();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(loader.roles_read(), 1u);  // the bin g.bin hashes to
  EXPECT_EQ(loader.roles_reused(), 5u);
  // Exactly what a load from scratch finds.
  auto fresh = LoadCatalogue(dir_);
  ASSERT_TRUE(fresh.ok());
  std::set<std::string> want;
  for (const auto& e : *fresh) want.insert(e.path + "=" + e.sha256);
  EXPECT_EQ(Paths(*second), want);
  EXPECT_EQ(want.size(), 9u);

  // Nothing changed: nothing read.
  ASSERT_TRUE(loader.Load().ok());
  EXPECT_EQ(loader.roles_read(), 0u);
}

TEST_F(CatalogueLoaderTest, AReusedRoleWhoseFileChangedOnDiskIsReadAndCheckedAgain) {
  CatalogueLoader loader(dir_);
  ASSERT_TRUE(loader.Load().ok());
  int64_t v = 0;
  std::string bin = ProductBinPrefix("office") + "-0";
  Json signed_json = SignedOf(bin, &v);
  std::string path = Meta(VersionedMetadataName(v, bin));
  std::string bytes = Read(path);

  // The same bytes in a new file: read again (its identity changed), and it still verifies.
  ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(path, bytes).ok());
  ASSERT_TRUE(loader.Load().ok());
  EXPECT_EQ(loader.roles_read(), 1u);

  // Other bytes under the same versioned name (a target's hash changed in place): the
  // signature no longer holds, and the load says so instead of serving the reused role.
  ASSERT_FALSE(signed_json["targets"].empty());
  auto first = signed_json["targets"].begin();
  std::string sha = (*first)["hashes"]["sha256"];
  std::string tampered = bytes;
  size_t at = tampered.find(sha);
  ASSERT_NE(at, std::string::npos);
  tampered[at] = tampered[at] == '0' ? '1' : '0';
  ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(path, tampered).ok());
  auto r = loader.Load();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << r.status().ToString();
}

TEST_F(CatalogueLoaderTest, AnUnchangedBinIsCheckedAgainstItsDelegatorsNewKeys) {
  CatalogueLoader loader(dir_);
  ASSERT_TRUE(loader.Load().ok());
  std::string product = ProductRoleName("office");
  PrivateKey product_key = Key(product);

  // The product role moves to a new version with the same delegation: its 4 bins (still
  // listed at their versions, still signed by the key it names) are reused.
  int64_t v = 0;
  Json p = SignedOf(product, &v);
  p["version"] = v + 1;
  WriteSigned(VersionedMetadataName(v + 1, product), p, product_key);
  Commit(product, v + 1);
  ASSERT_TRUE(loader.Load().ok());
  EXPECT_EQ(loader.roles_read(), 1u);
  EXPECT_EQ(loader.roles_reused(), 5u);

  // Now it delegates its bins to a new key. The bins, unchanged, are signed by the old
  // one: no longer trusted, however unchanged they are.
  PrivateKey fresh = std::move(*PrivateKey::Generate(KeyType::kEd25519));
  p["version"] = v + 2;
  p["delegations"]["keys"][fresh.KeyId()] = fresh.public_key().ToJson();
  p["delegations"]["succinct_roles"]["keyids"] = {fresh.KeyId()};
  WriteSigned(VersionedMetadataName(v + 2, product), p, product_key);
  Commit(product, v + 2);
  auto r = loader.Load();
  ASSERT_FALSE(r.ok()) << "bins signed by the replaced key were reused";
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("bins"), std::string::npos) << r.status().ToString();
  // A loader from scratch agrees.
  EXPECT_FALSE(LoadCatalogue(dir_).ok());
}

}  // namespace
}  // namespace patchgate::tuf
