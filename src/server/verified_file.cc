#include "server/verified_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace

std::shared_ptr<const VerifiedBytes> VerifiedBytes::Make(std::string bytes) {
  std::shared_ptr<VerifiedBytes> b(new VerifiedBytes);
  b->size_ = bytes.size();
  int fd = bytes.empty() ? -1 : ::memfd_create("patchgate-verified", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  bool sealed = false;
  if (fd >= 0) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    sealed = done == bytes.size() &&
             ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0;
    void* map = sealed ? ::mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (map != MAP_FAILED) {
      b->fd_ = fd;
      b->map_ = map;
      b->data_ = static_cast<const char*>(map);
      return b;
    }
    ::close(fd);
  }
  b->owned_ = std::move(bytes);
  b->data_ = b->owned_.data();
  return b;
}

std::shared_ptr<const VerifiedBytes> VerifiedBytes::MakeTransient(std::string bytes) {
  std::shared_ptr<VerifiedBytes> b(new VerifiedBytes);
  b->size_ = bytes.size();
  b->owned_ = std::move(bytes);
  b->data_ = b->owned_.data();
  return b;
}

VerifiedBytes::~VerifiedBytes() {
  if (map_) ::munmap(map_, size_);
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

Result<Verified> VerifyCache::Verify(int fd, const struct stat& st, Metrics* m, bool cache_content) {
  Key key = KeyOf(st);
  const bool small = st.st_size >= 0 && static_cast<uint64_t>(st.st_size) <= max_cached_file_;
  const bool store_content = small && cache_content && static_cast<uint64_t>(st.st_size) <= content_budget_;
  const bool keep_content = store_content || (small && !cache_content);  // read whole into one buffer
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && (!store_content || it->second.content)) {
      ++m->verify_cache_hits;
      if (it->second.content) Touch(it->second);
      return Verified{it->second.v, it->second.content};
    }
  }
  ++m->verify_cache_misses;
  auto v = std::make_shared<FileVerification>();
  v->mode = HasFsVerity(fd) ? ServeMode::kFsVerity : ServeMode::kChunkDigests;
  v->chunk_size = chunk_size_;
  PG_ASSIGN_OR_RETURN(auto whole, Hasher::Create("sha256"));
  // A small file is read whole into the buffer that is kept; a large one chunk by chunk.
  std::string content;
  std::string buf;
  if (keep_content) content.resize(static_cast<size_t>(st.st_size) + 1);  // +1: sees growth
  else buf.resize(chunk_size_);
  uint64_t off = 0;
  for (;;) {
    size_t got = 0;
    char* at = keep_content ? content.data() + off : buf.data();
    size_t want = keep_content ? std::min<size_t>(chunk_size_, content.size() - off) : buf.size();
    if (want == 0) break;  // grew past its size: caught below
    if (!ReadFull(fd, at, want, off, &got)) return IOError(std::string("cannot read target: ") + std::strerror(errno));
    if (got == 0) break;
    std::string_view chunk(at, got);
    // A file read whole into `content` with chunk digests is hashed whole at the end, and
    // not at all when it is one chunk (its digest is the whole file's): one SHA-256 pass.
    if (!keep_content || v->mode != ServeMode::kChunkDigests) whole.Update(chunk);
    if (v->mode == ServeMode::kChunkDigests) v->chunks.push_back(ChunkDigest(chunk));
    off += got;
    if (got < want) break;
  }
  if (keep_content && v->mode == ServeMode::kChunkDigests) {
    if (v->chunks.size() == 1) {
      v->sha256 = HexEncode(std::string_view(reinterpret_cast<const char*>(v->chunks[0].data()), v->chunks[0].size()));
    } else {
      whole.Update(std::string_view(content.data(), off));
      v->sha256 = whole.FinalHex();
    }
  } else {
    v->sha256 = whole.FinalHex();
  }
  v->length = off;
  struct stat after {};
  if (::fstat(fd, &after) != 0 || KeyOf(after) < key || key < KeyOf(after) ||
      off != static_cast<uint64_t>(st.st_size))
    return Unavailable("target changed while it was being verified");
  if (v->mode == ServeMode::kFsVerity) ++m->files_fs_verity;
  else ++m->files_chunk_digests;
  std::shared_ptr<const VerifiedBytes> kept;
  if (keep_content) {
    content.resize(off);
    if (!store_content) {
      std::lock_guard<std::mutex> l(mu_);
      BoundEntries();
      Entry& e = cache_[key];
      if (!e.content) e.v = v;  // bytes held already for this key stay (they match it)
      return Verified{std::move(v), VerifiedBytes::MakeTransient(std::move(content))};
    }
    kept = VerifiedBytes::Make(std::move(content));
  }
  std::lock_guard<std::mutex> l(mu_);
  BoundEntries();
  Entry& e = cache_[key];
  ForgetContent(e);
  e.v = v;
  if (kept) {
    e.content = kept;
    e.lru = lru_.insert(lru_.end(), key);
    content_bytes_ += kept->size();
    DropContentOverBudget();
  }
  return Verified{std::move(v), std::move(kept)};
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
  content_bytes_ -= e.content->size();
  e.content.reset();
  lru_.erase(e.lru);
}

void VerifyCache::DropContentOverBudget() {
  while (content_bytes_ > content_budget_ && !lru_.empty()) {
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
