// The client's defences, one named error kind and one test each, against repositories
// built in the test (our keys and signatures) and served from memory.
#include "client/updater.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "crypto/hash.h"
#include "tuf/repository.h"
#include "core/scratch_dir.h"

namespace patchgate::client {
namespace {

using tuf::Envelope;

constexpr char kMeta[] = "http://repo/metadata";
constexpr char kTargets[] = "http://repo/targets";

PrivateKey NewKey() { return std::move(*PrivateKey::Generate(KeyType::kEd25519)); }

std::string Sign(const Json& signed_json, std::vector<const PrivateKey*> keys) {
  auto env = Envelope::FromSigned(signed_json);
  for (auto* k : keys) EXPECT_TRUE(env->Sign(*k).ok());
  return *env->Serialize();
}

// A repository assembled in memory: roles are signed JSON, published into a MemoryFetcher.
class TestRepo {
 public:
  TestRepo() {
    root = Json{{"_type", "root"}, {"spec_version", "1.0.31"}, {"version", 1}, {"expires", "2035-01-01T00:00:00Z"},
                {"consistent_snapshot", true}, {"keys", Json::object()}, {"roles", Json::object()}};
    SetRoleKeys("root", {&root_key}, 1);
    SetRoleKeys("timestamp", {&ts_key}, 1);
    SetRoleKeys("snapshot", {&snap_key}, 1);
    SetRoleKeys("targets", {&targets_key}, 1);
    roles["targets"] = {Targets(1), {&targets_key}};
  }

  static Json Targets(int64_t version) {
    return Json{{"_type", "targets"}, {"spec_version", "1.0.31"}, {"version", version},
                {"expires", "2035-01-01T00:00:00Z"}, {"targets", Json::object()}};
  }

  void SetRoleKeys(const std::string& role, std::vector<const PrivateKey*> keys, int threshold) {
    std::vector<std::string> ids;
    for (auto* k : keys) {
      root["keys"][k->KeyId()] = k->public_key().ToJson();
      ids.push_back(k->KeyId());
    }
    root["roles"][role] = {{"keyids", ids}, {"threshold", threshold}};
  }

  // Publishes root version `root["version"]` signed by `signers`.
  void PublishRoot(std::vector<const PrivateKey*> signers) {
    root_files[root["version"].get<int64_t>()] = Sign(root, signers);
    fetcher.files[std::string(kMeta) + "/" + std::to_string(root["version"].get<int64_t>()) + ".root.json"] =
        root_files[root["version"].get<int64_t>()];
  }

  void AddTarget(const std::string& role, const std::string& path, const std::string& content) {
    std::string sha = Sha256Hex(content);
    roles[role].first["targets"][path] = {{"length", content.size()}, {"hashes", {{"sha256", sha}}}};
    auto pos = path.find_last_of('/');
    std::string remote = pos == std::string::npos ? sha + "." + path : path.substr(0, pos + 1) + sha + "." + path.substr(pos + 1);
    fetcher.files[std::string(kTargets) + "/" + remote] = content;
  }

  // Signs every role at a new version (only the roles in `changed`, when given), then
  // snapshot and timestamp.
  void Commit(const std::set<std::string>& changed = {}) {
    ++snap_version;
    Json meta = Json::object();
    for (auto& [name, r] : roles) {
      bool bump = committed_ && (changed.empty() || changed.count(name));
      r.first["version"] = r.first["version"].get<int64_t>() + (bump ? 1 : 0);
      std::string bytes = Sign(r.first, r.second);
      int64_t v = r.first["version"];
      fetcher.files[std::string(kMeta) + "/" + std::to_string(v) + "." + tuf::QuoteRoleName(name) + ".json"] = bytes;
      meta[name + ".json"] = {{"version", v}};
      if (snapshot_hashes)
        meta[name + ".json"] = {{"version", v}, {"length", bytes.size()}, {"hashes", {{"sha256", Sha256Hex(bytes)}}}};
    }
    committed_ = true;
    Json snap = {{"_type", "snapshot"}, {"spec_version", "1.0.31"}, {"version", snap_version},
                 {"expires", "2035-01-01T00:00:00Z"}, {"meta", meta}};
    snapshot_bytes = Sign(snap, {&snap_key});
    fetcher.files[std::string(kMeta) + "/" + std::to_string(snap_version) + ".snapshot.json"] = snapshot_bytes;
    ++ts_version;
    timestamp = {{"_type", "timestamp"}, {"spec_version", "1.0.31"}, {"version", ts_version},
                 {"expires", "2035-01-01T00:00:00Z"},
                 {"meta", {{"snapshot.json", {{"version", snap_version}, {"length", snapshot_bytes.size()},
                                               {"hashes", {{"sha256", Sha256Hex(snapshot_bytes)}}}}}}}};
    fetcher.files[std::string(kMeta) + "/timestamp.json"] = Sign(timestamp, {&ts_key});
  }

  void SetTimestamp(const std::string& bytes) { fetcher.files[std::string(kMeta) + "/timestamp.json"] = bytes; }

  PrivateKey root_key = NewKey(), ts_key = NewKey(), snap_key = NewKey(), targets_key = NewKey();
  Json root, timestamp;
  std::map<int64_t, std::string> root_files;
  std::map<std::string, std::pair<Json, std::vector<const PrivateKey*>>> roles;
  std::string snapshot_bytes;
  int64_t snap_version = 0, ts_version = 0;
  bool snapshot_hashes = false;  // list each role's length and sha256 in the snapshot
  MemoryFetcher fetcher;

 private:
  bool committed_ = false;
};

class UpdaterTest : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void SetUp() override {
    char tmpl[] = "/tmp/pgclientXXXXXX";
    dir_ = mkdtemp(tmpl);
    repo_.PublishRoot({&repo_.root_key});
    repo_.AddTarget("targets", "office/setup.exe", "the real bytes");
    repo_.Commit();
    std::string root_file = dir_ + "/trusted-root.json";
    ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(root_file, repo_.root_files[1]).ok());
    ASSERT_TRUE(Updater::InitTrustedRoot(dir_ + "/meta", root_file, &RealFileSystem::Get()).ok());
  }
  Updater Make() {
    return Updater({dir_ + "/meta", kMeta, kTargets, dir_ + "/targets"}, &repo_.fetcher, clock_, &RealFileSystem::Get());
  }
  Status Refresh() { return Make().Refresh(); }
  // targets delegates "products/mail" (terminating, mail/*, key dk), then "fallback" (*/*,
  // key other).
  void DelegateMailAndFallback(const PrivateKey& dk, const PrivateKey& other) {
    repo_.roles["targets"].first["delegations"] = {
        {"keys", {{dk.KeyId(), dk.public_key().ToJson()}, {other.KeyId(), other.public_key().ToJson()}}},
        {"roles", {{{"name", "products/mail"}, {"keyids", {dk.KeyId()}}, {"threshold", 1}, {"terminating", true},
                    {"paths", {"mail/*"}}},
                   {{"name", "fallback"}, {"keyids", {other.KeyId()}}, {"threshold", 1}, {"terminating", false},
                    {"paths", {"*/*"}}}}}};
    repo_.roles["products/mail"] = {TestRepo::Targets(1), {&dk}};
    repo_.roles["fallback"] = {TestRepo::Targets(1), {&other}};
  }
  Status Download(const std::string& name) {
    Updater u = Make();
    auto info = u.GetTargetInfo(name);
    if (!info.ok()) return info.status();
    return u.DownloadTarget(*info).status();
  }

  std::string dir_;
  TestRepo repo_;
  FakeClock clock_{1'900'000'000};  // 2030
};

TEST_F(UpdaterTest, RefreshesDownloadsAndCaches) {
  ASSERT_TRUE(Download("office/setup.exe").ok());
  std::string url = std::string(kTargets) + "/" + Sha256Hex("the real bytes") + ".office/setup.exe";
  EXPECT_EQ(repo_.fetcher.requests[std::string(kTargets) + "/office/" + Sha256Hex("the real bytes") + ".setup.exe"], 1);
  ASSERT_TRUE(Download("office/setup.exe").ok());  // cached: not fetched again
  EXPECT_EQ(repo_.fetcher.requests[std::string(kTargets) + "/office/" + Sha256Hex("the real bytes") + ".setup.exe"], 1);
  EXPECT_EQ(*RealFileSystem::Get().ReadFile(dir_ + "/targets/office%2Fsetup.exe", 100), "the real bytes");
  EXPECT_EQ(Download("office/other.exe").code(), ErrorCode::kNotFound);
}

TEST_F(UpdaterTest, RollbackOfTimestamp) {
  std::string old_ts = repo_.fetcher.files[std::string(kMeta) + "/timestamp.json"];
  repo_.Commit();
  ASSERT_TRUE(Refresh().ok());
  repo_.SetTimestamp(old_ts);
  EXPECT_EQ(Refresh().code(), ErrorCode::kRollback);
}

TEST_F(UpdaterTest, RollbackOfSnapshotVersionInTimestamp) {
  repo_.Commit();
  ASSERT_TRUE(Refresh().ok());
  Json ts = repo_.timestamp;
  ts["version"] = ts["version"].get<int64_t>() + 1;
  ts["meta"]["snapshot.json"]["version"] = 1;
  repo_.SetTimestamp(Sign(ts, {&repo_.ts_key}));
  EXPECT_EQ(Refresh().code(), ErrorCode::kRollback);
}

TEST_F(UpdaterTest, RollbackOfTargetsVersionInSnapshot) {
  repo_.Commit();  // targets v2
  ASSERT_TRUE(Refresh().ok());
  Json snap = {{"_type", "snapshot"}, {"spec_version", "1.0.31"}, {"version", 3}, {"expires", "2035-01-01T00:00:00Z"},
               {"meta", {{"targets.json", {{"version", 1}}}}}};
  std::string bytes = Sign(snap, {&repo_.snap_key});
  repo_.fetcher.files[std::string(kMeta) + "/3.snapshot.json"] = bytes;
  Json ts = repo_.timestamp;
  ts["version"] = 9;
  ts["meta"]["snapshot.json"] = {{"version", 3}, {"length", bytes.size()}, {"hashes", {{"sha256", Sha256Hex(bytes)}}}};
  repo_.SetTimestamp(Sign(ts, {&repo_.ts_key}));
  EXPECT_EQ(Refresh().code(), ErrorCode::kRollback);
}

TEST_F(UpdaterTest, RollbackOfRootVersion) {
  repo_.root["version"] = 2;
  Json bad = repo_.root;
  bad["version"] = 1;  // served as 2.root.json but claims version 1
  repo_.fetcher.files[std::string(kMeta) + "/2.root.json"] = Sign(bad, {&repo_.root_key});
  EXPECT_EQ(Refresh().code(), ErrorCode::kRollback);
}

TEST_F(UpdaterTest, FreezeAttackExpiredTimestamp) {
  clock_.SetUnix(2'100'000'000);  // past every expiry
  EXPECT_EQ(Refresh().code(), ErrorCode::kExpired);
}

TEST_F(UpdaterTest, FreezeAttackStaleTimestampReplayed) {
  Json ts = repo_.timestamp;
  ts["version"] = 50;
  ts["expires"] = "2030-06-01T00:00:00Z";
  repo_.SetTimestamp(Sign(ts, {&repo_.ts_key}));
  ASSERT_TRUE(Refresh().ok());
  clock_.SetUnix(1'900'000'000 + 400 * 86400);  // the attacker keeps serving the same file
  EXPECT_EQ(Refresh().code(), ErrorCode::kExpired);
}

TEST_F(UpdaterTest, FastForwardRecoveryAfterTimestampKeyRotation) {
  // An attacker with the timestamp key pushed the trusted version to 1000.
  Json ts = repo_.timestamp;
  ts["version"] = 1000;
  repo_.SetTimestamp(Sign(ts, {&repo_.ts_key}));
  ASSERT_TRUE(Refresh().ok());
  // The vendor rotates the timestamp key in root v2; the honest timestamp is at a low version.
  PrivateKey fresh = NewKey();
  repo_.root["version"] = 2;
  repo_.root["keys"].erase(repo_.ts_key.KeyId());
  repo_.ts_key = std::move(fresh);
  repo_.SetRoleKeys("timestamp", {&repo_.ts_key}, 1);
  repo_.PublishRoot({&repo_.root_key});
  repo_.Commit();
  EXPECT_TRUE(Refresh().ok());
}

TEST_F(UpdaterTest, MixAndMatchTargetsVersion) {
  // The snapshot lists targets v1, but 1.targets.json now holds a validly signed v2.
  Json t = repo_.roles["targets"].first;
  t["version"] = 2;
  repo_.fetcher.files[std::string(kMeta) + "/1.targets.json"] = Sign(t, {&repo_.targets_key});
  EXPECT_EQ(Refresh().code(), ErrorCode::kMixAndMatch);
}

TEST_F(UpdaterTest, MixAndMatchSnapshotHash) {
  repo_.fetcher.files[std::string(kMeta) + "/1.snapshot.json"] += " ";
  EXPECT_EQ(Refresh().code(), ErrorCode::kLengthMismatch);
  std::string& s = repo_.fetcher.files[std::string(kMeta) + "/1.snapshot.json"];
  s = repo_.snapshot_bytes;
  s[s.size() - 2] = s[s.size() - 2] == '}' ? '}' : s[s.size() - 2];
  std::string swapped = repo_.snapshot_bytes;
  std::swap(swapped[2], swapped[3]);  // same length, different bytes
  s = swapped;
  EXPECT_EQ(Refresh().code(), ErrorCode::kHashMismatch);
}

TEST_F(UpdaterTest, ArbitrarySoftwareHashMismatch) {
  std::string url = std::string(kTargets) + "/office/" + Sha256Hex("the real bytes") + ".setup.exe";
  repo_.fetcher.files[url] = "the evil bytes";  // same length
  EXPECT_EQ(Download("office/setup.exe").code(), ErrorCode::kHashMismatch);
  EXPECT_FALSE(RealFileSystem::Get().Exists(dir_ + "/targets/office%2Fsetup.exe"));
  repo_.fetcher.files[url] = "short";
  EXPECT_EQ(Download("office/setup.exe").code(), ErrorCode::kLengthMismatch);
}

TEST_F(UpdaterTest, EndlessDataStopsAtTheCap) {
  std::string url = std::string(kTargets) + "/office/" + Sha256Hex("the real bytes") + ".setup.exe";
  repo_.fetcher.files[url] = "the real bytes" + std::string(10 << 20, 'A');
  EXPECT_EQ(Download("office/setup.exe").code(), ErrorCode::kLengthMismatch);
  repo_.SetTimestamp(std::string(tuf::kMaxTimestampBytes + 1, ' '));
  EXPECT_EQ(Refresh().code(), ErrorCode::kTooLarge);
}

TEST_F(UpdaterTest, InvalidSignature) {
  Json ts = repo_.timestamp;
  std::string bytes = Sign(ts, {&repo_.ts_key});
  auto pos = bytes.find("\"sig\":\"") + 7;
  bytes[pos] = bytes[pos] == 'a' ? 'b' : 'a';
  repo_.SetTimestamp(bytes);
  EXPECT_EQ(Refresh().code(), ErrorCode::kUnmetThreshold);
  PrivateKey stranger = NewKey();
  repo_.SetTimestamp(Sign(ts, {&stranger}));
  EXPECT_EQ(Refresh().code(), ErrorCode::kUnmetThreshold);
}

TEST_F(UpdaterTest, DuplicateSignaturesDoNotMeetAThresholdOfTwo) {
  PrivateKey second = NewKey();
  repo_.root["version"] = 2;
  repo_.SetRoleKeys("root", {&repo_.root_key, &second}, 2);
  auto env = Envelope::FromSigned(repo_.root);
  ASSERT_TRUE(env->Sign(repo_.root_key).ok());
  env->signatures.push_back(env->signatures[0]);
  repo_.fetcher.files[std::string(kMeta) + "/2.root.json"] = *env->Serialize();
  Status st = Refresh();
  EXPECT_TRUE(st.code() == ErrorCode::kDuplicateSignature || st.code() == ErrorCode::kUnmetThreshold) << st.ToString();
}

// #9.4: the same keyid twice among the signatures is refused, even where one valid
// signature would meet the threshold.
TEST_F(UpdaterTest, RepeatedKeyIdInSignaturesIsRefused) {
  repo_.Commit();
  auto env = Envelope::FromSigned(repo_.timestamp);
  ASSERT_TRUE(env->Sign(repo_.ts_key).ok());
  env->signatures.push_back(env->signatures[0]);
  repo_.SetTimestamp(*env->Serialize());
  Status st = Refresh();
  EXPECT_EQ(st.code(), ErrorCode::kDuplicateSignature) << st.ToString();
  // The same signature twice in a delegated role too.
  repo_.SetTimestamp(Sign(repo_.timestamp, {&repo_.ts_key}));
  ASSERT_TRUE(Refresh().ok());
}

// #9.8: a new root must be signed by the trusted root's threshold, not only its own.
TEST_F(UpdaterTest, NewRootSignedOnlyByItsOwnKeysIsRefused) {
  PrivateKey a = NewKey();
  repo_.root["version"] = 2;
  repo_.root["keys"].erase(repo_.root_key.KeyId());
  repo_.SetRoleKeys("root", {&a}, 1);
  repo_.PublishRoot({&a});  // meets its own threshold (1 of a), not the trusted root's
  Status st = Refresh();
  EXPECT_EQ(st.code(), ErrorCode::kUnmetThreshold) << st.ToString();
  EXPECT_NE(st.message().find("trusted root"), std::string::npos) << st.message();
}

// #9.8: a timestamp whose version is lower than the trusted one is a rollback even when
// it names the current snapshot (so the snapshot check cannot catch it).
TEST_F(UpdaterTest, LowerTimestampVersionNamingTheCurrentSnapshotIsRefused) {
  repo_.Commit();  // timestamp v2 -> snapshot v2
  ASSERT_TRUE(Refresh().ok());
  Json ts = repo_.timestamp;
  ASSERT_EQ(ts["version"], 2);
  ts["version"] = 1;  // same snapshot meta as the trusted v2
  repo_.SetTimestamp(Sign(ts, {&repo_.ts_key}));
  Status st = Refresh();
  EXPECT_EQ(st.code(), ErrorCode::kRollback) << st.ToString();
}

// #9.4: any hash algorithm the metadata lists names the file with consistent snapshots.
TEST_F(UpdaterTest, TargetListingOnlySha512Downloads) {
  auto h = Hasher::Create("sha512");
  ASSERT_TRUE(h.ok());
  std::string content = "sha512 only";
  h->Update(content);
  std::string sha512 = h->FinalHex();
  repo_.roles["targets"].first["targets"]["tools/only512.bin"] = {{"length", content.size()},
                                                                  {"hashes", {{"sha512", sha512}}}};
  std::string url = std::string(kTargets) + "/tools/" + sha512 + ".only512.bin";
  repo_.fetcher.files[url] = content;
  repo_.Commit();
  Status st = Download("tools/only512.bin");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(repo_.fetcher.requests[url], 1);
  EXPECT_EQ(*RealFileSystem::Get().ReadFile(dir_ + "/targets/tools%2Fonly512.bin", 100), content);
  // Every listed supported hash is checked: a wrong sha512 beside a right sha256 fails.
  std::string bad = std::string(128, '0');
  repo_.roles["targets"].first["targets"]["tools/both.bin"] = {
      {"length", content.size()}, {"hashes", {{"sha256", Sha256Hex(content)}, {"sha512", bad}}}};
  repo_.fetcher.files[std::string(kTargets) + "/tools/" + Sha256Hex(content) + ".both.bin"] = content;
  repo_.Commit();
  EXPECT_EQ(Download("tools/both.bin").code(), ErrorCode::kHashMismatch);
  EXPECT_FALSE(RealFileSystem::Get().Exists(dir_ + "/targets/tools%2Fboth.bin"));
}

// #9.4: a role delegated by two parents with different keys is verified against the
// parent through which it is reached, every time (not taken from a cache).
TEST_F(UpdaterTest, RoleDelegatedByTwoParentsIsVerifiedAgainstEach) {
  PrivateKey ka = NewKey(), kb = NewKey(), k1 = NewKey(), k2 = NewKey();
  repo_.roles["targets"].first["delegations"] = {
      {"keys", {{ka.KeyId(), ka.public_key().ToJson()}, {kb.KeyId(), kb.public_key().ToJson()}}},
      {"roles", {{{"name", "A"}, {"keyids", {ka.KeyId()}}, {"threshold", 1}, {"terminating", false}, {"paths", {"*/*"}}},
                 {{"name", "B"}, {"keyids", {kb.KeyId()}}, {"threshold", 1}, {"terminating", false}, {"paths", {"*/*"}}}}}};
  repo_.roles["A"] = {TestRepo::Targets(1), {&ka}};
  repo_.roles["B"] = {TestRepo::Targets(1), {&kb}};
  repo_.roles["A"].first["delegations"] = {
      {"keys", {{k1.KeyId(), k1.public_key().ToJson()}}},
      {"roles", {{{"name", "shared"}, {"keyids", {k1.KeyId()}}, {"threshold", 1}, {"terminating", false},
                  {"paths", {"first/*"}}}}}};
  repo_.roles["B"].first["delegations"] = {
      {"keys", {{k2.KeyId(), k2.public_key().ToJson()}}},
      {"roles", {{{"name", "shared"}, {"keyids", {k2.KeyId()}}, {"threshold", 1}, {"terminating", false},
                  {"paths", {"*/*"}}}}}};
  repo_.roles["shared"] = {TestRepo::Targets(1), {&k1}};  // signed with A's delegation key only
  repo_.AddTarget("shared", "first/ok.bin", "ok");
  repo_.AddTarget("shared", "second/evil.bin", "evil");   // B never authorised k1
  repo_.Commit();
  Updater u = Make();
  auto ok = u.GetTargetInfo("first/ok.bin");  // targets -> A -> shared (k1): fine
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->role, "shared");
  // targets -> A (no match for second/*) -> B -> shared must satisfy B's k2: it does not.
  auto evil = u.GetTargetInfo("second/evil.bin");
  ASSERT_FALSE(evil.ok()) << "trusted a target through a delegation that never authorised its signer";
  EXPECT_EQ(evil.status().code(), ErrorCode::kUnmetThreshold);
  // A fresh updater (local copy of "shared" on disk) gives the same answers.
  Updater fresh = Make();
  EXPECT_EQ(fresh.GetTargetInfo("second/evil.bin").status().code(), ErrorCode::kUnmetThreshold);
  EXPECT_TRUE(fresh.GetTargetInfo("first/ok.bin").ok());
}

// #12: a large canonical targets role is read without a DOM (signature over the exact
// bytes, one target looked up in the text); tampering is still caught.
TEST_F(UpdaterTest, LargeFlatTargetsRoleIsVerifiedAndSearchedWithoutADom) {
  Json& t = repo_.roles["targets"].first["targets"];
  for (int i = 0; i < 4000; ++i)
    t["bulk/file-" + std::to_string(i) + ".bin"] = {{"length", 1}, {"hashes", {{"sha256", std::string(64, 'a')}}}};
  repo_.AddTarget("targets", "bulk/zz-real.bin", "real bulk bytes");
  repo_.Commit();
  std::string url = std::string(kMeta) + "/2.targets.json";
  ASSERT_GT(repo_.fetcher.files[url].size(), 256u * 1024);
  ASSERT_TRUE(Download("bulk/zz-real.bin").ok());
  ASSERT_TRUE(Download("office/setup.exe").ok());
  EXPECT_EQ(Download("bulk/absent.bin").code(), ErrorCode::kNotFound);
  {
    Updater u = Make();
    auto info = u.GetTargetInfo("bulk/file-1234.bin");
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->file.length, 1u);
  }
  // One byte changed inside a target entry of the signed bytes: the signature fails.
  repo_.Commit();
  std::string& bytes = repo_.fetcher.files[std::string(kMeta) + "/3.targets.json"];
  auto pos = bytes.find("file-2000.bin\":{\"hashes\":{\"sha256\":\"a");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 36] = 'b';
  // (the snapshot lists no hash for targets.json: only the signature can catch it)
  std::filesystem::remove_all(dir_ + "/meta/targets.json");
  EXPECT_EQ(Refresh().code(), ErrorCode::kUnmetThreshold);
}

// #12: a large role is hashed on another thread while it is read and verified; a role whose
// bytes differ from the snapshot's hash is refused for that (not only for its signature),
// with nothing kept.
TEST_F(UpdaterTest, LargeRoleNotMatchingTheSnapshotHashIsRefusedAsAHashMismatch) {
  repo_.snapshot_hashes = true;
  Json& t = repo_.roles["targets"].first["targets"];
  for (int i = 0; i < 4000; ++i)
    t["bulk/file-" + std::to_string(i) + ".bin"] = {{"length", 1}, {"hashes", {{"sha256", std::string(64, 'a')}}}};
  repo_.Commit();
  std::string& bytes = repo_.fetcher.files[std::string(kMeta) + "/2.targets.json"];
  ASSERT_GT(bytes.size(), 256u * 1024);
  std::string good = bytes;
  auto pos = bytes.find("file-2000.bin\":{\"hashes\":{\"sha256\":\"a");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 36] = 'b';  // same length
  Updater u({dir_ + "/meta", kMeta, kTargets, dir_ + "/targets", true}, &repo_.fetcher, clock_, &RealFileSystem::Get());
  EXPECT_EQ(u.Refresh().code(), ErrorCode::kHashMismatch);
  EXPECT_TRUE(u.FlushMetadataWrites().ok());
  EXPECT_FALSE(RealFileSystem::Get().Exists(dir_ + "/meta/targets.json"));
  bytes = good;
  ASSERT_TRUE(u.Refresh().ok());
  ASSERT_TRUE(u.GetTargetInfo("bulk/file-7.bin").ok());
}

// A large role's signature is checked on a second thread over the bytes the envelope's
// shape points to (all that follows `,"signed":`), while the text is scanned: that check
// counts only when the scan finds the same signed bytes. Here a member after "signed"
// makes them differ: a signature over the guessed bytes must not pass for the role, and a
// signature over the real "signed" object must.
TEST_F(UpdaterTest, LargeRoleSignatureCountsOnlyOverTheSignedObjectTheScanFinds) {
  Json& t = repo_.roles["targets"].first["targets"];
  for (int i = 0; i < 4000; ++i)
    t["bulk/file-" + std::to_string(i) + ".bin"] = {{"length", 1}, {"hashes", {{"sha256", std::string(64, 'a')}}}};
  repo_.Commit();
  std::string& bytes = repo_.fetcher.files[std::string(kMeta) + "/2.targets.json"];
  ASSERT_GT(bytes.size(), 256u * 1024);
  const std::string head = "{\"signatures\":", mark = ",\"signed\":";
  size_t at = bytes.find(mark);
  ASSERT_NE(at, std::string::npos);
  std::string signed_object = bytes.substr(at + mark.size(), bytes.size() - 1 - at - mark.size());
  auto with = [&](std::string_view signed_over) {
    auto sig = repo_.targets_key.SignHex(signed_over);
    EXPECT_TRUE(sig.ok());
    return head + "[{\"keyid\":\"" + repo_.targets_key.KeyId() + "\",\"sig\":\"" + *sig + "\"}]" + mark +
           signed_object + ",\"zz\":{}}";
  };
  // Signed over what a guess would take (the object and the member after it): refused.
  std::string guessed = signed_object + ",\"zz\":{}";
  bytes = with(guessed);
  {
    Updater u({dir_ + "/meta", kMeta, kTargets, dir_ + "/targets"}, &repo_.fetcher, clock_, &RealFileSystem::Get());
    Status st = u.Refresh();
    EXPECT_FALSE(st.ok());
    EXPECT_TRUE(st.code() == ErrorCode::kUnmetThreshold || st.code() == ErrorCode::kBadSignature) << st.ToString();
  }
  // Signed over the "signed" object itself: accepted (the check is made again over it).
  bytes = with(signed_object);
  Updater u({dir_ + "/meta", kMeta, kTargets, dir_ + "/targets"}, &repo_.fetcher, clock_, &RealFileSystem::Get());
  ASSERT_TRUE(u.Refresh().ok());
  EXPECT_TRUE(u.GetTargetInfo("bulk/file-7.bin").ok());
}

// The command-line client's mode: verified metadata written as one batch, in place after
// FlushMetadataWrites() (and made durable while the target downloads), then reused.
TEST_F(UpdaterTest, BatchedMetadataWritesLandOnFlushAndAreReusedNextTime) {
  UpdaterOptions o{dir_ + "/meta", kMeta, kTargets, dir_ + "/targets", true};
  {
    Updater u(o, &repo_.fetcher, clock_, &RealFileSystem::Get());
    ASSERT_TRUE(u.Refresh().ok());
    EXPECT_FALSE(RealFileSystem::Get().Exists(dir_ + "/meta/snapshot.json"));  // not in place yet
    auto info = u.GetTargetInfo("office/setup.exe");
    ASSERT_TRUE(info.ok());
    ASSERT_TRUE(u.DownloadTarget(*info).ok());
    ASSERT_TRUE(u.FlushMetadataWrites().ok());
    for (const char* f : {"timestamp.json", "snapshot.json", "targets.json"})
      EXPECT_TRUE(RealFileSystem::Get().Exists(dir_ + "/meta/" + f)) << f;
    auto names = RealFileSystem::Get().ListDir(dir_ + "/meta");
    for (const auto& n : *names) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
  }
  int before = repo_.fetcher.requests[std::string(kMeta) + "/1.targets.json"];
  Updater again(o, &repo_.fetcher, clock_, &RealFileSystem::Get());
  ASSERT_TRUE(again.GetTargetInfo("office/setup.exe").ok());
  EXPECT_EQ(repo_.fetcher.requests[std::string(kMeta) + "/1.targets.json"], before);  // the local copy was used
}

// #9.6: a 403 says "not entitled", a 401 "token refused".
TEST(HttpStatus, NamesForbiddenAndUnauthorized) {
  Status f = HttpStatusToStatus(403, "http://h/targets/x");
  EXPECT_EQ(f.code(), ErrorCode::kForbidden);
  EXPECT_NE(f.message().find("not entitled"), std::string::npos);
  Status u = HttpStatusToStatus(401, "http://h/targets/x");
  EXPECT_EQ(u.code(), ErrorCode::kUnauthorized);
  EXPECT_NE(u.message().find("token refused"), std::string::npos);
  EXPECT_EQ(HttpStatusToStatus(404, "u").code(), ErrorCode::kNotFound);
  EXPECT_TRUE(HttpStatusToStatus(200, "u").ok());
  EXPECT_EQ(HttpStatusToStatus(500, "u").code(), ErrorCode::kNetwork);
}

TEST_F(UpdaterTest, RootRotationWithChangedThreshold) {
  PrivateKey a = NewKey(), b = NewKey(), c = NewKey();
  repo_.root["version"] = 2;
  repo_.root["keys"].erase(repo_.root_key.KeyId());
  repo_.SetRoleKeys("root", {&a, &b, &c}, 2);
  // Needs the old threshold (1 of the old key) and the new one (2 of a, b, c).
  repo_.PublishRoot({&repo_.root_key, &a});
  EXPECT_EQ(Refresh().code(), ErrorCode::kUnmetThreshold);
  repo_.PublishRoot({&repo_.root_key, &a, &c});
  ASSERT_TRUE(Refresh().ok());
  // v3 signed only by the old root key is refused.
  repo_.root["version"] = 3;
  repo_.PublishRoot({&repo_.root_key});
  EXPECT_EQ(Refresh().code(), ErrorCode::kUnmetThreshold);
}

TEST_F(UpdaterTest, MalformedJson) {
  repo_.SetTimestamp("{\"signatures\": [");
  EXPECT_EQ(Refresh().code(), ErrorCode::kCorrupt);
}

TEST_F(UpdaterTest, NonCanonicalSignedBytesAreRefused) {
  // A signature over a pretty-printed (non-canonical) encoding does not verify.
  Json ts = repo_.timestamp;
  ts["version"] = 7;
  std::string pretty = ts.dump(2);
  Json envelope = {{"signed", ts},
                   {"signatures", {{{"keyid", repo_.ts_key.KeyId()}, {"sig", *repo_.ts_key.SignHex(pretty)}}}}};
  repo_.SetTimestamp(envelope.dump());
  EXPECT_EQ(Refresh().code(), ErrorCode::kUnmetThreshold);
}

TEST_F(UpdaterTest, WrongSpecVersion) {
  Json ts = repo_.timestamp;
  ts["spec_version"] = "2.0.0";
  repo_.SetTimestamp(Sign(ts, {&repo_.ts_key}));
  EXPECT_EQ(Refresh().code(), ErrorCode::kBadSpecVersion);
}

TEST_F(UpdaterTest, DelegationLoop) {
  PrivateKey dk = NewKey();
  auto delegate = [&](Json& role, const std::string& to) {
    role["delegations"] = {{"keys", {{dk.KeyId(), dk.public_key().ToJson()}}},
                           {"roles", {{{"name", to}, {"keyids", {dk.KeyId()}}, {"threshold", 1},
                                       {"terminating", false}, {"paths", {"loop/*"}}}}}};
  };
  delegate(repo_.roles["targets"].first, "a");
  repo_.roles["a"] = {TestRepo::Targets(1), {&dk}};
  repo_.roles["b"] = {TestRepo::Targets(1), {&dk}};
  delegate(repo_.roles["a"].first, "b");
  delegate(repo_.roles["b"].first, "a");
  repo_.Commit();
  EXPECT_EQ(Download("loop/x").code(), ErrorCode::kDelegationLoop);
}

TEST_F(UpdaterTest, ExcessiveDelegationDepth) {
  PrivateKey dk = NewKey();
  std::string prev = "targets";
  for (int i = 0; i < 40; ++i) {
    std::string name = "d" + std::to_string(i);
    repo_.roles[prev].first["delegations"] = {
        {"keys", {{dk.KeyId(), dk.public_key().ToJson()}}},
        {"roles", {{{"name", name}, {"keyids", {dk.KeyId()}}, {"threshold", 1}, {"terminating", false},
                    {"paths", {"deep/*"}}}}}};
    repo_.roles[name] = {TestRepo::Targets(1), {&dk}};
    prev = name;
  }
  repo_.Commit();
  EXPECT_EQ(Download("deep/x").code(), ErrorCode::kDelegationDepth);
}

TEST_F(UpdaterTest, DelegatedTargetsAndTerminatingRoles) {
  PrivateKey dk = NewKey(), other = NewKey();
  DelegateMailAndFallback(dk, other);
  repo_.AddTarget("products/mail", "mail/patch.bin", "mail patch");
  repo_.AddTarget("fallback", "mail/evil.bin", "evil");  // shadowed: products/mail is terminating
  repo_.AddTarget("fallback", "other/tool.bin", "tool");
  repo_.Commit();
  EXPECT_TRUE(Download("mail/patch.bin").ok());
  EXPECT_EQ(Download("mail/evil.bin").code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Download("other/tool.bin").ok());
  EXPECT_TRUE(RealFileSystem::Get().Exists(dir_ + "/meta/products%2Fmail.json"));
}

// The walk (what a mirror fetches) hands over exactly what GetTargetInfo would find: not a
// target a role lists outside the paths it is delegated, nor one a terminating delegation
// earlier in the walk already answers for.
TEST_F(UpdaterTest, VisitAllTargetsTrustsARoleOnlyForItsDelegatedPaths) {
  PrivateKey dk = NewKey(), other = NewKey();
  DelegateMailAndFallback(dk, other);
  repo_.AddTarget("products/mail", "mail/patch.bin", "mail patch");
  repo_.AddTarget("products/mail", "office/outside.bin", "outside mail/*");
  repo_.AddTarget("fallback", "mail/evil.bin", "evil");  // products/mail is terminating for mail/*
  repo_.AddTarget("fallback", "other/tool.bin", "tool");
  repo_.AddTarget("fallback", "toplevel.bin", "not */*");
  repo_.Commit();
  for (int parallel : {1, 4}) {
    SCOPED_TRACE(parallel);
    UpdaterOptions o{dir_ + "/meta-paths-" + std::to_string(parallel), kMeta, kTargets, dir_ + "/targets"};
    o.parallel_roles = parallel;
    ASSERT_TRUE(Updater::InitTrustedRoot(o.metadata_dir, dir_ + "/trusted-root.json", &RealFileSystem::Get()).ok());
    Updater u(o, &repo_.fetcher, clock_, &RealFileSystem::Get());
    std::vector<std::pair<std::string, std::string>> seen;  // role, path
    ASSERT_TRUE(u.VisitAllTargets([&](std::vector<TargetInfo> batch) {
                   for (auto& t : batch) seen.emplace_back(t.role, t.path);
                   return Status::OK();
                 }).ok());
    std::vector<std::pair<std::string, std::string>> want{
        {"targets", "office/setup.exe"}, {"products/mail", "mail/patch.bin"}, {"fallback", "other/tool.bin"}};
    EXPECT_EQ(seen, want);
    // What the walk leaves out, a client's lookup does not find either.
    for (const char* path : {"office/outside.bin", "mail/evil.bin", "toplevel.bin"})
      EXPECT_EQ(u.GetTargetInfo(path).status().code(), ErrorCode::kNotFound) << path;
  }
}

TEST_F(UpdaterTest, DelegatedRoleSignedByTheWrongKey) {
  PrivateKey dk = NewKey(), wrong = NewKey();
  repo_.roles["targets"].first["delegations"] = {
      {"keys", {{dk.KeyId(), dk.public_key().ToJson()}}},
      {"roles", {{{"name", "p"}, {"keyids", {dk.KeyId()}}, {"threshold", 1}, {"terminating", true}, {"paths", {"p/*"}}}}}};
  repo_.roles["p"] = {TestRepo::Targets(1), {&wrong}};
  repo_.AddTarget("p", "p/x", "x");
  repo_.Commit();
  EXPECT_EQ(Download("p/x").code(), ErrorCode::kUnmetThreshold);
}

// The mirror's streaming walk: each role's targets are handed over once that role has
// verified, in walk order, before later roles are even fetched; a role that does not
// verify ends the walk with its error and none of its targets is handed over; a visitor's
// error stops the walk.
TEST_F(UpdaterTest, VisitAllTargetsHandsOverEachVerifiedRoleInWalkOrder) {
  PrivateKey dk = NewKey(), wrong = NewKey();
  repo_.roles["targets"].first["delegations"] = {
      {"keys", {{dk.KeyId(), dk.public_key().ToJson()}}},
      {"roles", {{{"name", "a"}, {"keyids", {dk.KeyId()}}, {"threshold", 1}, {"terminating", false}, {"paths", {"*"}}},
                 {{"name", "b"}, {"keyids", {dk.KeyId()}}, {"threshold", 1}, {"terminating", false}, {"paths", {"*"}}}}}};
  repo_.roles["a"] = {TestRepo::Targets(1), {&dk}};
  repo_.roles["b"] = {TestRepo::Targets(1), {&dk}};
  repo_.AddTarget("a", "a1", "first");
  repo_.AddTarget("a", "office/setup.exe", "shadowed: targets signs it first");
  repo_.AddTarget("b", "b1", "second");
  repo_.Commit();
  std::vector<std::pair<std::string, std::string>> seen;  // role, path
  auto record = [&](std::vector<TargetInfo> batch) {
    for (auto& t : batch) seen.emplace_back(t.role, t.path);
    return Status::OK();
  };
  {
    Updater u = Make();
    ASSERT_TRUE(u.VisitAllTargets(record).ok());
    std::vector<std::pair<std::string, std::string>> want{{"targets", "office/setup.exe"}, {"a", "a1"}, {"b", "b1"}};
    EXPECT_EQ(seen, want);
    // ListAllTargets is the same walk.
    auto all = u.ListAllTargets();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 3u);
    EXPECT_EQ((*all)[2].path, "b1");
  }
  // A visitor's error stops the walk before b is fetched.
  int b_fetches = repo_.fetcher.requests[std::string(kMeta) + "/1.b.json"];
  {
    Updater u = Make();
    Status st = u.VisitAllTargets([](std::vector<TargetInfo> batch) {
      return batch.front().role == "a" ? Status(ErrorCode::kInternal, "enough") : Status::OK();
    });
    EXPECT_EQ(st.code(), ErrorCode::kInternal);
    EXPECT_EQ(repo_.fetcher.requests[std::string(kMeta) + "/1.b.json"], b_fetches);
  }
  // b signed by a key it is not delegated to: a's targets were handed over, b's never are.
  repo_.roles["b"].second = {&wrong};
  repo_.AddTarget("b", "b2", "evil");
  repo_.Commit();
  seen.clear();
  Updater u = Make();
  EXPECT_EQ(u.VisitAllTargets(record).code(), ErrorCode::kUnmetThreshold);
  for (const auto& [role, path] : seen) EXPECT_NE(role, "b") << path;
  EXPECT_FALSE(seen.empty());
}

// #10: a large (lazily read) role's entries are read slice by slice, with the checks of the
// DOM parse: every entry of the walk is what tuf::ParseTargetFile makes of the signed JSON,
// custom included unless the owner (a mirror) asks for none; a path with an escape is
// read right; a signed entry that is malformed stops the walk either way.
TEST_F(UpdaterTest, VisitAllTargetsReadsALargeRoleEntryByEntryAsTheDomWould) {
  Json& t = repo_.roles["targets"].first["targets"];
  for (int i = 0; i < 300; ++i)
    t["bulk/file-" + std::to_string(i) + ".bin"] = {
        {"length", 1000 + i},
        {"hashes", {{"sha256", std::string(64, 'a')}, {"sha512", std::string(128, 'b')}}},
        {"custom", {{"product", "bulk"}, {"scan", {{"verdict", "clean"}, {"n", i}}}}}};
  t["bulk/quote\"d \\ name.bin"] = {{"length", 7}, {"hashes", {{"sha256", std::string(64, 'c')}}}};
  t["bulk/unknown-field.bin"] = {{"length", 8}, {"hashes", {{"sha256", std::string(64, 'd')}}}, {"zzz", {1, 2}}};
  repo_.Commit();
  ASSERT_GT(repo_.fetcher.files[std::string(kMeta) + "/2.targets.json"].size(), 8u * 1024);  // read lazily (Updater::kLazyRoleBytes)
  auto walk = [&](bool custom) -> Result<std::map<std::string, TargetInfo>> {
    UpdaterOptions o{dir_ + "/meta", kMeta, kTargets, dir_ + "/targets"};
    o.targets_custom = custom;
    Updater u(o, &repo_.fetcher, clock_, &RealFileSystem::Get());
    std::map<std::string, TargetInfo> got;
    Status st = u.VisitAllTargets([&](std::vector<TargetInfo> batch) {
      for (auto& info : batch) got.emplace(info.path, std::move(info));
      return Status::OK();
    });
    if (!st.ok()) return st;
    return got;
  };
  for (bool custom : {true, false}) {
    auto got = walk(custom);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), t.size());
    for (auto it = t.begin(); it != t.end(); ++it) {
      auto want = tuf::ParseTargetFile(it.value());
      ASSERT_TRUE(want.ok());
      auto g = got->find(it.key());
      ASSERT_NE(g, got->end()) << it.key();
      EXPECT_EQ(g->second.file.length, want->length) << it.key();
      EXPECT_EQ(g->second.file.hashes, want->hashes) << it.key();
      EXPECT_EQ(g->second.file.custom, custom ? want->custom : Json()) << it.key();
    }
  }
  // Signed, canonical, but not a valid entry: refused by the walk with or without custom.
  for (Json bad : {Json{{"length", -1}, {"hashes", {{"sha256", std::string(64, 'a')}}}},
                   Json{{"length", 1}}, Json{{"length", 1}, {"hashes", "x"}}, Json("not an object")}) {
    t["bulk/bad.bin"] = bad;
    repo_.Commit();
    for (bool custom : {true, false}) EXPECT_EQ(walk(custom).status().code(), ErrorCode::kCorrupt) << bad.dump();
  }
}

// parallel_roles > 1: the roles after the current one are checked on other threads, and
// the walk hands over the same targets in the same order; a role that does not verify
// (wrong signer, or a version other than the snapshot's) stops the walk there, and none
// of its targets, nor any of a later role's, is handed over.
TEST_F(UpdaterTest, VisitAllTargetsWithParallelRolesKeepsOrderAndEveryCheck) {
  PrivateKey dk = NewKey(), wrong = NewKey();
  Json delegated = Json::array();
  for (int i = 0; i < 12; ++i) {
    std::string name = "r" + std::to_string(i);
    delegated.push_back({{"name", name}, {"keyids", {dk.KeyId()}}, {"threshold", 1}, {"terminating", false},
                         {"paths", {name + "/*"}}});
    repo_.roles[name] = {TestRepo::Targets(1), {&dk}};
    repo_.AddTarget(name, name + "/a.bin", name + " a");
    repo_.AddTarget(name, name + "/b.bin", name + " b");
  }
  repo_.roles["targets"].first["delegations"] = {{"keys", {{dk.KeyId(), dk.public_key().ToJson()}}},
                                                 {"roles", delegated}};
  repo_.Commit();
  auto make = [&](int parallel, int fresh_dir = 0) {
    UpdaterOptions o{dir_ + "/meta-" + std::to_string(parallel) + "-" + std::to_string(fresh_dir), kMeta, kTargets,
                     dir_ + "/targets"};
    o.parallel_roles = parallel;
    EXPECT_TRUE(Updater::InitTrustedRoot(o.metadata_dir, dir_ + "/trusted-root.json", &RealFileSystem::Get()).ok());
    return std::make_unique<Updater>(o, &repo_.fetcher, clock_, &RealFileSystem::Get());
  };
  auto walk = [&](Updater& u, std::vector<std::pair<std::string, std::string>>* seen) {
    return u.VisitAllTargets([seen](std::vector<TargetInfo> batch) {
      for (auto& t : batch) seen->emplace_back(t.role, t.path);
      return Status::OK();
    });
  };
  std::vector<std::pair<std::string, std::string>> one, four;
  ASSERT_TRUE(walk(*make(1), &one).ok());
  ASSERT_TRUE(walk(*make(4), &four).ok());
  EXPECT_EQ(one.size(), 1u + 2 * 12);
  EXPECT_EQ(four, one);
  // The trusted copies the parallel walk stored are the verified bytes (a fresh parallel
  // walk reuses them and agrees).
  four.clear();
  ASSERT_TRUE(walk(*make(4), &four).ok());
  EXPECT_EQ(four, one);

  // The roles checked ahead are a bounded window: a walk stopped by its visitor at r1
  // never fetched r11.
  {
    auto u = make(4, 1);
    std::string r11 = std::string(kMeta) + "/" + std::to_string(repo_.roles["r11"].first["version"].get<int64_t>()) + ".r11.json";
    int before = repo_.fetcher.requests[r11];
    Status st = u->VisitAllTargets([](std::vector<TargetInfo> batch) {
      return batch.front().role == "r1" ? Status(ErrorCode::kInternal, "enough") : Status::OK();
    });
    EXPECT_EQ(st.code(), ErrorCode::kInternal);
    u.reset();  // joins the threads checking ahead
    EXPECT_EQ(repo_.fetcher.requests[r11], before);
  }
  auto later_than = [](const std::vector<std::pair<std::string, std::string>>& seen, int bad) {
    for (const auto& [role, path] : seen)
      if (role != "targets" && std::stoi(role.substr(1)) >= bad) return role;
    return std::string();
  };
  // r7 signed by a key it is not delegated to.
  repo_.roles["r7"].second = {&wrong};
  repo_.Commit();
  for (int parallel : {1, 4}) {
    std::vector<std::pair<std::string, std::string>> seen;
    auto u = make(parallel, 2);
    EXPECT_EQ(walk(*u, &seen).code(), ErrorCode::kUnmetThreshold) << parallel;
    EXPECT_EQ(later_than(seen, 7), "") << "a target of a role at or after the bad one was handed over";
    EXPECT_EQ(seen.size(), 1u + 2 * 7) << parallel;
  }
  // r5 served at a version other than the snapshot lists (mix and match).
  repo_.roles["r7"].second = {&dk};
  repo_.Commit();
  std::string r5 = repo_.fetcher.files[std::string(kMeta) + "/" + std::to_string(repo_.roles["r5"].first["version"].get<int64_t>()) + ".r5.json"];
  repo_.fetcher.files[std::string(kMeta) + "/" + std::to_string(repo_.roles["r5"].first["version"].get<int64_t>()) + ".r5.json"] =
      repo_.fetcher.files[std::string(kMeta) + "/" + std::to_string(repo_.roles["r5"].first["version"].get<int64_t>() - 1) + ".r5.json"];
  for (int parallel : {1, 4}) {
    std::vector<std::pair<std::string, std::string>> seen;
    auto u = make(parallel, 3);
    EXPECT_EQ(walk(*u, &seen).code(), ErrorCode::kMixAndMatch) << parallel;
    EXPECT_EQ(later_than(seen, 5), "");
  }
}

// A mirror's next walk (WalkMemory from the last one): after a publish to one hash bin,
// only that bin is fetched, verified and handed over; the other bins and targets are
// reused, and the result is what a walk from scratch finds.
class WalkMemoryTest : public UpdaterTest {
 protected:
  // targets delegates 4 succinct hash bins ("bins-0".."bins-3", key bin_key_) holding 16 targets.
  void SetUpBins() {
    bins_.keys = {{bin_key_.KeyId()}, 1};
    bins_.bit_length = 2;
    bins_.name_prefix = "bins";
    repo_.roles["targets"].first["delegations"] = {
        {"keys", {{bin_key_.KeyId(), bin_key_.public_key().ToJson()}}},
        {"succinct_roles",
         {{"keyids", {bin_key_.KeyId()}}, {"threshold", 1}, {"bit_length", 2}, {"name_prefix", "bins"}}}};
    for (int i = 0; i < 4; ++i) repo_.roles[bins_.BinName(i)] = {TestRepo::Targets(1), {&bin_key_}};
    for (int i = 0; i < 16; ++i) Add("f/" + std::to_string(i) + ".bin");
    repo_.Commit();
  }
  void Add(const std::string& path) { repo_.AddTarget(bins_.BinFor(path), path, "bytes of " + path); }
  int BinFetches() {
    int n = 0;
    for (const auto& [url, count] : repo_.fetcher.requests)
      if (url.find(".bins-") != std::string::npos) n += count;
    return n;
  }
  static std::set<std::string> Walk(Updater& u, const WalkMemory* memory, WalkStats* stats, Status* st) {
    std::set<std::string> paths;
    *st = u.VisitAllTargets(
        [&](std::vector<TargetInfo> batch) {
          for (const auto& t : batch) paths.insert(t.role + ":" + t.path);
          return Status::OK();
        },
        memory, stats);
    return paths;
  }
  PrivateKey bin_key_ = NewKey();
  tuf::SuccinctRoles bins_;
};

TEST_F(WalkMemoryTest, AfterAPublishToOneBinOnlyThatBinIsFetchedVerifiedAndHandedOver) {
  SetUpBins();
  std::unique_ptr<WalkMemory> memory;
  {
    Updater u = Make();
    WalkStats ws;
    Status st;
    auto all = Walk(u, nullptr, &ws, &st);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(all.size(), 17u);  // office/setup.exe in targets, 16 in the bins
    EXPECT_EQ(ws.roles_checked, 4u);
    EXPECT_FALSE(ws.incremental);
    memory = u.RememberWalk();
    ASSERT_TRUE(memory);
  }
  std::string path = "g/new.bin", bin = bins_.BinFor(path);
  Add(path);
  repo_.Commit({bin});
  int fetches = BinFetches();
  Updater u = Make();
  WalkStats ws;
  Status st;
  auto handed = Walk(u, memory.get(), &ws, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(ws.incremental);
  EXPECT_EQ(ws.roles_checked, 1u);
  EXPECT_EQ(ws.roles_reused, 4u);  // targets and the 3 other bins
  EXPECT_EQ(ws.changed_roles, std::vector<std::string>{bin});
  EXPECT_EQ(BinFetches() - fetches, 1);  // that bin's new version, nothing else
  // What was handed over: all of that bin's targets (the new one among them), and only those.
  ASSERT_TRUE(handed.count(bin + ":" + path));
  for (const auto& h : handed) EXPECT_EQ(h.substr(0, bin.size() + 1), bin + ":") << h;
  // A walk from scratch lists exactly the remembered targets with that bin's replaced.
  Updater fresh = Make();
  WalkStats fs;
  auto everything = Walk(fresh, nullptr, &fs, &st);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(everything.size(), 18u);
  for (const auto& h : handed) EXPECT_TRUE(everything.count(h)) << h;
  // The memory of the incremental walk serves the next one: nothing changed, nothing fetched.
  auto again = u.RememberWalk();
  ASSERT_TRUE(again);
  repo_.Commit({"none"});  // a new snapshot and timestamp, every role unchanged
  fetches = BinFetches();
  Updater third = Make();
  auto none = Walk(third, again.get(), &ws, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(ws.incremental);
  EXPECT_EQ(ws.roles_checked, 0u);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(BinFetches(), fetches);
}

// targets now delegates its bins to a new key; the bins did not change and are still signed
// by the old key. Remembered as verified, they are no longer trusted: the walk refuses them.
TEST_F(WalkMemoryTest, AnUnchangedBinSignedByTheKeyItsDelegatorReplacedIsRefused) {
  SetUpBins();
  std::unique_ptr<WalkMemory> memory;
  {
    Updater u = Make();
    Status st;
    WalkStats ws;
    Walk(u, nullptr, &ws, &st);
    ASSERT_TRUE(st.ok()) << st.ToString();
    memory = u.RememberWalk();
  }
  PrivateKey replacement = NewKey();
  auto& d = repo_.roles["targets"].first["delegations"];
  d["keys"] = {{replacement.KeyId(), replacement.public_key().ToJson()}};
  d["succinct_roles"]["keyids"] = {replacement.KeyId()};
  repo_.Commit({"targets"});
  Updater u = Make();
  WalkStats ws;
  Status st;
  auto handed = Walk(u, memory.get(), &ws, &st);
  EXPECT_EQ(st.code(), ErrorCode::kUnmetThreshold) << st.ToString();
  for (const auto& h : handed) EXPECT_EQ(h.rfind("bins-", 0), std::string::npos) << h;
  // Re-signed by the new key, the same bins are accepted again.
  for (int i = 0; i < 4; ++i) repo_.roles[bins_.BinName(i)].second = {&replacement};
  repo_.Commit({bins_.BinName(0), bins_.BinName(1), bins_.BinName(2), bins_.BinName(3)});
  Updater v = Make();
  auto all = Walk(v, memory.get(), &ws, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(all.size(), 17u);
}

// A remembered role stands for a fresh check only while its trusted copy on disk is the
// file the remembered walk left: a copy replaced on disk (here with other bytes) is read
// and verified again, found wrong, fetched again and rewritten, even though the new
// snapshot lists the role unchanged.
TEST_F(WalkMemoryTest, AReusedRoleWhoseTrustedCopyChangedOnDiskIsVerifiedAgain) {
  SetUpBins();
  std::unique_ptr<WalkMemory> memory;
  {
    Updater u = Make();
    Status st;
    WalkStats ws;
    Walk(u, nullptr, &ws, &st);
    ASSERT_TRUE(st.ok()) << st.ToString();
    memory = u.RememberWalk();
  }
  const std::string bin = bins_.BinName(0);
  const std::string copy = dir_ + "/meta/" + tuf::MetadataName(bin);
  auto good = RealFileSystem::Get().ReadFile(copy, 1 << 20);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  std::string changed = *good;
  changed[changed.find("\"version\"")] = ' ';  // no longer the verified bytes
  ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(copy, changed).ok());
  repo_.Commit({"none"});  // a new snapshot and timestamp, every role listed unchanged
  int fetches = BinFetches();
  Updater u = Make();
  WalkStats ws;
  Status st;
  Walk(u, memory.get(), &ws, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ws.roles_checked, 1u) << "the bin whose trusted copy changed was reused without a check";
  EXPECT_EQ(ws.changed_roles, std::vector<std::string>{bin});
  EXPECT_EQ(BinFetches() - fetches, 1);
  auto now = RealFileSystem::Get().ReadFile(copy, 1 << 20);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, *good) << "the trusted copy was not restored from verified bytes";
}

TEST(UpdaterInit, RefusesAnUnsignedOrMissingRoot) {
  char tmpl[] = "/tmp/pgclientXXXXXX";
  std::string dir = mkdtemp(tmpl);
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  } cleanup{dir};
  EXPECT_FALSE(Updater::InitTrustedRoot(dir + "/m", dir + "/missing.json", &RealFileSystem::Get()).ok());
  TestRepo repo;
  ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(dir + "/root.json", Sign(repo.root, {})).ok());
  EXPECT_EQ(Updater::InitTrustedRoot(dir + "/m", dir + "/root.json", &RealFileSystem::Get()).code(),
            ErrorCode::kUnmetThreshold);
  Updater u({dir + "/empty", kMeta, kTargets, dir + "/t"}, &repo.fetcher, SystemClock::Get(), &RealFileSystem::Get());
  EXPECT_EQ(u.Refresh().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace patchgate::client

namespace patchgate::client {
namespace {

// A lookup on a repository made by `patchgate publish` with hash bins fetches and verifies
// the top-level roles, the product's role and the ONE bin the target's path hashes to (TUF
// 5.6.7: only the delegations on the path to the target), never the other bins.
TEST(UpdaterBins, ALookupFetchesAndVerifiesOnlyTheBinItsPathHashesTo) {
  ScratchDir dir("clientbins");
  const std::string repo = dir.path() + "/repo";
  tuf::InitOptions io;
  io.dir = repo;
  io.bins_threshold = 4;  // more targets than this: hash bins
  io.bin_bits = 3;        // 8 bins
  tuf::KeyAccess access{"pw", false};
  ASSERT_TRUE(tuf::InitRepository(io, access, SystemClock::Get()).ok());
  std::vector<std::string> inputs;
  for (int i = 0; i < 16; ++i) {
    inputs.push_back(dir.path() + "/f" + std::to_string(i) + ".bin");
    std::ofstream(inputs.back()) << "file " << i;
  }
  ASSERT_TRUE(tuf::Publish({repo, "office", "1", false, nullptr}, inputs, access, SystemClock::Get()).ok());
  MemoryFetcher fetcher;  // the repository's files at http://repo/...
  size_t bins_published = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(repo)) {
    if (!e.is_regular_file()) continue;
    std::string rel = std::filesystem::relative(e.path(), repo).string();
    fetcher.files["http://repo/" + rel] = *RealFileSystem::Get().ReadFile(e.path().string(), 1 << 20);
    if (rel.rfind("metadata/", 0) == 0 && rel.find(".bins.") != std::string::npos) ++bins_published;
  }
  ASSERT_GE(bins_published, 8u);
  ASSERT_TRUE(Updater::InitTrustedRoot(dir.path() + "/meta", repo + "/metadata/1.root.json", &RealFileSystem::Get()).ok());
  Updater u({dir.path() + "/meta", kMeta, kTargets, dir.path() + "/targets"}, &fetcher, SystemClock::Get(),
            &RealFileSystem::Get());
  auto info = u.GetTargetInfo("office/f5.bin");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_TRUE(u.DownloadTarget(*info).ok());
  std::vector<std::string> bins_fetched;
  for (const auto& [url, n] : fetcher.requests)
    if (url.find("/metadata/") != std::string::npos && url.find(".bins.") != std::string::npos) bins_fetched.push_back(url);
  ASSERT_EQ(bins_fetched.size(), 1u) << "bins fetched for one target: " << bins_fetched.size();
  EXPECT_NE(bins_fetched[0].find("." + info->role + ".json"), std::string::npos)
      << bins_fetched[0] << " is not the bin that signs the target (" << info->role << ")";
  EXPECT_EQ(u.TrustedMetadataFiles().size(), 6u);  // root, timestamp, snapshot, targets, product, one bin
}

}  // namespace
}  // namespace patchgate::client
