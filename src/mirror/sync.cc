#include "mirror/sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "client/fetcher.h"
#include "client/target_fetch.h"
#include "client/updater.h"
#include "mirror/poll.h"
#include "mirror/prefetch.h"
#include "mirror/trusted_store.h"
#include "core/fs.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "tuf/catalogue.h"
#include "tuf/metadata.h"
#include "tuf/naming.h"
#include "tuf/repository.h"

namespace patchgate::mirror {

namespace {

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// The file system seam with the Updater's trusted dir; writes stay inside DIR/.patchgate.
RealFileSystem& Fs() { return RealFileSystem::Get(); }

// 404s for a listed target are retried this many times, 100 ms apart.
constexpr int kNotFoundRetries = 30;

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

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Removes a tree (files and folders, no link followed); a missing one is fine.
Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? Status::OK() : IOError("cannot stat " + path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) {
    PG_ASSIGN_OR_RETURN(auto names, RealFileSystem::Get().ListDir(path));
    for (const auto& n : names) PG_RETURN_IF_ERROR(RemoveTree(JoinPath(path, n)));
    if (::rmdir(path.c_str()) != 0) return IOError("cannot remove " + path + ": " + std::strerror(errno));
  } else if (::unlink(path.c_str()) != 0) {
    return IOError("cannot remove " + path + ": " + std::strerror(errno));
  }
  return Status::OK();
}

// Moves every file of the tree `src` into the tree `dst` by rename: a folder `dst` lacks
// moves as a whole (one rename for a whole folder of a first sync), a file replaces the
// file of the same name. A folder in the way of a file (or the reverse) is an error.
Status MergeTree(const std::string& src, const std::string& dst) {
  if (!IsDirectory(src)) return Status::OK();
  PG_ASSIGN_OR_RETURN(auto names, RealFileSystem::Get().ListDir(src));
  for (const auto& n : names) {
    std::string from = JoinPath(src, n), to = JoinPath(dst, n);
    struct stat fs {}, ts {};
    if (::lstat(from.c_str(), &fs) != 0) return IOError("cannot stat " + from + ": " + std::strerror(errno));
    if (::lstat(to.c_str(), &ts) == 0 && S_ISDIR(fs.st_mode) && S_ISDIR(ts.st_mode)) {
      PG_RETURN_IF_ERROR(MergeTree(from, to));
      continue;
    }
    if (::rename(from.c_str(), to.c_str()) != 0)
      return IOError("cannot move " + from + " to " + to + ": " + std::strerror(errno));
  }
  return Status::OK();
}

// Every file under `dir` (relative to it, with `prefix`), folders walked.
Status ListFiles(const std::string& dir, const std::string& prefix, std::vector<std::string>* out) {
  if (!IsDirectory(dir)) return Status::OK();
  PG_ASSIGN_OR_RETURN(auto names, RealFileSystem::Get().ListDir(dir));
  for (const auto& n : names) {
    std::string abs = JoinPath(dir, n);
    struct stat st {};
    if (::lstat(abs.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) PG_RETURN_IF_ERROR(ListFiles(abs, prefix + n + "/", out));
    else out->push_back(prefix + n);
  }
  return Status::OK();
}

std::unique_ptr<client::Fetcher> NewFetcher(const SyncOptions& o) {
  client::HttpOptions h;
  h.bearer_token = o.node_token;
  h.connect_timeout_seconds = o.connect_timeout_seconds;
  h.low_speed_seconds = o.low_speed_seconds;
  h.user_agent = "patchgate-mirror/0.1";
  return client::NewFetcher(h);  // the client's own HTTP/1.1 fetcher for http://, libcurl otherwise
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
  // Which versions the served snapshot names (its timestamp and snapshot verified just now
  // by LoadCatalogue): a versioned file newer than those is a leftover of a pass that never
  // switched, written without a sync, and possibly torn by a power cut. It is not trusted as
  // served bytes (which the next pass would have to match): it is removed and fetched again.
  std::string mdir = JoinPath(o_.data_dir, "metadata");
  PG_ASSIGN_OR_RETURN(std::string ts_bytes, Fs().ReadFile(ts_path, tuf::kMaxTimestampBytes));
  PG_ASSIGN_OR_RETURN(tuf::Envelope ts_env, tuf::Envelope::Parse(ts_bytes, tuf::kMaxTimestampBytes));
  PG_ASSIGN_OR_RETURN(tuf::Timestamp ts, tuf::Timestamp::FromSigned(ts_env.signed_json));
  served_version_ = ts.snapshot.version;
  std::map<std::string, int64_t> role_versions;  // role -> version the served snapshot lists
  {
    PG_ASSIGN_OR_RETURN(std::string snap_bytes,
                        Fs().ReadFile(JoinPath(mdir, tuf::VersionedMetadataName(ts.snapshot.version, "snapshot")),
                                      tuf::kMaxSnapshotBytes));
    PG_ASSIGN_OR_RETURN(tuf::Envelope env, tuf::Envelope::Parse(snap_bytes, tuf::kMaxSnapshotBytes));
    PG_ASSIGN_OR_RETURN(tuf::Snapshot snap, tuf::Snapshot::FromSigned(env.signed_json));
    for (const auto& [file, m] : snap.meta)
      if (file.size() > 5) role_versions[file.substr(0, file.size() - 5)] = m.version;
  }
  auto leftover = [&](const std::string& n) {
    auto v = tuf::ParseVersionedMetadataName(n);
    if (!v || v->role == "root") return false;  // the root chain is checked by LoadCatalogue
    if (v->role == "snapshot") return v->version > ts.snapshot.version;
    auto it = role_versions.find(v->role);
    return it == role_versions.end() || v->version > it->second;
  };
  auto names = Fs().ListDir(mdir);
  if (!names.ok()) return names.status();
  size_t removed = 0;
  for (const auto& n : *names) {
    if (leftover(n)) {
      if (::unlink(JoinPath(mdir, n).c_str()) == 0) ++removed;
      continue;
    }
    auto bytes = Fs().ReadFile(JoinPath(mdir, n), tuf::kMaxTargetsBytes);
    if (!bytes.ok()) continue;
    served_metadata_[n] = *bytes;
    expected["metadata/" + n] = ExpectedFile{Sha256Hex(*bytes), bytes->size(), ""};
  }
  if (removed > 0)
    log::Info("removed metadata left by a sync pass that never switched; it is fetched and verified again",
              {{"files", std::to_string(removed)}});
  expected_ = std::move(expected);
  // Only a fully verified tree lets the next pass skip on an unchanged upstream timestamp.
  if (all_good) last_timestamp_ = served_metadata_["timestamp.json"];
  verified_existing_ = true;
  log::Info("mirror loaded its last snapshot", {{"snapshot", std::to_string(served_version_.load())},
                                                {"targets", std::to_string(cat->size())},
                                                {"all_verified", all_good ? "yes" : "no"}});
  return Status::OK();
}

client::Fetcher* Syncer::WorkerFetcher(size_t i) {
  while (fetchers_.size() <= i) fetchers_.push_back(MakeFetcher());
  return fetchers_[i].get();
}

std::unique_ptr<client::Fetcher> Syncer::MakeFetcher() const { return o_.make_fetcher ? o_.make_fetcher() : NewFetcher(o_); }

Result<SyncPass> Syncer::SyncOnce() {
  // The cheap poll: a conditional GET of timestamp.json on a kept-alive connection. Only
  // the ETag of the bytes last switched to is sent, so a pass that failed is retried at
  // the next poll (the upstream's timestamp has not changed, but ours is not it).
  std::string etag;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!last_timestamp_.empty()) etag = last_etag_;
    if (!poller_) {
      PollOptions po;
      po.url = o_.upstream + "/metadata/timestamp.json";
      po.node_token = o_.node_token;
      po.connect_timeout_seconds = o_.connect_timeout_seconds;
      po.max_bytes = tuf::kMaxTimestampBytes;
      poller_ = std::make_unique<TimestampPoller>(po);
    }
  }
  // The poller is used by this (the sync) thread only; the lock is not held over the network.
  Result<PollResult> polled = PollResult{};
  if (o_.make_fetcher) {  // tests: a plain GET through the injected fetcher
    auto body = MakeFetcher()->FetchAll(o_.upstream + "/metadata/timestamp.json", tuf::kMaxTimestampBytes);
    if (body.ok()) polled->body = std::move(*body);
    else polled = body.status();
  } else {
    polled = poller_->Poll(etag);
  }
  if (!polled.ok()) return polled.status().WithContext("upstream " + o_.upstream);
  std::lock_guard<std::mutex> l(mu_);
  bool unchanged = !last_timestamp_.empty() &&
                   ((polled->not_modified && etag == last_etag_) || (!polled->not_modified && polled->body == last_timestamp_));
  if (unchanged) {
    if (!polled->not_modified) last_etag_ = polled->etag;  // an upstream that just learnt ETags
    SyncPass p;
    p.snapshot_version = served_version_;
    p.upstream_snapshot_version = upstream_version_ = served_version_.load();
    return p;
  }
  if (polled->not_modified)  // 304 for bytes we no longer hold as current: ask plainly next time
    return Status(ErrorCode::kNetwork, "upstream answered 304 to an outdated ETag; polling again");
  auto pass = FullPass(polled->body);
  // The ETag belongs to the bytes switched to only when the pass switched to exactly them.
  if (pass.ok() && last_timestamp_ == polled->body) last_etag_ = polled->etag;
  return pass;
}

Result<SyncPass> Syncer::FullPass(const std::string& /*timestamp_bytes*/) {
  SyncPass pass;
  auto t0 = std::chrono::steady_clock::now();

  auto ms = [&t0] {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  };
  // Metadata: the client's Updater (every check of the TUF workflow), its downloads of the
  // roles the mirror lacks made in parallel ahead of its walk (PrefetchFetcher). Fetcher 0
  // is the Updater's; the target workers use 1..parallel.
  client::UpdaterOptions uo;
  uo.metadata_dir = JoinPath(private_dir(), "trusted");
  uo.metadata_url = o_.upstream + "/metadata";
  uo.target_base_url = o_.upstream + "/targets";
  uo.target_dir = JoinPath(private_dir(), "staging");
  // Bins are checked a few at a time (each against its verified delegator, used in walk
  // order): the walk over hundreds of hashed bins was the critical path of a small sync.
  uo.parallel_roles = std::min(o_.parallel, 4);
  uo.targets_custom = false;  // targets are stored and served by hash: their custom data is never read here
  PrefetchOptions po;
  po.metadata_url = uo.metadata_url;
  po.parallel = o_.parallel;
  po.have = [this](const std::string& name) { return served_metadata_.count(name) > 0; };  // mu_ is held
  po.make_fetcher = [this] { return MakeFetcher(); };
  PrefetchFetcher fetcher(WorkerFetcher(0), po);
  // The Updater's trusted store writes on its own thread and publishes each verified
  // targets role into DIR/metadata as it goes (mirror/trusted_store.h).
  TrustedStoreOptions to;
  to.trusted_dir = uo.metadata_dir;
  to.staging_dir = uo.target_dir;
  to.served = [this](const std::string& name) -> std::optional<std::string> {  // mu_ is held; read-only
    auto it = served_metadata_.find(name);
    if (it == served_metadata_.end() || !Fs().Exists(JoinPath(JoinPath(o_.data_dir, "metadata"), name))) return std::nullopt;
    return it->second;
  };
  // The pass's staging tree (DIR/.patchgate/staging/next, DIR's layout): every target and
  // targets role this pass verifies is put there, never into DIR, until the whole pass has
  // verified (Promote below). A pass that fails leaves its verified files there (each
  // matched the signed metadata that listed it; re-hashed before a later pass uses it) and
  // DIR exactly as it was.
  const std::string pass_dir = JoinPath(uo.target_dir, "next");
  // Anything already there was left by a pass that did not switch (or a crash): checked
  // before use. A fresh tree (the usual case) costs no look-up per file.
  const bool leftovers = Fs().Exists(pass_dir);
  PG_RETURN_IF_ERROR(Fs().MakeDirs(JoinPath(pass_dir, "metadata")));
  to.place = [pass_dir](const std::string& staged, const std::string& rel, const std::string&) -> Status {
    std::string dest = JoinPath(pass_dir, rel);
    if (::rename(staged.c_str(), dest.c_str()) != 0)
      return IOError("cannot move " + staged + " to " + dest + ": " + std::strerror(errno));
    return Status::OK();
  };
  TrustedStore trusted_fs(to);
  client::Updater u(uo, &fetcher, clock_, &trusted_fs);

  // Targets: a pipeline. The walk hands over each role's targets as soon as that role has
  // verified (Updater::VisitAllTargets), and `parallel` workers fetch them by hash while
  // the next roles are still being fetched and checked: on a repository of hundreds of
  // hashed bins the downloads do not wait for the last bin. Every target is checked
  // against the verified role that lists it, and written into the pass's staging tree
  // under its final name (no rename per file); nothing of the pass enters DIR until the
  // whole walk and every fetch succeeded (Promote). Each worker streams to its file
  // (bounded memory: no body is held), and resumes a partial file left by an earlier pass.
  struct Job {
    std::string rel;
    ExpectedFile e;
    tuf::TargetFile file;
    bool maybe_in_dir = false;  // its folder existed in DIR when the pass began
  };
  std::map<std::string, ExpectedFile> next;              // the walk's thread only
  std::map<std::string, std::vector<std::string>> next_role_rels;  // role -> its targets' rels
  std::unordered_map<std::string, std::string> first_rel_by_sha;  // one download per distinct content
  std::vector<std::pair<std::string, std::string>> dups;  // rel, the rel holding the same content
  std::map<std::string, bool> made_dirs;                   // folder rel -> it existed in DIR
  std::mutex q_mu;
  std::condition_variable q_cv;
  std::deque<Job> queue;
  bool walk_done = false;
  size_t queued = 0, listed = 0;
  // Rels put into the pass's tree: each worker's own list, gathered once they are done.
  std::vector<std::vector<std::string>> staged_by(static_cast<size_t>(o_.parallel) + 1);
  // Rels found under their name in DIR already, verified by hash (the watch learns them too).
  std::vector<std::vector<std::string>> found_by(static_cast<size_t>(o_.parallel) + 1);
  std::atomic<size_t> placed{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> failed{false};
  Status first_error;
  auto fail = [&](Status st) {
    std::lock_guard<std::mutex> el(q_mu);
    if (first_error.ok()) first_error = std::move(st);
    failed = true;
    q_cv.notify_all();
  };
  auto holds = [](const std::string& path, const ExpectedFile& e) {
    if (!SameSize(path, e.length)) return false;
    auto d = Sha256File(path);
    return d.ok() && d->sha256 == e.sha256 && d->length == e.length;
  };
  auto fetch_one = [&](client::Fetcher* f, const Job& j, std::vector<std::string>& staged,
                       std::vector<std::string>& found) -> Status {
    // Under its name in DIR already (left by a crash during an earlier switch, or a stray):
    // hashed before it counts.
    if (j.maybe_in_dir && holds(JoinPath(o_.data_dir, j.rel), j.e)) {
      found.push_back(j.rel);
      return Status::OK();
    }
    std::string dest = JoinPath(pass_dir, j.rel);
    if (leftovers) {
      // Left by a pass that did not switch: a complete file is hashed before it counts; a
      // shorter one is resumed (FetchTargetTo re-hashes it first); anything else goes.
      struct stat st {};
      if (::lstat(dest.c_str(), &st) == 0) {
        bool shorter = S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < j.e.length;
        if (!shorter && holds(dest, j.e)) {
          staged.push_back(j.rel);
          return Status::OK();
        }
        if (!shorter) ::unlink(dest.c_str());
      }
    }
    std::string url = o_.upstream + "/targets/" + client::TargetUrlPath(j.e.target_path, j.e.sha256, true);
    client::TargetFetchOptions fo;
    fo.resume = true;
    fo.fsync = false;      // one syncfs of DIR's file system before the switch
    fo.partial_path = dest;  // written in place in the private staging tree
    Status st = client::FetchTargetTo(f, url, j.e.target_path, j.file, dest, fo);
    // A 404 for a target the verified metadata lists (an upstream whose catalogue has not
    // caught up with its timestamp yet) is retried for a while before the pass gives up.
    for (int attempt = 0; st.code() == ErrorCode::kNotFound && attempt < kNotFoundRetries && !failed; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      st = client::FetchTargetTo(f, url, j.e.target_path, j.file, dest, fo);
    }
    if (st.ok()) {
      bytes += j.e.length;
      ++placed;
      staged.push_back(j.rel);
    }
    return st;
  };
  auto worker = [&](client::Fetcher* f, std::vector<std::string>* staged, std::vector<std::string>* found) {
    for (;;) {
      Job j;
      {
        std::unique_lock<std::mutex> l(q_mu);
        q_cv.wait(l, [&] { return failed.load() || !queue.empty() || walk_done; });
        if (failed || queue.empty()) return;
        j = std::move(queue.front());
        queue.pop_front();
      }
      if (Status st = fetch_one(f, j, *staged, *found); !st.ok()) return fail(st);
    }
  };
  auto visit = [&](std::vector<client::TargetInfo> batch) -> Status {
    std::vector<Job> add;
    add.reserve(batch.size());
    std::vector<std::string>* role_rels = nullptr;  // a batch is usually one role's
    const std::string* role_of_rels = nullptr;
    for (auto& t : batch) {
      auto sha = t.file.hashes.find("sha256");
      if (sha == t.file.hashes.end()) return Corrupt("target " + t.path + " has no sha256: a mirror stores targets by hash");
      std::string rel = "targets/" + tuf::ConsistentTargetName(t.path, sha->second);
      ++listed;
      auto [slot, inserted] = next.try_emplace(rel, ExpectedFile{sha->second, t.file.length, t.path});
      if (!inserted) continue;
      const ExpectedFile& e = slot->second;
      if (!role_of_rels || *role_of_rels != t.role) {
        role_rels = &next_role_rels[t.role];
        role_of_rels = &t.role;
      }
      role_rels->push_back(rel);
      auto known = expected_.empty() ? expected_.end() : expected_.find(rel);
      bool have = known != expected_.end() && known->second.sha256 == e.sha256 &&
                  SameSize(JoinPath(o_.data_dir, rel), e.length);
      auto [first, fresh] = first_rel_by_sha.emplace(e.sha256, rel);
      if (have) continue;  // verified earlier and watched since
      if (!fresh) {        // the same content under another name: linked once it is in place
        dups.emplace_back(rel, first->second);
        continue;
      }
      std::string dir = DirName(rel);
      auto made = made_dirs.find(dir);
      if (made == made_dirs.end()) {
        PG_RETURN_IF_ERROR(Fs().MakeDirs(JoinPath(pass_dir, dir)));
        made = made_dirs.emplace(dir, IsDirectory(JoinPath(o_.data_dir, dir))).first;
      }
      // Only what the download is checked against is queued (not the custom data: the
      // queue may hold every target of a first sync).
      tuf::TargetFile f;
      f.length = t.file.length;
      f.hashes = std::move(t.file.hashes);
      add.push_back(Job{std::move(rel), e, std::move(f), made->second});
    }
    std::lock_guard<std::mutex> l(q_mu);
    if (failed) return first_error;
    queued += add.size();
    for (auto& j : add) queue.push_back(std::move(j));
    q_cv.notify_all();
    return Status::OK();
  };

  int dfd = ::open(o_.data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return IOError("cannot open " + o_.data_dir + ": " + std::strerror(errno));
  struct DirFd {
    int fd;
    ~DirFd() { ::close(fd); }
  } dir_fd{dfd};
  // While the workers download, a flusher keeps writing what they fetched back to disk, so
  // the syncfs before the switch only waits for the last few files.
  std::atomic<bool> workers_done{false};
  std::mutex flush_mu;
  std::condition_variable flush_cv;
  std::vector<client::Fetcher*> worker_fetchers;
  for (int i = 1; i <= o_.parallel; ++i) worker_fetchers.push_back(WorkerFetcher(static_cast<size_t>(i)));
  std::thread flusher([&] {
    std::unique_lock<std::mutex> l(flush_mu);
    while (!workers_done) {
      l.unlock();
      if (placed.load() > 0) (void)::syncfs(dfd);  // errors are reported by the final syncfs
      l.lock();
      flush_cv.wait_for(l, std::chrono::milliseconds(200), [&] { return workers_done.load(); });
    }
  });
  std::vector<std::thread> threads;
  for (size_t i = 0; i < worker_fetchers.size(); ++i) threads.emplace_back(worker, worker_fetchers[i], &staged_by[i], &found_by[i]);
  // Roles the last good pass verified are reused when exactly as trusted (Updater::
  // VisitAllTargets); when only leaf roles changed (a publish touching one hash bin), only
  // they are fetched, verified and handed over.
  client::WalkStats walk;
  Status walked = u.VisitAllTargets(visit, walk_memory_.get(), &walk);
  if (auto v = u.TrustedSnapshotVersion()) upstream_version_ = *v;  // lag is known even if a fetch fails
  {
    std::lock_guard<std::mutex> l(q_mu);
    walk_done = true;
    if (!walked.ok()) failed = true;
    q_cv.notify_all();
  }
  if (walked.ok())
    log::Info("sync: metadata verified", {{"targets", std::to_string(listed)}, {"ms", ms()},
                                          {"roles_checked", std::to_string(walk.roles_checked)},
                                          {"roles_reused", std::to_string(walk.roles_reused)},
                                          {"incremental", walk.incremental ? "yes" : "no"},
                                          {"roles_prefetched", std::to_string(fetcher.served_from_prefetch())},
                                          {"targets_to_fetch", std::to_string(queued)},
                                          {"fetched_so_far", std::to_string(placed.load())}});
  for (auto& t : threads) t.join();
  const std::string workers_done_ms = ms();
  // Every rel put into the pass's tree (each once: one job per rel).
  std::vector<std::string> staged;
  {
    size_t n = 0;
    for (const auto& v : staged_by) n += v.size();
    staged.reserve(n + dups.size());
    for (auto& v : staged_by) {
      std::move(v.begin(), v.end(), std::back_inserter(staged));
      v = {};
    }
  }
  const std::string staged_ms = ms();
  // The same content under several names: hard links to the verified file (in the pass's
  // tree, or in DIR when the served snapshot holds it already).
  std::unordered_set<std::string> in_pass;
  if (!dups.empty()) in_pass.insert(staged.begin(), staged.end());
  for (size_t k = 0; walked.ok() && first_error.ok() && k < dups.size(); ++k) {
    const auto& [rel, from_rel] = dups[k];
    std::string from = in_pass.count(from_rel) ? JoinPath(pass_dir, from_rel) : JoinPath(o_.data_dir, from_rel);
    std::string to_path = JoinPath(pass_dir, rel);
    if (Status st = Fs().MakeDirs(DirName(to_path)); !st.ok()) {
      first_error = st;
      break;
    }
    ::unlink(to_path.c_str());
    if (::link(from.c_str(), to_path.c_str()) != 0)
      first_error = IOError("cannot link " + from_rel + ": " + std::strerror(errno));
    else
      staged.push_back(rel);
  }
  // The flusher stops now, but a syncfs it is in the middle of is not waited for here (it
  // can take long when the file system holds other writers' data): the final syncfs below
  // comes after it, and every exit joins it (stop_flusher).
  auto stop_flusher = [&] {
    {
      std::lock_guard<std::mutex> l(flush_mu);
      workers_done = true;
    }
    flush_cv.notify_all();
    if (flusher.joinable()) flusher.join();
  };
  struct JoinAtExit {
    std::function<void()> f;
    ~JoinAtExit() { f(); }
  } join_flusher{stop_flusher};
  {
    std::lock_guard<std::mutex> l(flush_mu);
    workers_done = true;
  }
  flush_cv.notify_all();
  if (!walked.ok()) return walked;
  if (!first_error.ok()) return first_error;
  if (walk.incremental) {
    // Only the changed roles were handed over: every other role's targets are those of the
    // served snapshot.
    std::map<std::string, ExpectedFile> all = expected_;
    for (const auto& role : walk.changed_roles) {
      if (auto old = role_rels_.find(role); old != role_rels_.end())
        for (const auto& rel : old->second) all.erase(rel);
      next_role_rels.try_emplace(role);
    }
    for (auto& [rel, e] : next) all.insert_or_assign(rel, std::move(e));
    next = std::move(all);
    for (const auto& [role, rels] : role_rels_) next_role_rels.try_emplace(role, rels);
  }
  size_t target_count = 0;
  for (const auto& [role, rels] : next_role_rels) target_count += rels.size();
  const std::string before_meta_ms = ms();
  // Views of the bytes the Updater holds (the Updater outlives every use below): no copy.
  std::map<std::string, std::string_view> meta = u.TrustedMetadataViews();
  int64_t version = u.TrustedSnapshotVersion().value_or(0);
  pass.upstream_snapshot_version = version;
  pass.targets_fetched = placed;
  pass.bytes_fetched = bytes;
  log::Info("sync: targets fetched and verified", {{"count", std::to_string(queued)}, {"ms", ms()},
                                                  {"workers_done_ms", workers_done_ms}, {"staged_ms", staged_ms},
                                                  {"before_meta_ms", before_meta_ms}});
  // The Updater's trusted state (rollback protection) is written, and every targets role
  // it verified is in the pass's tree.
  PG_RETURN_IF_ERROR(trusted_fs.Flush());
  const std::string flushed_ms = ms();
  // Every role is verified and every target of the new snapshot is present and verified:
  // the pass's files enter DIR (still named by no served timestamp.json).
  // The pass's tree: every staged target (each listed in `next`) and every verified targets
  // role the trusted store put there. Nothing is copied per target: `next` holds them.
  std::map<std::string, std::string> published = trusted_fs.TakePublished();
  std::vector<std::pair<std::string, ExpectedFile>> roles;
  for (const auto& [name, bytes_] : published)
    roles.emplace_back("metadata/" + name, ExpectedFile{Sha256Hex(bytes_), bytes_.size(), ""});
  if (on_place_)  // found in DIR already: the watch learns them
    for (const auto& v : found_by)
      for (const auto& rel : v) on_place_(rel, next.at(rel));
  PG_RETURN_IF_ERROR(Promote(pass_dir, staged, next, roles, leftovers));
  for (auto& [name, bytes_] : published) served_metadata_.insert_or_assign(name, std::move(bytes_));
  for (auto& [rel, e] : roles) next.insert_or_assign(rel, std::move(e));
  log::Info("sync: promoted", {{"files", std::to_string(staged.size() + roles.size())}, {"ms", ms()},
                               {"trusted_flushed_ms", flushed_ms}});

  // Metadata: every root version from 1, versioned files, then timestamp.json last.
  int64_t root_version = 0;
  for (const auto& [name, _] : meta)
    if (auto v = tuf::ParseVersionedMetadataName(name); v && v->role == "root") root_version = std::max(root_version, v->version);
  PG_RETURN_IF_ERROR(EnsureRootChain(meta, root_version));
  for (const auto& [name, bytes_] : meta) {
    if (name == "timestamp.json") continue;
    std::string path = JoinPath(JoinPath(o_.data_dir, "metadata"), name);
    if (served_metadata_.count(name) && Fs().Exists(path)) {
      if (served_metadata_[name] != bytes_)
        return Corrupt("upstream serves different bytes for the immutable " + name + "; keeping the last good snapshot");
      continue;
    }
    PG_RETURN_IF_ERROR(WriteMetadata(name, std::string(bytes_)));
  }
  // Every versioned file DIR holds, of this snapshot or an older one, stays expected (the
  // watch restores any of them from these verified bytes).
  for (const auto& [name, bytes_] : served_metadata_)
    if (name != "timestamp.json" && !next.count("metadata/" + name))
      next["metadata/" + name] = ExpectedFile{Sha256Hex(bytes_), bytes_.size(), ""};
  auto ts = meta.find("timestamp.json");
  if (ts == meta.end()) return Internal("the verified metadata has no timestamp");
  next["metadata/timestamp.json"] = ExpectedFile{Sha256Hex(ts->second), ts->second.size(), ""};

  // Durability before the switch: every target and metadata file of the new snapshot
  // reaches the disk (one syncfs of DIR's file system, not one fsync per file), then
  // timestamp.json is written (fsynced) and renamed. After a power cut DIR names only
  // files that were on disk; a crash before this point leaves the old snapshot served
  // and the verified files in place for the next pass (which finds them by hash).
  stop_flusher();
  if (::syncfs(dfd) != 0) return IOError("cannot sync the file system of " + o_.data_dir + ": " + std::strerror(errno));
  log::Info("sync: synced to disk", {{"ms", ms()}});
  expected_ = std::move(next);  // before the switch, so the watch knows every byte that is about to appear
  PG_RETURN_IF_ERROR(WriteMetadata("timestamp.json", std::string(ts->second)));
  PG_RETURN_IF_ERROR(Fs().SyncDir(JoinPath(o_.data_dir, "metadata")));
  last_timestamp_ = std::string(ts->second);
  served_version_ = version;
  // What this pass verified stands for the next one (the trusted copies are on disk since
  // trusted_fs.Flush() above).
  walk_memory_ = u.RememberWalk();
  role_rels_ = std::move(next_role_rels);
  ++generation_;
  pass.changed = true;
  pass.snapshot_version = version;
  log::Info("mirror switched to a new snapshot",
            {{"snapshot", std::to_string(version)}, {"targets", std::to_string(target_count)}, {"ms", ms()},
             {"fetched", std::to_string(pass.targets_fetched)}, {"bytes", std::to_string(pass.bytes_fetched)}});
  return pass;
}

// Older root versions DIR lacks (a mirror started from a later --root): each one must be
// the version it claims and must have signed its successor, down from the trusted one.
Status Syncer::EnsureRootChain(const std::map<std::string, std::string_view>& meta, int64_t top) {
  std::string mdir = JoinPath(o_.data_dir, "metadata");
  auto top_bytes = meta.find(std::to_string(top) + ".root.json");
  if (top_bytes == meta.end()) return Internal("no trusted root bytes");
  std::string newer(top_bytes->second);
  auto fetcher = MakeFetcher();
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

// A verified pass's files enter DIR: what earlier passes that did not switch left in the
// staging tree and this one does not name goes first, the watch learns every file, then the
// tree is merged into DIR by rename (a folder DIR lacks moves as one) and removed.
Status Syncer::Promote(const std::string& pass_dir, const std::vector<std::string>& targets,
                       const std::map<std::string, ExpectedFile>& listed,
                       const std::vector<std::pair<std::string, ExpectedFile>>& roles, bool leftovers) {
  if (leftovers) {
    std::unordered_set<std::string_view> keep(targets.begin(), targets.end());
    for (const auto& [rel, e] : roles) keep.insert(rel);
    std::vector<std::string> all;
    PG_RETURN_IF_ERROR(ListFiles(pass_dir, "", &all));
    for (const auto& rel : all)
      if (!keep.count(rel) && ::unlink(JoinPath(pass_dir, rel).c_str()) != 0)
        return IOError("cannot remove " + JoinPath(pass_dir, rel) + ": " + std::strerror(errno));
  }
  if (on_place_) {
    for (const auto& rel : targets) on_place_(rel, listed.at(rel));
    for (const auto& [rel, e] : roles) on_place_(rel, e);
  }
  PG_RETURN_IF_ERROR(MergeTree(JoinPath(pass_dir, "targets"), JoinPath(o_.data_dir, "targets")));
  PG_RETURN_IF_ERROR(MergeTree(JoinPath(pass_dir, "metadata"), JoinPath(o_.data_dir, "metadata")));
  return RemoveTree(pass_dir);
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
  auto fetcher = MakeFetcher();
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
