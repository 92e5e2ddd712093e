#include "mirror/trusted_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tuf/metadata.h"
#include "tuf/naming.h"

namespace patchgate::mirror {

namespace {

std::string BaseName(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

bool IsRollbackState(const std::string& base) {
  return base == "root.json" || base == "timestamp.json" || base == "snapshot.json";
}

// tmp + rename, fsynced (file and directory) only when asked.
Status WriteAtomic(const std::string& path, std::string_view data, bool sync) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IOError("cannot create " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return IOError("cannot write " + tmp + ": " + std::strerror(e));
    }
    off += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return IOError("cannot fsync " + tmp + ": " + std::strerror(e));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return IOError("cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
  if (sync) return RealFileSystem::Get().SyncDir(DirName(path));
  return Status::OK();
}

}  // namespace

TrustedStore::TrustedStore(TrustedStoreOptions options)
    : ForwardingFileSystem(&RealFileSystem::Get()), o_(std::move(options)) {
  writer_ = std::thread([this] { Run(); });
}

TrustedStore::~TrustedStore() {
  (void)Flush();
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

Status TrustedStore::WriteFileAtomic(const std::string& path, std::string_view data) {
  std::lock_guard<std::mutex> l(mu_);
  pending_[path] = std::string(data);
  queue_.emplace_back(path, std::string(data));
  cv_.notify_all();
  return Status::OK();
}

Result<std::string> TrustedStore::ReadFile(const std::string& path, uint64_t max_bytes) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pending_.find(path);
    if (it != pending_.end()) {
      if (it->second.size() > max_bytes) return Status(ErrorCode::kTooLarge, path + " is over " + std::to_string(max_bytes) + " bytes");
      return it->second;
    }
  }
  return target_->ReadFile(path, max_bytes);
}

Status TrustedStore::Flush() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return queue_.empty() && in_flight_ == 0; });
  return first_error_;
}

void TrustedStore::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_
    auto [path, bytes] = std::move(queue_.front());
    queue_.pop_front();
    ++in_flight_;
    l.unlock();
    Status st = WriteOne(path, bytes);
    l.lock();
    --in_flight_;
    if (!st.ok() && first_error_.ok()) first_error_ = st;
    // The newest queued bytes stay readable until they are on disk.
    if (auto it = pending_.find(path); it != pending_.end() && it->second == bytes &&
                                       std::none_of(queue_.begin(), queue_.end(), [&](const auto& q) { return q.first == path; }))
      pending_.erase(it);
    cv_.notify_all();
  }
}

Status TrustedStore::WriteOne(const std::string& path, const std::string& bytes) {
  std::string base = BaseName(path);
  PG_RETURN_IF_ERROR(WriteAtomic(path, bytes, IsRollbackState(base)));
  if (base == "snapshot.json") {
    // Verified bytes (the Updater writes nothing else): the versions every targets role
    // must have, which name their files in DIR.
    auto env = tuf::Envelope::Parse(bytes, tuf::kMaxSnapshotBytes);
    if (!env.ok()) return env.status().WithContext("trusted snapshot");
    auto snap = tuf::Snapshot::FromSigned(env->signed_json);
    if (!snap.ok()) return snap.status().WithContext("trusted snapshot");
    versions_.clear();
    for (const auto& [file, meta] : snap->meta) {
      constexpr std::string_view kJson = ".json";
      if (file.size() <= kJson.size() || file.compare(file.size() - kJson.size(), kJson.size(), kJson) != 0) continue;
      versions_[tuf::MetadataName(file.substr(0, file.size() - kJson.size()))] = meta.version;
    }
    return Status::OK();
  }
  if (IsRollbackState(base)) return Status::OK();
  auto v = versions_.find(base);
  if (v == versions_.end()) return Status::OK();  // not a role of this snapshot: the Syncer writes what it needs
  std::string name = std::to_string(v->second) + "." + base;
  if (auto served = o_.served ? o_.served(name) : std::nullopt) {
    if (*served != bytes)
      return Corrupt("upstream serves different bytes for the immutable " + name + "; keeping the last good snapshot");
    return Status::OK();
  }
  std::string staged = JoinPath(o_.staging_dir, "meta." + name);
  PG_RETURN_IF_ERROR(WriteAtomic(staged, bytes, false));
  PG_RETURN_IF_ERROR(o_.place(staged, "metadata/" + name, bytes));
  published_[name] = bytes;
  return Status::OK();
}

}  // namespace patchgate::mirror
