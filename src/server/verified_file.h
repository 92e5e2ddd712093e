// Serve-time verification of target files, and reads that are checked before they leave.
//
// When a file is first served (or after its device/inode/size/mtime/ctime changed) it is
// read once: its whole SHA-256 (compared by the caller with the signed hash) and one
// SHA-256 per kChunkSize chunk are taken and cached. Every later read for a response goes
// through CheckedReader, which reads whole chunks into memory, checks each against its
// cached digest and only then hands out the bytes (hash-while-send): a byte changed on
// disk after verification - by anyone, root included, mid-download or not - is never
// handed out, whatever the cache key says.
//
// Files with Linux fs-verity enabled are read through the kernel's Merkle-tree check and
// cannot change; for those the mode is kFsVerity and the caller may sendfile(2) them.
// Thread-safe.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/status.h"
#include "server/metrics.h"

namespace patchgate::server {

enum class ServeMode { kChunkDigests, kFsVerity };
std::string_view ServeModeName(ServeMode m);  // "chunk-digest" | "fs-verity"

struct FileVerification {
  std::string sha256;  // of the whole file as read at verification, lower-case hex
  uint64_t length = 0;
  ServeMode mode = ServeMode::kChunkDigests;
  size_t chunk_size = 0;
  std::vector<std::array<unsigned char, 32>> chunks;  // kChunkDigests only
};

// fs-verity on the file behind `fd` (statx STATX_ATTR_VERITY).
bool HasFsVerity(int fd);

class VerifyCache {
 public:
  static constexpr size_t kChunkSize = 256 * 1024;
  explicit VerifyCache(size_t chunk_size = kChunkSize) : chunk_size_(chunk_size) {}
  // The verification of the file behind `fd` as of `st` (its fstat), reading it through
  // that fd on a miss. kUnavailable if it changed while being read.
  Result<std::shared_ptr<const FileVerification>> Verify(int fd, const struct stat& st, Metrics* m);

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns, ctime_ns;
    bool operator<(const Key& o) const {
      return std::tie(dev, ino, size, mtime_ns, ctime_ns) < std::tie(o.dev, o.ino, o.size, o.mtime_ns, o.ctime_ns);
    }
  };
  static Key KeyOf(const struct stat& st);
  size_t chunk_size_;
  std::mutex mu_;
  std::map<Key, std::shared_ptr<const FileVerification>> cache_;
};

// Reads [first, last] of a verified file, chunk by chunk, each chunk checked against its
// digest before any of its bytes are returned. Not thread-safe (one per response).
class CheckedReader {
 public:
  CheckedReader(int fd, std::shared_ptr<const FileVerification> v, uint64_t first, uint64_t last);
  bool done() const { return next_ >= end_; }
  // The next verified slice (at most one chunk), or kCorrupt naming the chunk whose bytes
  // no longer match (nothing of that chunk is returned), or kIOError.
  Result<std::string_view> Next();
  uint64_t offset() const { return next_; }  // of the next byte to be returned

 private:
  int fd_;
  std::shared_ptr<const FileVerification> v_;
  uint64_t next_, end_;  // [next_, end_)
  std::string buf_;
};

}  // namespace patchgate::server
