#include "mirror/sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "client/fetcher.h"
#include "client/target_fetch.h"
#include "client/updater.h"
#include "core/fs.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "tuf/catalogue.h"
#include "tuf/metadata.h"
#include "tuf/repository.h"

namespace patchgate::mirror {

namespace {

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// The file system seam with the Updater's trusted dir; writes stay inside DIR/.patchgate.
RealFileSystem& Fs() { return RealFileSystem::Get(); }

// The trusted-metadata store of the mirror's Updater. Root, timestamp and snapshot are the
// rollback-protection state and are written with fsync; a targets role is pinned by the
// snapshot's version for it, so losing one in a power cut only means fetching it again:
// those are written (tmp + rename) without an fsync each, which on a 30,000-target
// repository with hundreds of hashed bins is the difference between seconds and
// milliseconds.
class MirrorTrustedFs : public ForwardingFileSystem {
 public:
  MirrorTrustedFs() : ForwardingFileSystem(&RealFileSystem::Get()) {}
  Status WriteFileAtomic(const std::string& path, std::string_view data) override {
    std::string base = path.substr(path.find_last_of('/') + 1);
    if (base == "root.json" || base == "timestamp.json" || base == "snapshot.json")
      return target_->WriteFileAtomic(path, data);
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IOError("cannot create " + tmp + ": " + std::strerror(errno));
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return IOError("cannot write " + tmp + ": " + std::strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return IOError("cannot rename " + tmp);
    return Status::OK();
  }
};

Status WriteFile(const std::string& path, const std::string& bytes, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IOError("cannot create " + path + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return IOError("cannot write " + path + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  int rc = sync ? ::fsync(fd) : 0;
  ::close(fd);
  if (rc != 0) return IOError("cannot fsync " + path);
  return Status::OK();
}

bool SameSize(const std::string& path, uint64_t length) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == length;
}

std::unique_ptr<client::Fetcher> NewFetcher(const SyncOptions& o) {
  client::HttpOptions h;
  h.bearer_token = o.node_token;
  h.connect_timeout_seconds = o.connect_timeout_seconds;
  h.low_speed_seconds = o.low_speed_seconds;
  h.user_agent = "patchgate-mirror/0.1";
  return client::NewCurlFetcher(h);
}

}  // namespace

Syncer::Syncer(SyncOptions o, const Clock& clock) : o_(std::move(o)), clock_(clock) {
  o_.upstream = StripSlash(o_.upstream);
  if (o_.parallel < 1) o_.parallel = 1;
  if (o_.parallel > 64) o_.parallel = 64;
}
Syncer::~Syncer() = default;

std::string Syncer::private_dir() const { return JoinPath(o_.data_dir, ".patchgate"); }

Status Syncer::Open() {
  for (const char* d : {"metadata", "targets", ".patchgate/trusted", ".patchgate/staging", ".patchgate/quarantine"})
    PG_RETURN_IF_ERROR(Fs().MakeDirs(JoinPath(o_.data_dir, d)));
  std::string trusted = JoinPath(private_dir(), "trusted");
  if (!Fs().Exists(JoinPath(trusted, "root.json"))) {
    Status st = client::Updater::InitTrustedRoot(trusted, o_.root_file, &Fs());
    if (!st.ok()) return st.WithContext("--root " + o_.root_file);
  }
  std::lock_guard<std::mutex> l(mu_);
  return LoadServed();
}

// A restarted mirror: what DIR serves must still verify (signed chain and every target's
// hash) before it is served again; anything that does not is fetched again by the next pass.
Status Syncer::LoadServed() {
  std::string ts_path = JoinPath(JoinPath(o_.data_dir, "metadata"), "timestamp.json");
  if (!Fs().Exists(ts_path)) return Status::OK();
  auto cat = tuf::LoadCatalogue(o_.data_dir);
  if (!cat.ok()) {
    log::Warn("the snapshot in DIR does not verify; it will be replaced by the next sync",
              {{"dir", o_.data_dir}, {"error", cat.status().ToString()}});
    return Status::OK();
  }
  std::map<std::string, ExpectedFile> expected;
  bool all_good = true;
  for (const auto& e : *cat) {
    std::string rel = "targets/" + tuf::ConsistentTargetName(e.path, e.sha256);
    auto d = Sha256File(e.file);
    if (!d.ok() || d->sha256 != e.sha256 || d->length != e.length) {
      all_good = false;
      continue;
    }
    expected[rel] = ExpectedFile{e.sha256, e.length, e.path};
  }
  auto names = Fs().ListDir(JoinPath(o_.data_dir, "metadata"));
  if (!names.ok()) return names.status();
  for (const auto& n : *names) {
    auto bytes = Fs().ReadFile(JoinPath(JoinPath(o_.data_dir, "metadata"), n), tuf::kMaxTargetsBytes);
    if (!bytes.ok()) continue;
    served_metadata_[n] = *bytes;
    expected["metadata/" + n] = ExpectedFile{Sha256Hex(*bytes), bytes->size(), ""};
  }
  expected_ = std::move(expected);
  auto ts = tuf::Envelope::Parse(served_metadata_["timestamp.json"], tuf::kMaxTimestampBytes);
  if (ts.ok()) {
    auto t = tuf::Timestamp::FromSigned(ts->signed_json);
    if (t.ok()) served_version_ = t->snapshot.version;
  }
  // Only a fully verified tree lets the next pass skip on an unchanged upstream timestamp.
  if (all_good) last_timestamp_ = served_metadata_["timestamp.json"];
  verified_existing_ = true;
  log::Info("mirror loaded its last snapshot", {{"snapshot", std::to_string(served_version_.load())},
                                                {"targets", std::to_string(cat->size())},
                                                {"all_verified", all_good ? "yes" : "no"}});
  return Status::OK();
}

Result<SyncPass> Syncer::SyncOnce() {
  // The cheap poll: one small GET of timestamp.json.
  auto fetcher = NewFetcher(o_);
  auto ts = fetcher->FetchAll(o_.upstream + "/metadata/timestamp.json", tuf::kMaxTimestampBytes);
  if (!ts.ok()) return ts.status().WithContext("upstream " + o_.upstream);
  std::lock_guard<std::mutex> l(mu_);
  if (*ts == last_timestamp_) {
    SyncPass p;
    p.snapshot_version = served_version_;
    p.upstream_snapshot_version = upstream_version_ = served_version_.load();
    return p;
  }
  return FullPass(*ts);
}

Result<SyncPass> Syncer::FullPass(const std::string& /*timestamp_bytes*/) {
  SyncPass pass;
  auto fetcher = NewFetcher(o_);
  client::UpdaterOptions uo;
  uo.metadata_dir = JoinPath(private_dir(), "trusted");
  uo.metadata_url = o_.upstream + "/metadata";
  uo.target_base_url = o_.upstream + "/targets";
  uo.target_dir = JoinPath(private_dir(), "staging");
  MirrorTrustedFs trusted_fs;
  client::Updater u(uo, fetcher.get(), clock_, &trusted_fs);
  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&t0] {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  };
  PG_RETURN_IF_ERROR(u.Refresh());
  PG_ASSIGN_OR_RETURN(std::vector<client::TargetInfo> targets, u.ListAllTargets());
  log::Info("sync: metadata verified", {{"targets", std::to_string(targets.size())}, {"ms", ms()}});
  std::map<std::string, std::string> meta = u.TrustedMetadataFiles();
  int64_t version = u.TrustedSnapshotVersion().value_or(0);
  upstream_version_ = version;
  pass.upstream_snapshot_version = version;

  // The targets DIR must hold, and those it lacks.
  std::map<std::string, ExpectedFile> next;
  struct Job {
    std::string sha256;
    tuf::TargetFile file;
    std::string what;
    std::vector<std::string> rels;
  };
  std::map<std::string, Job> jobs;  // by sha256: one download per distinct content
  for (const auto& t : targets) {
    auto sha = t.file.hashes.find("sha256");
    if (sha == t.file.hashes.end()) return Corrupt("target " + t.path + " has no sha256: a mirror stores targets by hash");
    std::string rel = "targets/" + tuf::ConsistentTargetName(t.path, sha->second);
    ExpectedFile e{sha->second, t.file.length, t.path};
    std::string abs = JoinPath(o_.data_dir, rel);
    bool have = false;
    auto known = expected_.find(rel);
    if (known != expected_.end() && known->second.sha256 == e.sha256 && SameSize(abs, e.length)) {
      have = true;  // verified earlier and watched since
    } else if (SameSize(abs, e.length)) {
      auto d = Sha256File(abs);
      have = d.ok() && d->sha256 == e.sha256;
    }
    next[rel] = e;
    if (have) continue;
    auto& job = jobs[e.sha256];
    job.sha256 = e.sha256;
    job.file = t.file;
    job.what = t.path;
    job.rels.push_back(rel);
  }

  // Parallel, resumable fetch into staging, by hash.
  std::vector<const Job*> todo;
  for (const auto& [_, j] : jobs) todo.push_back(&j);
  std::atomic<size_t> next_job{0};
  std::atomic<uint64_t> bytes{0};
  std::mutex err_mu;
  Status first_error;
  std::string staging = JoinPath(private_dir(), "staging");
  auto worker = [&] {
    auto f = NewFetcher(o_);
    for (;;) {
      {
        std::lock_guard<std::mutex> el(err_mu);
        if (!first_error.ok()) return;
      }
      size_t i = next_job++;
      if (i >= todo.size()) return;
      const Job& j = *todo[i];
      std::string url = o_.upstream + "/targets/" + client::TargetUrlPath(j.what, j.sha256, true);
      client::TargetFetchOptions fo;
      fo.resume = true;
      fo.fsync = false;  // one syncfs for the whole tree before the switch
      Status st = client::FetchTargetTo(f.get(), url, j.what, j.file, JoinPath(staging, j.sha256), fo);
      if (!st.ok()) {
        std::lock_guard<std::mutex> el(err_mu);
        if (first_error.ok()) first_error = st;
        return;
      }
      bytes += j.file.length;
    }
  };
  log::Info("sync: targets to fetch", {{"count", std::to_string(todo.size())}, {"ms", ms()}});
  int n = std::min<int>(o_.parallel, static_cast<int>(todo.size()));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!first_error.ok()) return first_error;

  // Into place (still invisible to customers: no served metadata names them yet).
  for (const Job* j : todo) {
    std::string staged = JoinPath(staging, j->sha256);
    for (size_t k = 0; k < j->rels.size(); ++k) {
      const std::string& rel = j->rels[k];
      if (k + 1 < j->rels.size()) {
        std::string copy = staged + ".copy";
        ::unlink(copy.c_str());
        if (::link(staged.c_str(), copy.c_str()) != 0) return IOError("cannot link " + staged);
        PG_RETURN_IF_ERROR(Place(copy, rel, next[rel]));
      } else {
        PG_RETURN_IF_ERROR(Place(staged, rel, next[rel]));
      }
    }
    ++pass.targets_fetched;
  }
  pass.bytes_fetched = bytes;
  // No fsync per target (nor a syncfs of the whole file system, which on a shared disk costs
  // seconds): a restarted mirror re-verifies every target before it serves again
  // (LoadServed), and the server verifies every file against its signed hash before
  // sending it, so a target lost in a power cut is re-fetched, never served wrong.
  log::Debug("targets in place", {{"fetched", std::to_string(todo.size())}});

  // Metadata: every root version from 1, versioned files, then timestamp.json last.
  int64_t root_version = 0;
  for (const auto& [name, _] : meta)
    if (name.size() > 10 && name.compare(name.size() - 10, 10, ".root.json") == 0)
      root_version = std::stoll(name.substr(0, name.find('.')));
  PG_RETURN_IF_ERROR(EnsureRootChain(meta, root_version));
  for (const auto& [name, bytes_] : meta) {
    if (name == "timestamp.json") continue;
    std::string path = JoinPath(JoinPath(o_.data_dir, "metadata"), name);
    if (served_metadata_.count(name) && Fs().Exists(path)) {
      if (served_metadata_[name] != bytes_)
        return Corrupt("upstream serves different bytes for the immutable " + name + "; keeping the last good snapshot");
      continue;
    }
    PG_RETURN_IF_ERROR(WriteMetadata(name, bytes_));
    next["metadata/" + name] = ExpectedFile{Sha256Hex(bytes_), bytes_.size(), ""};
  }
  for (const auto& [name, bytes_] : served_metadata_)
    if (name != "timestamp.json" && !meta.count(name)) next["metadata/" + name] = ExpectedFile{Sha256Hex(bytes_), bytes_.size(), ""};
  auto ts = meta.find("timestamp.json");
  if (ts == meta.end()) return Internal("the verified metadata has no timestamp");
  next["metadata/timestamp.json"] = ExpectedFile{Sha256Hex(ts->second), ts->second.size(), ""};
  expected_ = next;  // before the switch, so the watch knows every byte that is about to appear
  PG_RETURN_IF_ERROR(WriteMetadata("timestamp.json", ts->second));
  PG_RETURN_IF_ERROR(Fs().SyncDir(JoinPath(o_.data_dir, "metadata")));
  last_timestamp_ = ts->second;
  served_version_ = version;
  ++generation_;
  pass.changed = true;
  pass.snapshot_version = version;
  log::Info("mirror switched to a new snapshot",
            {{"snapshot", std::to_string(version)}, {"targets", std::to_string(targets.size())}, {"ms", ms()},
             {"fetched", std::to_string(pass.targets_fetched)}, {"bytes", std::to_string(pass.bytes_fetched)}});
  return pass;
}

// Older root versions DIR lacks (a mirror started from a later --root): each one must be
// the version it claims and must have signed its successor, down from the trusted one.
Status Syncer::EnsureRootChain(const std::map<std::string, std::string>& meta, int64_t top) {
  std::string mdir = JoinPath(o_.data_dir, "metadata");
  auto top_bytes = meta.find(std::to_string(top) + ".root.json");
  if (top_bytes == meta.end()) return Internal("no trusted root bytes");
  std::string newer = top_bytes->second;
  auto fetcher = NewFetcher(o_);
  for (int64_t v = top - 1; v >= 1; --v) {
    std::string name = std::to_string(v) + ".root.json";
    std::string path = JoinPath(mdir, name);
    std::string bytes;
    if (auto have = served_metadata_.find(name); have != served_metadata_.end() && Fs().Exists(path)) {
      bytes = have->second;
    } else {
      PG_ASSIGN_OR_RETURN(bytes, fetcher->FetchAll(o_.upstream + "/metadata/" + name, tuf::kMaxRootBytes));
    }
    PG_ASSIGN_OR_RETURN(tuf::Envelope env, tuf::Envelope::Parse(bytes, tuf::kMaxRootBytes));
    PG_ASSIGN_OR_RETURN(tuf::Root root, tuf::Root::FromSigned(env.signed_json));
    if (root.common.version != v) return Status(ErrorCode::kRollback, name + " claims version " + std::to_string(root.common.version));
    PG_ASSIGN_OR_RETURN(tuf::Envelope newer_env, tuf::Envelope::Parse(newer, tuf::kMaxRootBytes));
    PG_RETURN_IF_ERROR(tuf::VerifyThreshold(newer_env, root.keys, root.roles.at("root"),
                                            "root v" + std::to_string(v + 1) + " (by root v" + std::to_string(v) + ")"));
    if (!served_metadata_.count(name) || !Fs().Exists(path)) PG_RETURN_IF_ERROR(WriteMetadata(name, bytes));
    expected_["metadata/" + name] = ExpectedFile{Sha256Hex(bytes), bytes.size(), ""};
    newer = std::move(bytes);
  }
  return Status::OK();
}

Status Syncer::Place(const std::string& staged, const std::string& rel, const ExpectedFile& e) {
  std::string dest = JoinPath(o_.data_dir, rel);
  PG_RETURN_IF_ERROR(Fs().MakeDirs(DirName(dest)));
  if (on_place_) on_place_(rel, e);
  if (::rename(staged.c_str(), dest.c_str()) != 0)
    return IOError("cannot move " + staged + " to " + dest + ": " + std::strerror(errno));
  return Status::OK();
}

// Only timestamp.json, written last, is fsynced. After a power cut a versioned file it names
// may be lost: a restarted mirror verifies the whole chain before serving (LoadServed) and
// syncs first when it does not verify, so nothing unverified is served.
Status Syncer::WriteMetadata(const std::string& name, const std::string& bytes) {
  std::string staged = JoinPath(JoinPath(private_dir(), "staging"), "meta." + name);
  PG_RETURN_IF_ERROR(WriteFile(staged, bytes, name == "timestamp.json"));
  PG_RETURN_IF_ERROR(Place(staged, "metadata/" + name, ExpectedFile{Sha256Hex(bytes), bytes.size(), ""}));
  served_metadata_[name] = bytes;
  return Status::OK();
}

Status Syncer::Restore(const std::string& rel) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = expected_.find(rel);
  if (it == expected_.end()) return NotFound(rel + " is not part of the served snapshot; nothing to restore");
  ExpectedFile e = it->second;
  if (rel.rfind("metadata/", 0) == 0) {
    std::string name = rel.substr(9);
    auto m = served_metadata_.find(name);
    if (m == served_metadata_.end()) return NotFound("no verified copy of " + rel);
    std::string staged = JoinPath(JoinPath(private_dir(), "staging"), "meta." + name);
    PG_RETURN_IF_ERROR(WriteFile(staged, m->second, true));
    return Place(staged, rel, e);
  }
  tuf::TargetFile file;
  file.length = e.length;
  file.hashes["sha256"] = e.sha256;
  auto fetcher = NewFetcher(o_);
  std::string staged = JoinPath(JoinPath(private_dir(), "staging"), e.sha256 + ".restore");
  client::TargetFetchOptions fo;  // fsynced: a restore is a single file
  PG_RETURN_IF_ERROR(client::FetchTargetTo(fetcher.get(),
                                           o_.upstream + "/targets/" + client::TargetUrlPath(e.target_path, e.sha256, true),
                                           e.target_path, file, staged, fo));
  return Place(staged, rel, e);
}

std::map<std::string, ExpectedFile> Syncer::Expected() const {
  std::lock_guard<std::mutex> l(mu_);
  return expected_;
}

}  // namespace patchgate::mirror
