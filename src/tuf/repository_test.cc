#include "tuf/repository.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/fs.h"
#include "crypto/hash.h"
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
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
    std::filesystem::remove_all(base_ + "/repo.root-keys", ec);
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
  PublishOptions o{dir_, "office", "", false, [](const std::vector<StagedInput>&) -> Result<std::vector<GateRecord>> {
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
  EXPECT_TRUE(meta.count("1.bins.office-0.json"));
  EXPECT_TRUE(meta.count("1.bins.office-3.json"));
  ASSERT_TRUE(Pub({File("late.bin", "late")}).ok());
  auto v = VerifyRepository(dir_, clock_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  EXPECT_EQ(v->targets_checked, 8u);
  EXPECT_EQ(LoadCatalogue(dir_)->size(), 8u);
}

TEST_F(RepoTest, RotationsAndRefreshKeepTheChainValid) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  for (const char* role : {"root", "timestamp", "snapshot", "targets", "product.office", "products/office"}) {
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
  std::string p = dir_ + "/metadata/1.product.office.json";
  std::string text = *RealFileSystem::Get().ReadFile(p, 1 << 20);
  text.replace(text.find("\"length\":8"), 10, "\"length\":9");
  std::ofstream(p) << text;
  v = VerifyRepository(dir_, clock_);
  EXPECT_GE(v->problems.size(), 2u);
  EXPECT_EQ(LoadCatalogue(dir_).status().code(), ErrorCode::kCorrupt);
}

// Removes a scratch directory (and the root keys beside its repositories) pass or fail.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/tmp/pgrepoXXXXXX";
    path = mkdtemp(tmpl);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

TEST(Repository, InitRefusesBadInput) {
  ScratchDir scratch;
  std::string base = scratch.path;
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

// ---- #9.5: the gate's bytes are the published bytes ---------------------------------

std::vector<std::string> TargetFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir + "/targets"))
    if (!e.is_directory()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(RepoTest, SourceChangedAfterStagingNeverReachesTheRepository) {
  std::string src = File("setup.exe", "the scanned bytes");
  PublishOptions o{dir_, "office", "", false, [&](const std::vector<StagedInput>& in) -> Result<std::vector<GateRecord>> {
                     // While the gate scans, the source is rewritten in place.
                     std::ofstream(src) << "INFECTED after the scan";
                     EXPECT_NE(in[0].staged, src);
                     EXPECT_EQ(*RealFileSystem::Get().ReadFile(in[0].staged, 1 << 20), "the scanned bytes");
                     GateRecord g;
                     g.scanned_sha256 = Sha256Hex(*RealFileSystem::Get().ReadFile(in[0].staged, 1 << 20));
                     return std::vector<GateRecord>{g};
                   }};
  auto r = Publish(o, {src}, access_, clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].sha256, Sha256Hex("the scanned bytes"));
  auto cat = LoadCatalogue(dir_);
  ASSERT_TRUE(cat.ok());
  EXPECT_EQ(*RealFileSystem::Get().ReadFile((*cat)[0].file, 1 << 20), "the scanned bytes");
  EXPECT_TRUE(VerifyRepository(dir_, clock_)->problems.empty());
  EXPECT_FALSE(RealFileSystem::Get().Exists(dir_ + "/.staging/" + std::to_string(::getpid())));
}

TEST_F(RepoTest, GateThatScannedOtherBytesIsRefusedAndLeavesNothing) {
  auto before = Snapshot();
  PublishOptions o{dir_, "office", "", false, [](const std::vector<StagedInput>&) -> Result<std::vector<GateRecord>> {
                     GateRecord g;
                     g.scanned_sha256 = Sha256Hex("something else");
                     return std::vector<GateRecord>{g};
                   }};
  auto r = Publish(o, {File("a.exe", "x")}, access_, clock_);
  EXPECT_EQ(r.status().code(), ErrorCode::kHashMismatch);
  EXPECT_EQ(Snapshot(), before);
  EXPECT_TRUE(TargetFiles(dir_).empty());
}

// Issue #9: an input over the gate's --max-file-size is refused before it is copied to
// staging (a sparse 64 MiB file against a 1 MiB cap): the gate never sees it, nothing is
// left in .staging or targets/, and the message says what to do.
TEST_F(RepoTest, OversizeInputIsRefusedBeforeItIsStaged) {
  auto before = Snapshot();
  std::string big = base_ + "/huge.iso";
  int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);  // sparse: no data blocks
  ::close(fd);
  size_t staged_bytes_seen = 0;
  PublishOptions o{dir_, "office", "", false, [&](const std::vector<StagedInput>& in) -> Result<std::vector<GateRecord>> {
                     for (const auto& f : in) staged_bytes_seen += f.length;
                     return std::vector<GateRecord>(in.size());
                   }};
  o.max_input_bytes = 1 << 20;
  auto r = Publish(o, {File("small.exe", "ok"), big}, access_, clock_);
  ASSERT_EQ(r.status().code(), ErrorCode::kTooLarge) << r.status().ToString();
  EXPECT_NE(r.status().message().find("huge.iso is 67108864 bytes: refused before it was copied, over the gate's "
                                      "--max-file-size of 1048576 bytes"),
            std::string::npos) << r.status().message();
  EXPECT_EQ(staged_bytes_seen, 0u) << "the gate ran";
  EXPECT_EQ(Snapshot(), before);
  EXPECT_TRUE(TargetFiles(dir_).empty());
  auto left = RealFileSystem::Get().ListDir(dir_ + "/.staging");
  EXPECT_TRUE(!left.ok() || left->empty()) << "a staging folder was left behind";
  // Under the cap the same publish goes through.
  o.max_input_bytes = 64 << 20;
  EXPECT_TRUE(Publish(o, {big}, access_, clock_).ok());
  EXPECT_EQ(staged_bytes_seen, 64u << 20);
}

TEST_F(RepoTest, StagedCopyChangedAfterTheScanIsRefused) {
  auto before = Snapshot();
  PublishOptions o{dir_, "office", "", false, [](const std::vector<StagedInput>& in) -> Result<std::vector<GateRecord>> {
                     std::vector<GateRecord> out(in.size());
                     for (size_t i = 0; i < in.size(); ++i) out[i].scanned_sha256 = in[i].sha256;
                     std::ofstream(in[0].staged, std::ios::app) << "appended by an infector";
                     return out;
                   }};
  auto r = Publish(o, {File("a.exe", "x")}, access_, clock_);
  EXPECT_EQ(r.status().code(), ErrorCode::kHashMismatch) << r.status().ToString();
  EXPECT_EQ(Snapshot(), before);
  EXPECT_TRUE(TargetFiles(dir_).empty());
}

// A filesystem whose write of one metadata file fails.
class FailingWrite : public ForwardingFileSystem {
 public:
  FailingWrite(std::string suffix) : ForwardingFileSystem(&RealFileSystem::Get()), suffix_(std::move(suffix)) {}
  Status WriteFileAtomic(const std::string& p, std::string_view d) override {
    if (p.size() >= suffix_.size() && p.compare(p.size() - suffix_.size(), suffix_.size(), suffix_) == 0)
      return IOError("injected: disk full writing " + p);
    writes.push_back(p);
    return target_->WriteFileAtomic(p, d);
  }
  std::vector<std::string> writes;

 private:
  std::string suffix_;
};

// #9.8: timestamp.json is written only after the snapshot it names; a failed publish
// leaves no orphan in targets/ and a repository verify accepts.
TEST_F(RepoTest, FailedSnapshotWriteLeavesTimestampAndTargetsUntouched) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  auto targets_before = TargetFiles(dir_);
  std::string ts_before = *RealFileSystem::Get().ReadFile(dir_ + "/metadata/timestamp.json", 1 << 20);
  FailingWrite fs(".snapshot.json");
  PublishOptions o{dir_, "office", "", false, nullptr, &fs};
  auto r = Publish(o, {File("b.exe", "two"), File("c.exe", "three")}, access_, clock_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError);
  EXPECT_EQ(*RealFileSystem::Get().ReadFile(dir_ + "/metadata/timestamp.json", 1 << 20), ts_before);
  EXPECT_EQ(TargetFiles(dir_), targets_before);
  auto v = VerifyRepository(dir_, clock_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  // And the same publish goes through once the disk is fine.
  ASSERT_TRUE(Pub({File("b.exe", "two")}).ok());
  EXPECT_TRUE(VerifyRepository(dir_, clock_)->problems.empty());
}

// #9.8: publish holds the repository lock; a second writer is refused and writes nothing.
TEST_F(RepoTest, PublishWhileAnotherWriterHoldsTheLockIsRefused) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  auto before = Snapshot();
  auto targets_before = TargetFiles(dir_);
  int fd = ::open((dir_ + "/.patchgate.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto r = Pub({File("b.exe", "two")});
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable) << r.status().ToString();
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(TargetFiles(dir_), targets_before);
  ::close(fd);
  EXPECT_TRUE(Pub({File("b.exe", "two")}).ok());
}

// #9.5: verify reports symlinks and stray files in the served tree.
TEST_F(RepoTest, VerifyReportsSymlinksAndStrayFiles) {
  ASSERT_TRUE(Pub({File("a.exe", "one")}).ok());
  ASSERT_TRUE(VerifyRepository(dir_, clock_)->problems.empty());
  ASSERT_EQ(::symlink("../keys/timestamp.key.json", (dir_ + "/metadata/tk.json").c_str()), 0);
  auto v = VerifyRepository(dir_, clock_);
  ASSERT_EQ(v->problems.size(), 1u);
  EXPECT_NE(v->problems[0].find("metadata/tk.json is a symlink"), std::string::npos) << v->problems[0];
  ::unlink((dir_ + "/metadata/tk.json").c_str());
  std::ofstream(dir_ + "/metadata/notes.txt") << "x";
  std::ofstream(dir_ + "/targets/office/evil.exe") << "x";
  std::ofstream(dir_ + "/targets/office/" + std::string(64, 'a') + ".unknown.exe") << "x";
  ASSERT_EQ(::symlink("/etc/passwd", (dir_ + "/targets/office/pw").c_str()), 0);
  v = VerifyRepository(dir_, clock_);
  EXPECT_EQ(v->problems.size(), 4u);
  std::string all;
  for (const auto& p : v->problems) all += p + "\n";
  for (const char* name : {"metadata/notes.txt", "targets/office/evil.exe", ".unknown.exe", "targets/office/pw is a symlink"})
    EXPECT_NE(all.find(name), std::string::npos) << name << " not in\n" << all;
  // A leftover of an interrupted write is a note, not a problem.
  for (const char* f : {"/metadata/notes.txt", "/targets/office/evil.exe", "/targets/office/pw"}) ::unlink((dir_ + f).c_str());
  ::unlink((dir_ + "/targets/office/" + std::string(64, 'a') + ".unknown.exe").c_str());
  std::ofstream(dir_ + "/metadata/timestamp.json.tmp.12345") << "x";
  // So is a content-addressed copy whose bytes match its name (a publish killed before
  // its commit leaves one).
  std::ofstream(dir_ + "/targets/office/" + Sha256Hex("orphan") + ".orphan.exe") << "orphan";
  v = VerifyRepository(dir_, clock_);
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  EXPECT_EQ(v->notes.size(), 2u);
  // And a new role's first file written before the snapshot that would name it (a publish
  // killed between its role files and its commit: seen by the kill -9 test). Targets
  // metadata of the version in its name is a note; anything else under such a name is a stray.
  std::string targets_file;
  for (const auto& n : *RealFileSystem::Get().ListDir(dir_ + "/metadata"))
    if (n.size() > 13 && n.substr(n.size() - 13) == ".targets.json") targets_file = n;
  ASSERT_FALSE(targets_file.empty());
  std::string version = targets_file.substr(0, targets_file.find('.'));
  ASSERT_TRUE(RealFileSystem::Get()
                  .WriteFileAtomic(dir_ + "/metadata/" + version + ".bins.newproduct-0.json",
                                   *RealFileSystem::Get().ReadFile(dir_ + "/metadata/" + targets_file, 1 << 20))
                  .ok());
  v = VerifyRepository(dir_, clock_);
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  EXPECT_EQ(v->notes.size(), 3u);
  std::ofstream(dir_ + "/metadata/" + std::to_string(std::stoi(version) + 1) + ".bins.newproduct-1.json")
      << *RealFileSystem::Get().ReadFile(dir_ + "/metadata/" + targets_file, 1 << 20);  // version in the name differs
  std::ofstream(dir_ + "/metadata/1.bins.newproduct-2.json") << "{\"not\": \"metadata\"}";
  v = VerifyRepository(dir_, clock_);
  ASSERT_EQ(v->problems.size(), 2u);
  EXPECT_NE((v->problems[0] + v->problems[1]).find("newproduct-1.json is a stray file"), std::string::npos);
  EXPECT_NE((v->problems[0] + v->problems[1]).find("newproduct-2.json is a stray file"), std::string::npos);
}

// #9.3: a target name that is not UTF-8 is refused before anything is written, and the
// repository stays usable.
TEST_F(RepoTest, NonUtf8TargetNameRefusedBeforeWriting) {
  ASSERT_TRUE(Pub({File("ok.bin", "fine")}).ok());
  auto before = Snapshot();
  auto targets_before = RealFileSystem::Get().ListDir(dir_ + "/targets/office");
  for (std::string bad : {std::string("bad\xff.exe"), std::string("cut\xc3.exe"), std::string("sur\xed\xa0\x80.exe")}) {
    auto r = Pub({File("good.exe", "g"), File(bad, "x")});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("UTF-8"), std::string::npos) << r.status().message();
    EXPECT_EQ(Snapshot(), before);
    EXPECT_EQ(*RealFileSystem::Get().ListDir(dir_ + "/targets/office"), *targets_before);
  }
  auto v = VerifyRepository(dir_, clock_);
  EXPECT_TRUE(v->problems.empty());
  EXPECT_TRUE(Pub({File("\xc3\xa9t\xc3\xa9.txt", "utf-8 name")}).ok());  // valid UTF-8 is fine
  EXPECT_TRUE(VerifyRepository(dir_, clock_)->problems.empty());
}

// Every metadata file is standard JSON (strict parser, no raw control characters), role
// names are single safe path segments.
void ExpectStandardJsonAndSafeNames(const std::string& dir) {
  auto names = RealFileSystem::Get().ListDir(dir + "/metadata");
  ASSERT_TRUE(names.ok());
  for (const auto& n : *names) {
    std::string text = *RealFileSystem::Get().ReadFile(dir + "/metadata/" + n, 1 << 26);
    for (char c : text) ASSERT_GE(static_cast<unsigned char>(c), 0x20) << n << " holds a raw control character";
    EXPECT_TRUE(Json::accept(text)) << n << " is not JSON";
    EXPECT_EQ(n.find('%'), std::string::npos) << n;
    ASSERT_GT(n.size(), 5u);
    std::string role = n.substr(0, n.size() - 5);
    if (role != "timestamp") role = role.substr(role.find('.') + 1);
    EXPECT_TRUE(IsSafeRoleName(role)) << n;
  }
}

class KeyTypeRepoTest : public ::testing::TestWithParam<KeyType> {};

TEST_P(KeyTypeRepoTest, InitPublishRotateVerifyWriteStandardJson) {
  ScratchDir scratch;
  InitOptions o;
  o.dir = scratch.path + "/repo";
  o.root_keys_dir = scratch.path + "/root-keys";
  o.key_type = GetParam();
  o.bins_threshold = 2;
  o.bin_bits = 1;
  KeyAccess access{"pw", false};
  FakeClock clock{1'800'000'000};
  ASSERT_TRUE(InitRepository(o, access, clock).ok());
  ExpectStandardJsonAndSafeNames(o.dir);
  std::vector<std::string> files;
  for (int i = 0; i < 3; ++i) {
    files.push_back(scratch.path + "/f" + std::to_string(i));
    std::ofstream(files.back()) << "content " << i;
  }
  PublishOptions p{o.dir, "office", "1", false, nullptr};
  auto r = Publish(p, files, access, clock);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const char* role : {"root", "timestamp", "snapshot", "targets", "product.office"}) {
    Status st = RotateKey({o.dir, role, std::nullopt, std::nullopt}, access, clock);
    ASSERT_TRUE(st.ok()) << role << ": " << st.ToString();
  }
  ExpectStandardJsonAndSafeNames(o.dir);
  auto v = VerifyRepository(o.dir, clock);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  EXPECT_EQ(v->targets_checked, 3u);
  // The root on disk is JSON, and its signatures are over the canonical form.
  std::string root_text = *RealFileSystem::Get().ReadFile(o.dir + "/metadata/1.root.json", 1 << 20);
  auto env = Envelope::Parse(root_text, kMaxRootBytes);
  ASSERT_TRUE(env.ok());
  auto root = Root::FromSigned(env->signed_json);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(env->signed_bytes, *cjson::Encode(env->signed_json));
  EXPECT_TRUE(VerifyThreshold(*env, root->keys, root->roles.at("root"), "root").ok());
}

INSTANTIATE_TEST_SUITE_P(AllKeyTypes, KeyTypeRepoTest,
                         ::testing::Values(KeyType::kEd25519, KeyType::kEcdsaP256, KeyType::kRsaPss));

}  // namespace
}  // namespace patchgate::tuf
