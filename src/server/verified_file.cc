#include "server/verified_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1
#endif

#include "crypto/hash.h"

namespace patchgate::server {

namespace {

bool ReadFull(int fd, char* buf, size_t n, uint64_t off, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = ::pread(fd, buf + *got, n - *got, static_cast<off_t>(off + *got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return true;
}

std::array<unsigned char, 32> ChunkDigest(std::string_view data) {
  std::array<unsigned char, 32> d{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

// Sealed contents at least this large have their read-only mapping populated at once.
constexpr size_t kPopulateMappingMin = 4 << 20;

// A memfd's bytes in 2 MiB folios (MADV_COLLAPSE, below): the size of one, and the mapping
// alignment that lets the kernel collapse (and later map) whole ones.
constexpr size_t kHugeFolio = 2 << 20;

// Maps [0, n) of `fd` shared with `prot` at a kHugeFolio-aligned address (n >= kHugeFolio),
// or anywhere (smaller n). MAP_FAILED on failure.
void* MapAligned(int fd, size_t n, int prot) {
  if (n < kHugeFolio) return ::mmap(nullptr, n, prot, MAP_SHARED, fd, 0);
  void* raw = ::mmap(nullptr, n + kHugeFolio, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return MAP_FAILED;
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t at = (r + kHugeFolio - 1) & ~(uintptr_t{kHugeFolio} - 1);
  const uintptr_t end = at + ((n + 4095) & ~size_t{4095});
  if (::mmap(reinterpret_cast<void*>(at), n, prot, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
    ::munmap(raw, n + kHugeFolio);
    return MAP_FAILED;
  }
  if (at > r) ::munmap(raw, at - r);  // the reservation's slack, before and after
  if (r + n + kHugeFolio > end) ::munmap(reinterpret_cast<void*>(end), r + n + kHugeFolio - end);
  return reinterpret_cast<void*>(at);
}

}  // namespace

size_t VerifiedBytes::Footprint(size_t n) {
  const size_t tail = n % kHugeFolio;
  return tail >= kHugeFolio / 2 ? n - tail + kHugeFolio : n;
}

std::unique_ptr<VerifiedBytes> VerifiedBytes::Reserve(size_t n, bool heap) {
  std::unique_ptr<VerifiedBytes> b(new VerifiedBytes);
  b->size_ = n;
  int fd = n == 0 || heap ? -1 : ::memfd_create("patchgate-verified", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  // fallocate, not ftruncate: memory that cannot be had fails here, not as a SIGBUS on a
  // write through the mapping.
  const size_t len = fd >= 0 ? Footprint(n) : n;
  void* map = fd >= 0 && ::fallocate(fd, 0, 0, static_cast<off_t>(len)) == 0
                  ? MapAligned(fd, len, PROT_READ | PROT_WRITE)
                  : MAP_FAILED;
  if (map != MAP_FAILED) {
    // The whole 2 MiB spans of the memfd become 2 MiB folios, asked for by this process
    // alone (MADV_COLLAPSE, Linux 6.1; it works whatever the system's shmem huge-page
    // setting says, short of "deny"). A memfd otherwise holds 4 KiB pages, and sendfile(2)
    // from it looks each one up on its own: 37% of the server's CPU for a 50 MiB body
    // (perf, bench/serve_cpu.sh PERF=record). In 2 MiB folios it is one look-up per 64 KiB
    // sent, as from a file in ext4's page cache (what nginx sends from); filling the
    // mapping then also takes one fault per 2 MiB instead of one per 4 KiB. Where the
    // kernel cannot (older, "deny", no contiguous memory) the pages stay as they are.
    // A tail of at least 1 MiB gets a whole folio too (Footprint): the memfd is longer than
    // the bytes, by less than they are, and the rest is zeros never sent.
    if (const size_t whole = len & ~(kHugeFolio - 1); whole > 0) b->huge_ = ::madvise(map, whole, MADV_COLLAPSE) == 0;
    b->fd_ = fd;
    b->map_len_ = len;
    b->map_ = map;
    b->data_ = static_cast<const char*>(map);
    return b;
  }
  if (fd >= 0) ::close(fd);
  b->owned_.resize(n);
  b->data_ = b->owned_.data();
  return b;
}

std::shared_ptr<const VerifiedBytes> VerifiedBytes::Seal(std::unique_ptr<VerifiedBytes> b) {
  std::shared_ptr<VerifiedBytes> out(b.release());
  if (out->fd_ < 0) return out;
  // The writable mapping goes first: a memfd with one cannot be sealed against writes. Its
  // (aligned) addresses stay reserved, without access, for the read-only mapping below.
  void* at = out->map_;
  const size_t len = out->map_len_;
  bool reserved = ::mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED;
  if (!reserved) ::munmap(at, len);
  out->map_ = nullptr;
  bool sealed = ::fcntl(out->fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0;
  void* map = !sealed ? MAP_FAILED
              : reserved ? ::mmap(at, len, PROT_READ, MAP_SHARED | MAP_FIXED, out->fd_, 0)
                         : MapAligned(out->fd_, len, PROT_READ);
  if (map == MAP_FAILED && reserved) ::munmap(at, len);
  if (map != MAP_FAILED) {
    // Mapped now, on the loading thread, rather than one page fault at a time on the event
    // loop that writes a body from it (TLS connections encrypt from the mapping); in 2 MiB
    // folios that is one mapping per 2 MiB.
    if (out->size_ >= kPopulateMappingMin) (void)::madvise(map, out->size_, MADV_POPULATE_READ);
    out->map_ = map;
    out->data_ = static_cast<const char*>(map);
    return out;
  }
  // Not sealable: a private heap copy of the bytes (nothing else holds this memfd).
  out->owned_.resize(out->size_);
  size_t got = 0;
  ReadFull(out->fd_, out->owned_.data(), out->size_, 0, &got);
  out->owned_.resize(got);
  out->size_ = got;
  ::close(out->fd_);
  out->fd_ = -1;
  out->huge_ = false;
  out->map_len_ = out->size_;
  out->data_ = out->owned_.data();
  return out;
}

std::shared_ptr<const VerifiedBytes> VerifiedBytes::Make(std::string bytes) {
  auto b = Reserve(bytes.size());
  if (!bytes.empty()) std::memcpy(b->mutable_data(), bytes.data(), bytes.size());
  return Seal(std::move(b));
}

std::shared_ptr<const VerifiedBytes> VerifiedBytes::MakeTransient(std::string bytes) {
  auto b = Reserve(0, /*heap=*/true);
  b->size_ = bytes.size();
  b->owned_ = std::move(bytes);
  b->data_ = b->owned_.data();
  return Seal(std::move(b));
}

VerifiedBytes::~VerifiedBytes() {
  if (map_) ::munmap(map_, map_len_);
  if (fd_ >= 0) ::close(fd_);
}

std::string_view ServeModeName(ServeMode m) { return m == ServeMode::kFsVerity ? "fs-verity" : "chunk-digest"; }

bool HasFsVerity(int fd) {
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0) return false;
#ifdef STATX_ATTR_VERITY
  return (stx.stx_attributes_mask & STATX_ATTR_VERITY) && (stx.stx_attributes & STATX_ATTR_VERITY);
#else
  return false;
#endif
}

VerifyCache::Key VerifyCache::KeyOf(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_size, int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
          int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
}

Result<VerifyCache::Loaded> VerifyCache::ReadAndHash(int fd, const struct stat& st, KeepBytes keep) const {
  const bool keep_bytes = keep != KeepBytes::kNo;
  const Key key = KeyOf(st);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  Loaded out;
  auto v = std::make_shared<FileVerification>();
  v->mode = HasFsVerity(fd) ? ServeMode::kFsVerity : ServeMode::kChunkDigests;
  v->chunk_size = chunk_size_;
  PG_ASSIGN_OR_RETURN(auto whole, Hasher::Create("sha256"));
  // A kept file is read straight into the memfd it is kept in; another chunk by chunk.
  std::string buf;
  if (keep_bytes) out.bytes = VerifiedBytes::Reserve(static_cast<size_t>(size), /*heap=*/keep == KeepBytes::kHeap);
  else buf.resize(chunk_size_);
  // A file of one chunk with chunk digests is hashed once: its digest is the whole file's.
  const bool one_chunk = v->mode == ServeMode::kChunkDigests && size > 0 && size <= chunk_size_;
  uint64_t off = 0;
  for (;;) {
    size_t got = 0;
    char* at = keep_bytes ? out.bytes->mutable_data() + off : buf.data();
    size_t want = keep_bytes ? static_cast<size_t>(std::min<uint64_t>(chunk_size_, size - off)) : buf.size();
    if (want == 0) break;
    if (!ReadFull(fd, at, want, off, &got)) return IOError(std::string("cannot read target: ") + std::strerror(errno));
    if (got == 0) break;
    std::string_view chunk(at, got);
    if (!one_chunk) whole.Update(chunk);  // while the chunk is still in the CPU's cache
    if (v->mode == ServeMode::kChunkDigests) v->chunks.push_back(ChunkDigest(chunk));
    off += got;
    if (got < want) break;
  }
  if (keep_bytes && off == size) {  // grown past its size? (caught below)
    char extra;
    size_t got = 0;
    if (!ReadFull(fd, &extra, 1, off, &got)) return IOError(std::string("cannot read target: ") + std::strerror(errno));
    off += got;
  }
  v->sha256 = one_chunk && v->chunks.size() == 1
                  ? HexEncode(std::string_view(reinterpret_cast<const char*>(v->chunks[0].data()), v->chunks[0].size()))
                  : whole.FinalHex();
  v->length = off;
  struct stat after {};
  if (::fstat(fd, &after) != 0 || KeyOf(after) < key || key < KeyOf(after) || off != size)
    return Unavailable("target changed while it was being verified");
  out.v = std::move(v);
  return out;
}

Result<Verified> VerifyCache::Verify(int fd, const struct stat& st, Metrics* m, bool cache_content) {
  const Key key = KeyOf(st);
  const uint64_t size = st.st_size >= 0 ? static_cast<uint64_t>(st.st_size) : 0;
  const bool small = st.st_size >= 0 && size <= max_cached_file_;
  const bool wants_content = small && cache_content;
  std::shared_ptr<Load> load, mine;
  bool store_content = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Bytes that cannot be reserved now (the budget is taken by loads in progress, or the
    // file is larger than it): a cached verification without them is a hit (streamed).
    const size_t held = VerifiedBytes::Footprint(static_cast<size_t>(size));  // the memory it will take
    const bool can_reserve = held <= content_budget_ && loading_bytes_ <= content_budget_ - held;
    auto it = cache_.find(key);
    if (it != cache_.end() && (it->second.content || !wants_content || !can_reserve)) {
      ++m->verify_cache_hits;
      if (it->second.content) Touch(it->second);
      return Verified{it->second.v, it->second.content};
    }
    auto in_flight = loading_.find(key);
    if (in_flight != loading_.end()) {
      load = in_flight->second;
    } else {
      ++m->verify_cache_misses;
      store_content = wants_content && can_reserve;
      if (store_content) {
        loading_bytes_ += held;
        DropContentOverBudget();  // room for it now, so the budget holds while it loads
      }
      mine = std::make_shared<Load>();
      loading_.emplace(key, mine);
    }
  }
  if (load) {  // another request is reading this file: its result is ours
    ++m->verify_load_waits;
    return load->result.get();
  }
  ++m->verify_loads;
  if (load_hook_) load_hook_();
  // A node's pull gets a small file's bytes in a transient heap copy (none kept).
  const bool transient = small && !cache_content && size <= kMaxTransientFile;
  auto loaded = ReadAndHash(fd, st, store_content ? KeepBytes::kMemfd : transient ? KeepBytes::kHeap : KeepBytes::kNo);
  Result<Verified> result = loaded.ok() ? Result<Verified>(Verified{loaded->v, nullptr}) : Result<Verified>(loaded.status());
  if (loaded.ok()) {
    if (loaded->v->mode == ServeMode::kFsVerity) ++m->files_fs_verity;
    else ++m->files_chunk_digests;
    if (loaded->bytes) result->content = VerifiedBytes::Seal(std::move(loaded->bytes));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = loading_.find(key); it != loading_.end() && it->second == mine) loading_.erase(it);
    if (store_content) loading_bytes_ -= VerifiedBytes::Footprint(static_cast<size_t>(size));
    if (result.ok()) {  // a failed load is handed to its waiters only: nothing of it is cached
      BoundEntries();
      Entry& e = cache_[key];
      if (store_content && result->content) {
        ForgetContent(e);
        e.v = result->v;
        e.content = result->content;
        e.lru = lru_.insert(lru_.end(), key);
        content_bytes_ += e.content->footprint();
        DropContentOverBudget();
      } else if (!e.content) {
        e.v = result->v;  // bytes held already for this key stay (they match it)
      }
    }
  }
  mine->done.set_value(result);
  return result;
}

void VerifyCache::Touch(Entry& e) { lru_.splice(lru_.end(), lru_, e.lru); }

void VerifyCache::BoundEntries() {
  if (cache_.size() <= 100000) return;
  cache_.clear();
  lru_.clear();
  content_bytes_ = 0;
}

void VerifyCache::ForgetContent(Entry& e) {
  if (!e.content) return;
  content_bytes_ -= e.content->footprint();
  e.content.reset();
  lru_.erase(e.lru);
}

void VerifyCache::DropContentOverBudget() {
  while (content_bytes_ + loading_bytes_ > content_budget_ && !lru_.empty()) {
    auto it = cache_.find(lru_.front());
    if (it == cache_.end()) {  // cannot happen: every key in lru_ is in cache_
      lru_.pop_front();
      continue;
    }
    ForgetContent(it->second);
  }
}

std::optional<Verified> VerifyCache::CachedContent(const struct stat& st, Metrics* m) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = cache_.find(KeyOf(st));
  if (it == cache_.end() || !it->second.content) return std::nullopt;
  ++m->verify_cache_hits;
  Touch(it->second);
  return Verified{it->second.v, it->second.content};
}

size_t VerifyCache::content_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return content_bytes_;
}

size_t VerifyCache::loading_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return loading_bytes_;
}

CheckedReader::CheckedReader(int fd, std::shared_ptr<const FileVerification> v, uint64_t first, uint64_t last)
    : fd_(fd), v_(std::move(v)), next_(first), end_(v_->length == 0 ? 0 : last + 1) {}

Result<std::string_view> CheckedReader::Next() {
  if (done()) return std::string_view();
  const uint64_t cs = v_->chunk_size;
  uint64_t index = next_ / cs;
  uint64_t chunk_start = index * cs;
  size_t chunk_len = static_cast<size_t>(std::min<uint64_t>(cs, v_->length - chunk_start));
  cur_ ^= 1;
  std::string& buf = buf_[cur_];
  buf.resize(chunk_len);
  size_t got = 0;
  if (!ReadFull(fd_, buf.data(), chunk_len, chunk_start, &got))
    return IOError(std::string("cannot read target: ") + std::strerror(errno));
  if (v_->mode == ServeMode::kChunkDigests) {
    if (got != chunk_len || index >= v_->chunks.size() ||
        ChunkDigest(std::string_view(buf.data(), got)) != v_->chunks[index])
      return Corrupt("chunk " + std::to_string(index) + " (bytes " + std::to_string(chunk_start) + "-" +
                      std::to_string(chunk_start + chunk_len - 1) + ") no longer matches its verified digest");
  } else if (got != chunk_len) {
    return Corrupt("file shorter than when it was verified");
  }
  size_t from = static_cast<size_t>(next_ - chunk_start);
  size_t to = static_cast<size_t>(std::min<uint64_t>(end_ - chunk_start, chunk_len));
  next_ = chunk_start + to;
  return std::string_view(buf.data() + from, to - from);
}

}  // namespace patchgate::server
