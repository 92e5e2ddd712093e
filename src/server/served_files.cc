#include "server/served_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "crypto/hash.h"

namespace patchgate::server {

int OpenBeneath(int dir_fd, const std::string& rel) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof how));
  if (fd >= 0 || errno != ENOSYS) return fd;
  // Kernels before 5.6: refuse a link anywhere on the (short, already normalised) path.
  std::string sofar;
  size_t start = 0;
  for (;;) {
    size_t slash = rel.find('/', start);
    sofar = rel.substr(0, slash);
    struct stat st {};
    if (::fstatat(dir_fd, sofar.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -1;
    if (S_ISLNK(st.st_mode)) {
      errno = ELOOP;
      return -1;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return ::openat(dir_fd, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

bool StatForCacheCheck(int dir_fd, const std::string& rel, struct stat* st) {
  return ::fstatat(dir_fd, rel.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st->st_mode);
}

MetadataFile::Key MetadataFiles::KeyOf(const struct stat& st) {
  return std::make_tuple(st.st_dev, st.st_ino, st.st_size, int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                         int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec);
}

std::shared_ptr<const MetadataFile> MetadataFiles::Cached(const struct stat& st, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(name);
  if (it != files_.end() && it->second->key == KeyOf(st)) return it->second;
  return nullptr;
}

Result<std::shared_ptr<const MetadataFile>> MetadataFiles::Load(int fd, const struct stat& st, const std::string& name) {
  if (auto m = Cached(st, name)) return m;
  if (static_cast<uint64_t>(st.st_size) > kMaxInMemory) return TooLarge("metadata file too large to serve");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t r = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Unavailable("metadata file changed while it was read");
    got += static_cast<size_t>(r);
  }
  struct stat after {};
  if (::fstat(fd, &after) != 0 || KeyOf(after) != KeyOf(st)) return Unavailable("metadata file changed while it was read");
  auto m = std::make_shared<MetadataFile>();
  m->key = KeyOf(st);
  m->etag = "\"" + Sha256Hex(bytes) + "\"";
  m->bytes = std::make_shared<const std::string>(std::move(bytes));
  std::lock_guard<std::mutex> l(mu_);
  if (files_.size() > 10000) files_.clear();
  files_[name] = m;
  return std::shared_ptr<const MetadataFile>(std::move(m));
}

}  // namespace patchgate::server
