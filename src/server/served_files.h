// Files of the served tree: opened beneath the repository without following any link, and
// metadata files held in memory with their ETag. Thread-safe.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "core/status.h"

namespace patchgate::server {

// Opens `rel` (relative, no "..") beneath the directory `dir_fd` without following any
// symbolic link (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a link planted in the
// served tree (metadata/tk.json -> ../keys/timestamp.key.json) is never served. -1 with
// errno (ELOOP for a link) on failure.
int OpenBeneath(int dir_fd, const std::string& rel);

// The identity (stat) of the regular file at `rel` beneath `dir_fd`, in one system call
// and without opening it; false if there is none or it is not a regular file (a link as
// the last component included). A link among the directories is followed, so this is only
// for checking that a file opened earlier through OpenBeneath (its identity kept with what
// was read or verified from it) is still the one at that path: an equal device and inode
// is that same file, wherever the path led.
bool StatForCacheCheck(int dir_fd, const std::string& rel, struct stat* st);

// A metadata file as last read. The ETag is the SHA-256 of exactly these bytes.
struct MetadataFile {
  using Key = std::tuple<dev_t, ino_t, off_t, int64_t, int64_t>;  // device, inode, size, mtime, ctime
  Key key;
  std::shared_ptr<const std::string> bytes;
  std::string etag;  // in quotes
};

// Metadata files by name, reused while the file's identity (device, inode, size, mtime,
// ctime) is unchanged; read again otherwise.
class MetadataFiles {
 public:
  static constexpr size_t kMaxInMemory = 64 << 20;
  static MetadataFile::Key KeyOf(const struct stat& st);
  // What is held for `name` if `st` still describes it; null otherwise (no read: for the
  // event loop).
  std::shared_ptr<const MetadataFile> Cached(const struct stat& st, const std::string& name);
  // Cached(), else reads the file through `fd` (kUnavailable if it changed meanwhile).
  Result<std::shared_ptr<const MetadataFile>> Load(int fd, const struct stat& st, const std::string& name);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const MetadataFile>> files_;
};

}  // namespace patchgate::server
