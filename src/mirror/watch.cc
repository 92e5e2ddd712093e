#include "mirror/watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <cstring>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "tuf/naming.h"

namespace patchgate::mirror {

namespace {

int64_t Now() { return SystemClock::Get().NowMicros(); }

constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                           IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;

// "<name>.tmp.<digits>": how FileSystem::WriteFileAtomic and the publisher stage a file.
bool IsTempName(std::string_view base) {
  auto pos = base.rfind(".tmp.");
  if (pos == std::string_view::npos || pos + 5 == base.size()) return false;
  for (char c : base.substr(pos + 5))
    if (c < '0' || c > '9') return false;
  return true;
}

// Hashes a file at most `rate` bytes per second (0: no cap), through one descriptor.
Result<FileDigest> HashLimited(const std::string& path, uint64_t rate, struct stat* st_out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return NotFound(path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Corrupt(path + " is not a regular file");
  }
  auto h = Hasher::Create("sha256");
  if (!h.ok()) {
    ::close(fd);
    return h.status();
  }
  // Allocated on first use: a thread_local array would be part of every thread's static
  // TLS block, zeroed at the start of every patchgate process and thread (32 page faults
  // in `patchgate incident scope` too, which never hashes a file).
  constexpr size_t kBuf = size_t{1} << 17;
  static thread_local std::unique_ptr<char[]> buf_owner;
  if (!buf_owner) buf_owner = std::make_unique_for_overwrite<char[]>(kBuf);
  char* const buf = buf_owner.get();
  uint64_t total = 0;
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    ssize_t n = ::read(fd, buf, kBuf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return IOError("cannot read " + path);
    }
    if (n == 0) break;
    h->Update(buf, static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
    if (rate > 0) {
      auto due = start + std::chrono::microseconds(total * 1'000'000 / rate);
      if (due > std::chrono::steady_clock::now()) std::this_thread::sleep_until(due);
    }
  }
  ::close(fd);
  if (st_out) *st_out = st;
  return FileDigest{h->FinalHex(), total};
}

int64_t Ns(const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; }

}  // namespace

Watch::Watch(WatchOptions o, WatchHooks h) : o_(std::move(o)), h_(std::move(h)) {}

Watch::~Watch() { Stop(); }

void Watch::Expect(const std::string& rel, const ExpectedFile& e) {
  std::lock_guard<std::mutex> l(mu_);
  Known& k = known_[rel];
  k.e = e;
  k.ino = -1;  // identity unknown until the next check hashes it
  k.last_good = Now();
}

WatchStatus Watch::status() const {
  WatchStatus s;
  s.alive = alive_.load();
  s.last_full_verify_at = last_full_at_.load();
  s.last_full_verify_ok = last_full_ok_.load();
  s.quarantine_pending = pending_.load();
  s.incidents_opened = incidents_.load();
  return s;
}

Status Watch::Start() {
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [rel, e] : h_.expected()) known_[rel].e = e;
  }
  ifd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ifd_ < 0) return Unavailable(std::string("inotify: ") + std::strerror(errno) +
                                   " (raise fs.inotify.max_user_instances, or run without --watch)");
  AddWatches("metadata");
  AddWatches("targets");
  FullVerify();  // the first full verification; violations found are handled at once
  alive_ = true;
  events_ = std::thread([this] { EventLoop(); });
  verifier_ = std::thread([this] { VerifyLoop(); });
  log::Info("integrity watch started", {{"node", o_.node}, {"files", std::to_string(known_.size())}});
  return Status::OK();
}

void Watch::Stop() {
  if (stop_.exchange(true)) return;
  wake_.notify_all();
  if (events_.joinable()) events_.join();
  if (verifier_.joinable()) verifier_.join();
  if (ifd_ >= 0) ::close(ifd_);
  ifd_ = -1;
  alive_ = false;
}

void Watch::AddWatches(const std::string& rel_dir) {
  std::string abs = JoinPath(o_.dir, rel_dir);
  int wd = ::inotify_add_watch(ifd_, abs.c_str(), kMask | IN_ONLYDIR);
  if (wd < 0) {
    log::Warn("cannot watch a directory", {{"dir", abs}, {"error", std::strerror(errno)}});
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    wd_dirs_[wd] = rel_dir;
  }
  DIR* d = ::opendir(abs.c_str());
  if (!d) return;
  std::vector<std::string> subdirs;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st {};
    if (::lstat(JoinPath(abs, n).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) subdirs.push_back(n);
  }
  ::closedir(d);
  for (const auto& s : subdirs) AddWatches(rel_dir + "/" + s);
}

int64_t Watch::GraceMicros(const std::string& rel) const {
  int64_t grace = int64_t{o_.unknown_grace_ms} * 1000;
  // A publisher's temporary file ("<name>.tmp.<pid>", renamed into place when complete)
  // gets longer than any other unexpected file.
  if (IsTempName(rel.substr(rel.find_last_of('/') + 1))) grace = std::max<int64_t>(grace, int64_t{60} * 1'000'000);
  return grace;
}

void Watch::Check(const std::string& rel, bool hash_always, std::vector<Violation>* out) {
  std::string abs = JoinPath(o_.dir, rel);
  struct stat st {};
  bool exists = ::lstat(abs.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return;
  std::unique_lock<std::mutex> l(mu_);
  auto it = known_.find(rel);
  if (it == known_.end()) {
    if (!exists) {
      unknown_since_.erase(rel);
      return;
    }
    l.unlock();
    if (IsTempName(rel.substr(rel.find_last_of('/') + 1))) {
      // Being written by a publisher: judged only if it is still there when its grace ends.
      std::lock_guard<std::mutex> l2(mu_);
      auto [u, inserted] = unknown_since_.try_emplace(rel, Now());
      int64_t since = u->second;
      if (Now() - since < GraceMicros(rel)) return;
      unknown_since_.erase(u);
      out->push_back(Violation{rel, "added", "", since, ""});
      return;
    }
    // A target named by its own hash that hashes to it is harmless (no signed metadata
    // need list it); anything else must be expected once the grace is over.
    std::optional<tuf::ParsedTargetName> named;
    if (rel.rfind("targets/", 0) == 0) named = tuf::ParseConsistentTargetName(std::string_view(rel).substr(8));
    if (named && named->hash_hex.size() == 64) {  // a sha256 name: what this watch can check
      struct stat hs {};
      auto d = HashLimited(abs, 0, &hs);
      if (d.ok() && d->sha256 == named->hash_hex) {
        std::lock_guard<std::mutex> l2(mu_);
        Known& k = known_[rel];
        k.e = ExpectedFile{d->sha256, d->length, ""};
        k.last_good = Now();
        k.ino = hs.st_ino, k.size = hs.st_size, k.mtime_ns = Ns(hs.st_mtim), k.ctime_ns = Ns(hs.st_ctim);
        unknown_since_.erase(rel);
        return;
      }
    }
    auto fresh = h_.expected();
    auto f = fresh.find(rel);
    if (f != fresh.end()) {
      struct stat hs {};
      auto d = HashLimited(abs, 0, &hs);
      if (d.ok() && d->sha256 == f->second.sha256 && d->length == f->second.length) {
        std::lock_guard<std::mutex> l2(mu_);
        Known& k = known_[rel];
        k.e = f->second;
        k.last_good = Now();
        k.ino = hs.st_ino, k.size = hs.st_size, k.mtime_ns = Ns(hs.st_mtim), k.ctime_ns = Ns(hs.st_ctim);
        unknown_since_.erase(rel);
        return;
      }
    }
    std::lock_guard<std::mutex> l2(mu_);
    auto [u, inserted] = unknown_since_.try_emplace(rel, Now());
    int64_t since = u->second;
    if (Now() - since < GraceMicros(rel)) return;  // re-checked later
    unknown_since_.erase(u);
    out->push_back(Violation{rel, "added", "", since, ""});
    return;
  }
  Known k = it->second;
  if (!exists) {
    out->push_back(Violation{rel, "removed", "", k.last_good, k.e.target_path});
    return;
  }
  if (!hash_always && k.ino == static_cast<int64_t>(st.st_ino) && k.size == st.st_size &&
      k.mtime_ns == Ns(st.st_mtim) && k.ctime_ns == Ns(st.st_ctim))
    return;  // the very bytes verified before
  l.unlock();
  struct stat hs {};
  auto d = HashLimited(abs, hash_always ? o_.verify_bytes_per_second : 0, &hs);
  if (d.ok() && d->sha256 == k.e.sha256 && d->length == k.e.length) {
    std::lock_guard<std::mutex> l2(mu_);
    auto again = known_.find(rel);
    if (again != known_.end()) {
      again->second.last_good = Now();
      again->second.ino = hs.st_ino, again->second.size = hs.st_size;
      again->second.mtime_ns = Ns(hs.st_mtim), again->second.ctime_ns = Ns(hs.st_ctim);
    }
    return;
  }
  if (!d.ok() && d.status().code() == ErrorCode::kNotFound) {
    out->push_back(Violation{rel, "removed", "", k.last_good, k.e.target_path});
    return;
  }
  if (d.ok()) {
    // A legitimate new version (the origin publishing a new timestamp.json, a mirror's
    // switch) is what `expected` now lists; anything else is a violation.
    auto fresh = h_.expected();
    auto f = fresh.find(rel);
    if (f != fresh.end() && f->second.sha256 == d->sha256 && f->second.length == d->length) {
      std::lock_guard<std::mutex> l2(mu_);
      Known& nk = known_[rel];
      nk.e = f->second;
      nk.last_good = Now();
      nk.ino = hs.st_ino, nk.size = hs.st_size, nk.mtime_ns = Ns(hs.st_mtim), nk.ctime_ns = Ns(hs.st_ctim);
      return;
    }
  }
  out->push_back(Violation{rel, "changed", d.ok() ? d->sha256 : "unreadable", k.last_good, k.e.target_path});
}

void Watch::Respond(std::vector<Violation> v) {
  if (v.empty()) return;
  std::lock_guard<std::mutex> serial(respond_mu_);
  int64_t detected = Now();
  std::string qdir = JoinPath(JoinPath(o_.dir, ".patchgate"), "quarantine");
  (void)RealFileSystem::Get().MakeDirs(qdir);
  Incident inc;
  inc.node = o_.node;
  inc.cause = "integrity";
  inc.detected_at = detected;
  inc.window_start = detected;
  inc.window_end = detected;
  for (const auto& x : v) {
    if (x.what != "removed") {
      std::string flat = x.rel;
      for (char& c : flat)
        if (c == '/') c = '_';
      std::string dest = JoinPath(qdir, std::to_string(detected) + "-" + flat);
      if (::rename(JoinPath(o_.dir, x.rel).c_str(), dest.c_str()) != 0 && errno != ENOENT)
        log::Error("cannot quarantine a file; removing it", {{"file", x.rel}, {"error", std::strerror(errno)}});
      ::unlink(JoinPath(o_.dir, x.rel).c_str());
    }
    log::Error("integrity violation: file quarantined",
               {{"node", o_.node}, {"file", x.rel}, {"change", x.what}, {"actual_sha256", x.actual_sha256}});
    std::lock_guard<std::mutex> l(mu_);
    if (x.what == "added") {
      known_.erase(x.rel);
    } else {
      ++pending_;
    }
    if (x.last_good > 0) inc.window_start = std::min(inc.window_start, x.last_good);
    inc.targets.push_back(x.target_path.empty() ? x.rel : x.target_path);
  }
  if (h_.store) {
    auto id = h_.store->CreateIncident(inc);
    if (id.ok()) {
      ++incidents_;
      log::Error("incident opened", {{"id", std::to_string(*id)}, {"node", o_.node}, {"cause", "integrity"},
                                     {"files", std::to_string(inc.targets.size())}});
    } else {
      log::Error("could not open the integrity incident", {{"error", id.status().ToString()}});
    }
    for (const auto& x : v)
      if (!x.target_path.empty())
        (void)h_.store->QuarantineTargetOnNode(o_.node, x.target_path, "", x.actual_sha256, detected);
  }
  for (const auto& x : v) {
    if (x.what == "added" || !h_.restore) continue;
    Status st = h_.restore(x.rel);
    if (st.ok()) {
      --pending_;
      log::Info("file restored from upstream, verified", {{"node", o_.node}, {"file", x.rel}});
    } else {
      log::Error("could not restore a quarantined file", {{"file", x.rel}, {"error", st.ToString()}});
    }
  }
}

void Watch::EventLoop() {
  alignas(inotify_event) char buf[64 * 1024];
  std::map<std::string, int64_t> dirty;  // rel -> last event time
  while (!stop_) {
    pollfd p{ifd_, POLLIN, 0};
    bool waiting_unknown;
    {
      std::lock_guard<std::mutex> l(mu_);
      waiting_unknown = !unknown_since_.empty();
    }
    int r = ::poll(&p, 1, dirty.empty() && !waiting_unknown ? 200 : 10);
    bool overflow = false;
    if (r > 0) {
      for (;;) {
        ssize_t n = ::read(ifd_, buf, sizeof buf);
        if (n <= 0) break;
        for (char* q = buf; q < buf + n;) {
          auto* ev = reinterpret_cast<inotify_event*>(q);
          q += sizeof(inotify_event) + ev->len;
          if (ev->mask & IN_Q_OVERFLOW) {
            overflow = true;
            continue;
          }
          std::string dir;
          {
            std::lock_guard<std::mutex> l(mu_);
            auto it = wd_dirs_.find(ev->wd);
            if (it == wd_dirs_.end()) continue;
            dir = it->second;
            if (ev->mask & IN_IGNORED) wd_dirs_.erase(it);
          }
          if (ev->len == 0) continue;
          std::string rel = dir + "/" + ev->name;
          if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
            AddWatches(rel);
            // Files may have landed before the watch: look at them.
            DIR* d = ::opendir(JoinPath(o_.dir, rel).c_str());
            if (d) {
              while (dirent* e = ::readdir(d))
                if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
                  dirty[rel + "/" + e->d_name] = Now();
              ::closedir(d);
            }
            continue;
          }
          if (ev->mask & IN_ISDIR) continue;
          dirty[rel] = Now();
        }
      }
    }
    if (overflow) {
      full_verify_now_ = true;
      wake_.notify_all();
    }
    std::vector<Violation> found;
    int64_t now = Now();
    for (auto it = dirty.begin(); it != dirty.end();) {
      // A few ms of quiet lets a writer finish; a changed byte is caught either way.
      if (now - it->second < 5'000) {
        ++it;
        continue;
      }
      Check(it->first, false, &found);
      it = dirty.erase(it);
    }
    std::vector<std::string> waiting;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [rel, since] : unknown_since_)
        if (now - since >= GraceMicros(rel)) waiting.push_back(rel);
    }
    for (const auto& rel : waiting) Check(rel, false, &found);
    Respond(std::move(found));
  }
}

bool Watch::FullVerify() {
  std::vector<std::string> rels;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [rel, _] : known_) rels.push_back(rel);
  }
  // Files nobody expects (added while no event could tell).
  std::vector<std::string> stack{"metadata", "targets"};
  std::set<std::string> known_set(rels.begin(), rels.end());
  while (!stack.empty()) {
    std::string rel_dir = stack.back();
    stack.pop_back();
    DIR* d = ::opendir(JoinPath(o_.dir, rel_dir).c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string rel = rel_dir + "/" + n;
      struct stat st {};
      if (::lstat(JoinPath(o_.dir, rel).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) stack.push_back(rel);
      else if (!known_set.count(rel)) rels.push_back(rel);
    }
    ::closedir(d);
  }
  std::vector<Violation> found;
  for (const auto& rel : rels) {
    if (stop_) return false;
    Check(rel, true, &found);
  }
  bool ok = found.empty();
  last_full_at_ = Now();
  last_full_ok_ = ok;
  Respond(std::move(found));
  return ok;
}

void Watch::VerifyLoop() {
  auto next = std::chrono::steady_clock::now() + std::chrono::seconds(o_.verify_interval_seconds);
  while (!stop_) {
    {
      std::unique_lock<std::mutex> l(wake_mu_);
      wake_.wait_until(l, next, [&] { return stop_.load() || full_verify_now_.load(); });
    }
    if (stop_) break;
    full_verify_now_ = false;
    bool ok = FullVerify();
    log::Info("full verification done", {{"node", o_.node}, {"ok", ok ? "yes" : "no"}});
    next = std::chrono::steady_clock::now() + std::chrono::seconds(o_.verify_interval_seconds);
  }
}

}  // namespace patchgate::mirror
