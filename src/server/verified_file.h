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
// One loader per file: requests that ask for a file (same key) while it is being read and
// hashed wait for that one read and share its result - the verification and bytes, or the
// error - instead of reading and hashing it again. A failed read is handed to those
// waiters only; it is not cached, so the next request reads the file again.
//
// Files up to max_cached_file bytes also keep the bytes that were hashed, in memory (a
// sealed memfd, least recently used dropped past a total budget): those bytes are exactly
// the ones whose SHA-256 the verification reports, so once the caller has compared that
// hash with the signed one they may be sent as they are, with no re-read and no re-hash.
// A changed file has another key and is read and verified again. The budget counts the
// bytes held and the bytes of loads in progress: a load that would not fit even once every
// held file is dropped is verified without keeping its bytes (its requests stream).
//
// Files with Linux fs-verity enabled are read through the kernel's Merkle-tree check and
// cannot change; for those the mode is kFsVerity and the caller may sendfile(2) them.
// Thread-safe.
#pragma once

#include <sys/stat.h>

#include <array>
#include <functional>
#include <future>
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
  // Room for exactly n bytes, to be filled through mutable_data() and then sealed by
  // Seal(): a memfd mapped writable by this process alone (or a heap buffer), so a load
  // reads a file straight into the memory it is kept in, with no second copy.
  // heap: a private heap buffer (a transient copy, never sealed).
  static std::unique_ptr<VerifiedBytes> Reserve(size_t n, bool heap = false);
  char* mutable_data() { return const_cast<char*>(data_); }  // before Seal() only
  // Seals what Reserve() made (n bytes written): from now on nothing can change them.
  static std::shared_ptr<const VerifiedBytes> Seal(std::unique_ptr<VerifiedBytes> b);
  // A private heap copy (no memfd, no mapping): bytes sent once and dropped.
  static std::shared_ptr<const VerifiedBytes> MakeTransient(std::string bytes);
  ~VerifiedBytes();
  VerifiedBytes(const VerifiedBytes&) = delete;
  VerifiedBytes& operator=(const VerifiedBytes&) = delete;
  std::string_view view() const { return {data_, size_}; }
  size_t size() const { return size_; }
  int sealed_fd() const { return fd_; }  // -1: heap copy
  // Whether the memfd's whole 2 MiB spans are held in 2 MiB folios (MADV_COLLAPSE).
  bool huge_folios() const { return huge_; }
  // The memory held for n bytes kept in a memfd: n, or n rounded up to a whole 2 MiB folio
  // when its last part past a whole one is at least 1 MiB (sendfile then finds one folio
  // per 64 KiB there too; at most 1 MiB, and less than the bytes themselves, is zeros).
  static size_t Footprint(size_t n);
  size_t footprint() const { return fd_ >= 0 ? map_len_ : size_; }  // Footprint(size()) for a memfd

 private:
  VerifiedBytes() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
  bool huge_ = false;
  void* map_ = nullptr;
  size_t map_len_ = 0;  // of map_ and of the memfd
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
  // Larger files stream with hash-while-send. 64 MiB: a 50 MiB download sent by the event
  // loop from memory costs about a fifth of the server CPU of one streamed and checked
  // chunk by chunk, and one loader per file reads and hashes it once however many ask.
  static constexpr size_t kMaxCachedFile = 64 << 20;
  // Verified bytes kept in memory, in all (held files plus loads in progress): 256 MiB
  // holds four files of the largest kept size at once, or a release's hot set of smaller
  // ones, and bounds the memory kept for them (a file dropped while responses are still
  // sent from it is freed when the last one ends); raise it with --verified-memory-mb on a
  // machine with more memory.
  static constexpr size_t kContentBudget = 256 << 20;
  // A node's bulk pull (cache_content false) gets the bytes of files up to this size in a
  // transient heap copy; larger ones it streams.
  static constexpr size_t kMaxTransientFile = 4 << 20;
  explicit VerifyCache(size_t chunk_size = kChunkSize, size_t max_cached_file = kMaxCachedFile,
                       size_t content_budget = kContentBudget)
      : chunk_size_(chunk_size), max_cached_file_(max_cached_file), content_budget_(content_budget) {}
  // The verification of the file behind `fd` as of `st` (its fstat), reading it through
  // that fd on a miss (or when a small file's bytes were dropped from memory). While
  // another request reads the same file (same key), waits for that read and returns its
  // result (Metrics::verify_load_waits); Metrics::verify_loads counts the reads.
  // kUnavailable if it changed while being read (to every request that waited for it).
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
  size_t loading_bytes() const;  // bytes reserved by loads in progress
  // Tests: called by the one loader of a file before it reads it (e.g. to hold the load
  // until other requests are waiting for it). Set before any Verify.
  void SetLoadHookForTest(std::function<void()> hook) { load_hook_ = std::move(hook); }

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
  // A file being read and hashed by one request; the others asking for it wait here.
  struct Load {
    std::promise<Result<Verified>> done;
    std::shared_future<Result<Verified>> result = done.get_future().share();
  };
  struct Loaded {
    std::shared_ptr<FileVerification> v;
    std::unique_ptr<VerifiedBytes> bytes;  // the bytes read, not yet sealed (keep_bytes)
  };
  // Reads and hashes the file behind `fd` (no lock held), keeping the bytes read into a
  // memfd, a heap buffer, or not at all.
  enum class KeepBytes { kNo, kMemfd, kHeap };
  Result<Loaded> ReadAndHash(int fd, const struct stat& st, KeepBytes keep) const;
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
  std::function<void()> load_hook_;
  mutable std::mutex mu_;
  std::map<Key, Entry> cache_;
  std::list<Key> lru_;  // keys of the entries holding content, least recently used first
  size_t content_bytes_ = 0;
  std::map<Key, std::shared_ptr<Load>> loading_;  // loads in progress, one per key
  size_t loading_bytes_ = 0;  // reserved in the budget by loads that will keep their bytes
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
