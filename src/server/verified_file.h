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
// Small files (up to max_cached_file bytes) also keep the bytes that were hashed, in memory
// (least recently used dropped past a total budget): those bytes are exactly the ones
// whose SHA-256 the verification reports, so once the caller has compared that hash with
// the signed one they may be sent as they are, with no re-read and no re-hash. A changed
// file has another key and is read and verified again.
//
// Files with Linux fs-verity enabled are read through the kernel's Merkle-tree check and
// cannot change; for those the mode is kFsVerity and the caller may sendfile(2) them.
// Thread-safe.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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

// The very bytes a verification hashed, held where nothing can change them: a memfd sealed
// against every write, resize and re-seal (F_SEAL_*), mapped read-only; plain connections
// sendfile(2) from the memfd (no copy through user space), TLS writes from the mapping. If
// no memfd can be made, a private heap copy (fd -1).
class VerifiedBytes {
 public:
  static std::shared_ptr<const VerifiedBytes> Make(std::string bytes);
  // A private heap copy (no memfd, no mapping): bytes sent once and dropped.
  static std::shared_ptr<const VerifiedBytes> MakeTransient(std::string bytes);
  ~VerifiedBytes();
  VerifiedBytes(const VerifiedBytes&) = delete;
  VerifiedBytes& operator=(const VerifiedBytes&) = delete;
  std::string_view view() const { return {data_, size_}; }
  size_t size() const { return size_; }
  int sealed_fd() const { return fd_; }  // -1: heap copy

 private:
  VerifiedBytes() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
  void* map_ = nullptr;
  std::string owned_;
};

// A verification and, for a small file, the very bytes it hashed (else null).
struct Verified {
  std::shared_ptr<const FileVerification> v;
  std::shared_ptr<const VerifiedBytes> content;
};

class VerifyCache {
 public:
  static constexpr size_t kChunkSize = 256 * 1024;
  static constexpr size_t kMaxCachedFile = 4 << 20;    // larger files stream with hash-while-send
  static constexpr size_t kContentBudget = 256 << 20;  // verified bytes kept in memory, in all
  explicit VerifyCache(size_t chunk_size = kChunkSize, size_t max_cached_file = kMaxCachedFile,
                       size_t content_budget = kContentBudget)
      : chunk_size_(chunk_size), max_cached_file_(max_cached_file), content_budget_(content_budget) {}
  // The verification of the file behind `fd` as of `st` (its fstat), reading it through
  // that fd on a miss (or when a small file's bytes were dropped from memory).
  // kUnavailable if it changed while being read.
  // cache_content false (a downstream node's bulk pull, which reads every file once): the
  // verification is cached but no bytes are added to memory, so the pull neither evicts the
  // customers' hot files nor maps and unmaps a memfd per file; a small file verified now
  // comes with its bytes in a transient heap copy, and a cached verification without bytes
  // is a hit (the caller streams with CheckedReader).
  Result<Verified> Verify(int fd, const struct stat& st, Metrics* m, bool cache_content = true);
  // Only what is cached for `st` with its bytes in memory (no read, no hash): for the
  // event loop, which must not block.
  std::optional<Verified> CachedContent(const struct stat& st, Metrics* m);
  size_t content_bytes() const;  // verified bytes held in memory now

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
  struct Entry {
    std::shared_ptr<const FileVerification> v;
    std::shared_ptr<const VerifiedBytes> content;
    std::list<Key>::iterator lru;  // its place in lru_ while content is held
  };
  // mu_ held. Least recently used content is dropped first, in O(1) per drop: a pull of a
  // repository larger than the budget (a mirror's initial sync) misses on every file, and
  // a scan of the whole map per miss cost milliseconds per request at 30,000 files.
  void DropContentOverBudget();
  void Touch(Entry& e);            // e holds content: most recently used now
  void BoundEntries();             // under mu_: past 100,000 entries, starts again empty
  void ForgetContent(Entry& e);    // drops e's content and its place in lru_
  const size_t chunk_size_, max_cached_file_, content_budget_;
  mutable std::mutex mu_;
  std::map<Key, Entry> cache_;
  std::list<Key> lru_;  // keys of the entries holding content, least recently used first
  size_t content_bytes_ = 0;
};

// Reads [first, last] of a verified file, chunk by chunk, each chunk checked against its
// digest before any of its bytes are returned. A returned slice stays valid until the
// second Next() after it (two buffers: one being sent while the next is read and checked).
// Not thread-safe (one per response).
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
  std::string buf_[2];
  int cur_ = 0;
};

}  // namespace patchgate::server
