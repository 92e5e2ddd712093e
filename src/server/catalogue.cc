#include "server/catalogue.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "core/fs.h"
#include "core/log.h"
#include "tuf/naming.h"

namespace patchgate::server {

Catalogue::~Catalogue() {
  stop_ = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    wake_.notify_all();
  }
  if (loader_.joinable()) loader_.join();
}

namespace {

// timestamp.json's bytes through one descriptor, with the identity (device, inode, size,
// mtime, ctime) they were read under.
Result<std::shared_ptr<const MetadataFile>> ReadTimestamp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Unavailable("cannot open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Unavailable(path + " is not a regular file");
  }
  MetadataFiles once;
  auto m = once.Load(fd, st, "timestamp.json");
  ::close(fd);
  return m;
}

// The catalogue keyed as requests name its files: the consistent-snapshot name on disk. An
// entry shares the ownership of its role's list (which the next load reuses when the role
// is unchanged): no copy of the entries.
std::shared_ptr<std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>> IndexByServedName(
    const std::vector<tuf::CatalogueLoader::RoleEntries>& roles) {
  auto map = std::make_shared<std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>>();
  for (const auto& role : roles)
    for (const auto& e : *role)
      (*map)[tuf::ConsistentTargetName(e.path, e.sha256)] = std::shared_ptr<const tuf::CatalogueEntry>(role, &e);
  return map;
}

}  // namespace

Status Catalogue::LoadConsistent() {
  std::string ts = JoinPath(JoinPath(dir_, "metadata"), "timestamp.json");
  PG_ASSIGN_OR_RETURN(std::shared_ptr<const MetadataFile> before, ReadTimestamp(ts));
  {
    std::lock_guard<std::mutex> l(mu_);
    if (timestamp_ && timestamp_->key == before->key) return Status::OK();  // unchanged
  }
  size_t roles_read = 0;
  auto entries = Load(&roles_read);
  if (!entries.ok()) return entries.status();
  // The load read timestamp.json by its path: the bytes kept are those only if the file is
  // still the one read before (a publisher replaces it by rename); else the next round.
  struct stat after {};
  if (::stat(ts.c_str(), &after) != 0 || MetadataFiles::KeyOf(after) != before->key)
    return Unavailable("timestamp.json changed while the catalogue was loaded; loading again");
  auto map = IndexByServedName(*entries);
  std::lock_guard<std::mutex> l(mu_);
  entries_ = std::move(map);
  timestamp_ = std::move(before);
  loaded_mtime_ns_ = std::get<3>(timestamp_->key);
  loaded_ino_ = static_cast<int64_t>(std::get<1>(timestamp_->key));
  log::Info("catalogue loaded", {{"targets", std::to_string(entries_->size())}, {"off_request_path", "yes"},
                                 {"roles_read", std::to_string(roles_read)}});
  return Status::OK();
}

Result<std::vector<tuf::CatalogueLoader::RoleEntries>> Catalogue::Load(size_t* roles_read) {
  std::lock_guard<std::mutex> l(walker_mu_);
  auto r = walker_.Load();
  *roles_read = walker_.roles_read();
  return r;
}

Status Catalogue::StartBackground() {
  Status st = LoadConsistent();
  {
    std::lock_guard<std::mutex> l(mu_);
    last_load_ = st;
  }
  if (!st.ok()) return st;
  background_ = true;
  loader_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void Catalogue::Loop() {
  std::string ts = JoinPath(JoinPath(dir_, "metadata"), "timestamp.json");
  while (!stop_) {
    bool expired = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      wake_.wait_for(l, std::chrono::milliseconds(kPollMs), [&] { return stop_.load() || expired_; });
      std::swap(expired, expired_);
    }
    if (stop_) return;
    struct stat st {};
    if (::stat(ts.c_str(), &st) != 0) continue;
    auto key = MetadataFiles::KeyOf(st);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (timestamp_ && timestamp_->key == key) continue;
    }
    if (key == failed_key_ && !expired) continue;  // a file that did not load: tried again once it changes
    Status s = LoadConsistent();
    failed_key_ = s.ok() ? MetadataFile::Key{} : key;
    if (!s.ok()) log::Warn("catalogue reload failed; serving the last good one", {{"error", s.ToString()}});
    std::lock_guard<std::mutex> l(mu_);
    last_load_ = s;
  }
}

std::shared_ptr<const MetadataFile> Catalogue::Timestamp() const {
  std::lock_guard<std::mutex> l(mu_);
  return timestamp_;
}

bool Catalogue::CurrentWithoutLoading() {
  if (background_) return true;
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded_mtime_ns_ < 0 || loading_) return false;
    if (now_ms - last_check_ms_ < 500) return true;
  }
  struct stat st {};
  std::string ts = JoinPath(JoinPath(dir_, "metadata"), "timestamp.json");
  if (::stat(ts.c_str(), &st) != 0) return false;
  int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  std::lock_guard<std::mutex> l(mu_);
  if (mtime != loaded_mtime_ns_ || static_cast<int64_t>(st.st_ino) != loaded_ino_) return false;
  last_check_ms_ = now_ms;
  return true;
}

Status Catalogue::Refresh() {
  if (background_) {
    std::lock_guard<std::mutex> l(mu_);
    return last_load_;
  }
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded_mtime_ns_ >= 0 && !loading_ && now_ms - last_check_ms_ < 500) return Status::OK();
  }
  // Single flight: one caller checks and loads; the others wait for its result instead of
  // answering from the catalogue it is replacing (a new target would be a 404 meanwhile).
  std::lock_guard<std::mutex> load(load_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded_mtime_ns_ >= 0 && now_ms - last_check_ms_ < 500) return Status::OK();  // loaded while we waited
    last_check_ms_ = now_ms;
    loading_ = true;
  }
  struct Done {
    Catalogue* c;
    ~Done() {
      std::lock_guard<std::mutex> l(c->mu_);
      c->loading_ = false;
    }
  } done{this};
  struct stat st {};
  std::string ts = JoinPath(JoinPath(dir_, "metadata"), "timestamp.json");
  if (::stat(ts.c_str(), &st) != 0) return Unavailable("no repository at " + dir_ + " (missing metadata/timestamp.json)");
  int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (mtime == loaded_mtime_ns_ && static_cast<int64_t>(st.st_ino) == loaded_ino_) return Status::OK();
  }
  size_t roles_read = 0;
  auto entries = Load(&roles_read);
  if (!entries.ok()) return entries.status();
  auto map = IndexByServedName(*entries);
  std::lock_guard<std::mutex> l(mu_);
  entries_ = std::move(map);
  loaded_mtime_ns_ = mtime;
  loaded_ino_ = static_cast<int64_t>(st.st_ino);
  log::Info("catalogue loaded", {{"targets", std::to_string(entries_->size())}, {"roles_read", std::to_string(roles_read)}});
  return Status::OK();
}

std::shared_ptr<const tuf::CatalogueEntry> Catalogue::Find(const std::string& rel) const {
  std::shared_ptr<const std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>> e;
  {
    std::lock_guard<std::mutex> l(mu_);
    e = entries_;
  }
  auto it = e->find(rel);
  return it == e->end() ? nullptr : it->second;
}

void Catalogue::Expire() {
  std::lock_guard<std::mutex> l(mu_);
  last_check_ms_ = 0;
  expired_ = true;
  wake_.notify_all();
}

size_t Catalogue::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return entries_->size();
}

}  // namespace patchgate::server
