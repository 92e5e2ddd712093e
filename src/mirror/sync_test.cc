// The Syncer against a repository made by tuf::Publish (hash bins), served from memory
// through the fetcher seam: the pipeline fetches targets while later bins are still being
// verified, and nothing of a pass reaches DIR unless the whole pass verified.
#include "mirror/sync.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "client/fetcher.h"
#include "core/fs.h"
#include "core/scratch_dir.h"
#include "crypto/hash.h"
#include "tuf/repository.h"

namespace patchgate::mirror {
namespace {

constexpr char kUp[] = "http://up";

// The upstream's files, shared by every fetcher the Syncer makes (each used by one thread).
struct Upstream {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> files;  // url -> body
  std::map<std::string, int> requests;       // url -> requests
  int target_bodies = 0;                     // target downloads served whole
  // Requests of this URL wait (up to 30 s) until `after_targets` targets were served.
  std::string hold_url;
  int after_targets = 0;

  void Load(const std::string& repo) {
    std::lock_guard<std::mutex> l(mu);
    files.clear();
    for (const auto& e : std::filesystem::recursive_directory_iterator(repo)) {
      if (!e.is_regular_file()) continue;
      std::string rel = std::filesystem::relative(e.path(), repo).string();
      if (rel.rfind("metadata/", 0) != 0 && rel.rfind("targets/", 0) != 0) continue;
      files[std::string(kUp) + "/" + rel] = *RealFileSystem::Get().ReadFile(e.path().string(), 1 << 24);
    }
  }
  int Requests(const std::string& url) {
    std::lock_guard<std::mutex> l(mu);
    return requests[url];
  }
};

class UpstreamFetcher : public client::Fetcher {
 public:
  explicit UpstreamFetcher(Upstream* up) : up_(up) {}
  Status Fetch(const std::string& url, uint64_t max_bytes, const client::Sink& sink) override {
    return FetchFrom(url, 0, max_bytes, sink);
  }
  Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const client::Sink& sink) override {
    std::string body;
    {
      std::unique_lock<std::mutex> l(up_->mu);
      ++up_->requests[url];
      if (url == up_->hold_url)
        up_->cv.wait_for(l, std::chrono::seconds(30), [&] { return up_->target_bodies >= up_->after_targets; });
      auto it = up_->files.find(url);
      if (it == up_->files.end()) return NotFound(url);
      if (offset > it->second.size()) return Unsupported("range");
      body = it->second.substr(offset);
    }
    if (body.size() > max_bytes) return TooLarge(url);
    PG_RETURN_IF_ERROR(sink(body));
    if (url.find("/targets/") != std::string::npos) {
      std::lock_guard<std::mutex> l(up_->mu);
      ++up_->target_bodies;
      up_->cv.notify_all();
    }
    return Status::OK();
  }

 private:
  Upstream* up_;
};

// Files under `dir` (relative paths), excluding the mirror's private folder.
std::set<std::string> Tree(const std::string& dir) {
  std::set<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    std::string rel = std::filesystem::relative(e.path(), dir).string();
    if (rel.rfind(".patchgate", 0) == 0 || !e.is_regular_file()) continue;
    out.insert(rel);
  }
  return out;
}

std::string Read(const std::string& path) { return *RealFileSystem::Get().ReadFile(path, 1 << 24); }

class SyncerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_.path() + "/repo";
    data_ = dir_.path() + "/mirror";
    tuf::InitOptions io;
    io.dir = repo_;
    io.bins_threshold = 4;  // hash bins from 5 targets on
    io.bin_bits = 3;        // 8 bins
    ASSERT_TRUE(tuf::InitRepository(io, access_, SystemClock::Get()).ok());
    Publish(0, 24);
  }
  // Publishes files f<from>..f<to-1> of product "office" and serves the new repository.
  void Publish(int from, int to) {
    std::vector<std::string> inputs;
    for (int i = from; i < to; ++i) {
      inputs.push_back(dir_.path() + "/f" + std::to_string(i) + ".bin");
      std::ofstream(inputs.back()) << "the bytes of file " << i << std::string(static_cast<size_t>(i) * 37, 'x');
    }
    auto published = tuf::Publish({repo_, "office", "", false, nullptr}, inputs, access_, SystemClock::Get());
    ASSERT_TRUE(published.ok()) << published.status().ToString();
    up_.Load(repo_);
  }
  std::unique_ptr<Syncer> Make() {
    SyncOptions o;
    o.upstream = kUp;
    o.root_file = repo_ + "/metadata/1.root.json";
    o.data_dir = data_;
    o.parallel = 2;
    o.make_fetcher = [this] { return std::make_unique<UpstreamFetcher>(&up_); };
    auto s = std::make_unique<Syncer>(o);
    EXPECT_TRUE(s->Open().ok());
    return s;
  }
  // The versioned file of the bin walked last (bins are walked in order) in the served
  // snapshot, and the URL of one target it lists.
  std::string LastBinUrl() {
    std::string last;
    for (const auto& [url, _] : up_.files)
      if (url.find("/metadata/") != std::string::npos && url.find(".bins.") != std::string::npos) {
        std::string name = url.substr(url.find(".bins.") + 1);
        if (last.empty() || name > last.substr(last.find(".bins.") + 1) ||
            (name == last.substr(last.find(".bins.") + 1) && Version(url) > Version(last)))
          last = url;
      }
    return last;
  }
  static int Version(const std::string& url) {
    std::string base = url.substr(url.rfind('/') + 1);
    return std::stoi(base.substr(0, base.find('.')));
  }
  std::set<std::string> Staged() {
    std::set<std::string> out;
    std::string next = data_ + "/.patchgate/staging/next/targets";
    if (!std::filesystem::exists(next)) return out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(next))
      if (e.is_regular_file()) out.insert(std::filesystem::relative(e.path(), next).string());
    return out;
  }

  ScratchDir dir_{"mirrorsync"};
  tuf::KeyAccess access_{"pw", false};
  std::string repo_, data_;
  Upstream up_;
};

// Every target of the repository is in DIR with the published bytes.
void ExpectMirrors(const std::string& repo, const std::string& data) {
  std::set<std::string> want;
  for (const auto& rel : Tree(repo + "/targets")) want.insert(rel);
  ASSERT_FALSE(want.empty());
  for (const auto& rel : want) {
    ASSERT_TRUE(std::filesystem::exists(data + "/targets/" + rel)) << rel;
    EXPECT_EQ(Read(data + "/targets/" + rel), Read(repo + "/targets/" + rel)) << rel;
  }
  EXPECT_EQ(Tree(data + "/targets"), want);
  EXPECT_EQ(Read(data + "/metadata/timestamp.json"), Read(repo + "/metadata/timestamp.json"));
}

TEST_F(SyncerTest, APassServesEveryTargetOnlyOnceAllAreVerified) {
  auto s = Make();
  auto pass = s->SyncOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_TRUE(pass->changed);
  EXPECT_EQ(pass->targets_fetched, 24u);
  ExpectMirrors(repo_, data_);
  EXPECT_FALSE(std::filesystem::exists(data_ + "/.patchgate/staging/next")) << "the staging tree is gone after a switch";
  // A publish: the next pass fetches only the new files.
  Publish(24, 40);
  pass = s->SyncOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_EQ(pass->targets_fetched, 16u);
  ExpectMirrors(repo_, data_);
}

// A new snapshot whose last bin does not verify, held back until targets of the earlier
// bins were fetched: nothing switches, nothing of the pass is in DIR (targets or metadata),
// the verified targets wait in the staging tree; once upstream serves the right bin, the
// next pass serves all of them without fetching the staged ones again, and re-fetches a
// staged one that was changed on disk meanwhile.
TEST_F(SyncerTest, ABinFailingAfterTargetsWereFetchedSwitchesNothingAndServesNothingOfThePass) {
  auto s = Make();
  ASSERT_TRUE(s->SyncOnce().ok());
  // A restarted mirror: the full walk (a mirror that remembers its last walk checks the few
  // changed bins of a publish before handing any over).
  s = Make();
  const auto served_tree = Tree(data_);
  const std::string served_ts = Read(data_ + "/metadata/timestamp.json");
  const int64_t served_version = s->served_snapshot_version();
  const auto served_expected = s->Expected();

  Publish(24, 64);
  std::string bad = LastBinUrl();
  ASSERT_FALSE(bad.empty());
  std::string good = up_.files[bad];
  {
    std::lock_guard<std::mutex> l(up_.mu);
    std::string& b = up_.files[bad];
    size_t at = b.find("\"sha256\"");  // a signed hash of a target changed: the signature fails
    ASSERT_NE(at, std::string::npos);
    at = b.find('"', at + 9) + 1;  // first hex digit of a target's hash
    b[at] = b[at] == 'a' ? 'b' : 'a';
    up_.hold_url = bad;
    up_.after_targets = up_.target_bodies + 3;
  }
  int bodies_before = up_.target_bodies;
  auto failed = s->SyncOnce();
  ASSERT_FALSE(failed.ok()) << "a pass with a tampered bin switched";
  EXPECT_GE(up_.target_bodies - bodies_before, 3) << "targets were fetched while the bins were verified";
  EXPECT_EQ(Tree(data_), served_tree) << "a file of the failed pass entered DIR";
  EXPECT_EQ(Read(data_ + "/metadata/timestamp.json"), served_ts);
  EXPECT_EQ(s->served_snapshot_version(), served_version);
  EXPECT_EQ(s->Expected().size(), served_expected.size());
  auto staged = Staged();
  ASSERT_FALSE(staged.empty()) << "the verified targets of the failed pass are kept in staging";
  for (const auto& rel : staged) {
    std::string base = rel.substr(rel.rfind('/') + 1);
    EXPECT_EQ(Sha256Hex(Read(data_ + "/.patchgate/staging/next/targets/" + rel)), base.substr(0, 64))
        << rel << " is staged but does not match its signed hash";
  }

  // One staged file changed on disk (same size) while no pass runs: hashed again, fetched again.
  const std::string changed = *staged.begin();
  {
    std::string path = data_ + "/.patchgate/staging/next/targets/" + changed;
    std::string bytes = Read(path);
    bytes[0] ^= 1;
    ASSERT_TRUE(RealFileSystem::Get().WriteFileAtomic(path, bytes).ok());
  }
  std::map<std::string, int> fetched_before;
  for (const auto& rel : staged) fetched_before[rel] = up_.Requests(std::string(kUp) + "/targets/" + rel);
  {
    std::lock_guard<std::mutex> l(up_.mu);
    up_.files[bad] = good;
    up_.hold_url.clear();
  }
  auto pass = s->SyncOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_TRUE(pass->changed);
  ExpectMirrors(repo_, data_);
  for (const auto& rel : staged)
    EXPECT_EQ(up_.Requests(std::string(kUp) + "/targets/" + rel), fetched_before[rel] + (rel == changed ? 1 : 0))
        << rel << (rel == changed ? " was changed in staging and must be fetched again" : " was staged and verified");
  EXPECT_FALSE(std::filesystem::exists(data_ + "/.patchgate/staging/next"));
}

}  // namespace
}  // namespace patchgate::mirror
