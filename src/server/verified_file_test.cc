#include "server/verified_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/sendfile.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <vector>

#include "crypto/hash.h"
#include "server/server.h"

namespace patchgate::server {
namespace {

class VerifiedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgverifyXXXXXX";
    dir_ = mkdtemp(tmpl);
    for (size_t i = 0; i < 10 * 1000 + 7; ++i) bytes_ += static_cast<char>('a' + i % 23);
    path_ = dir_ + "/f.bin";
    std::ofstream(path_, std::ios::binary) << bytes_;
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    ::close(fd_);
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
  std::shared_ptr<const FileVerification> Verify(VerifyCache& cache) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd_, &st), 0);
    auto v = cache.Verify(fd_, st, &m_);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v->v : nullptr;
  }
  Verified VerifyWithContent(VerifyCache& cache) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd_, &st), 0);
    auto v = cache.Verify(fd_, st, &m_);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : Verified{};
  }
  // Overwrites bytes in place (same length, same inode), like dd conv=notrunc.
  void Poke(uint64_t at, std::string_view s) {
    int w = ::open(path_.c_str(), O_WRONLY);
    ASSERT_EQ(::pwrite(w, s.data(), s.size(), static_cast<off_t>(at)), static_cast<ssize_t>(s.size()));
    ::close(w);
  }
  std::string ReadAll(CheckedReader& r, Status* error) {
    std::string out;
    while (!r.done()) {
      auto s = r.Next();
      if (!s.ok()) {
        *error = s.status();
        break;
      }
      out.append(*s);
    }
    return out;
  }

  std::string dir_, path_, bytes_;
  int fd_ = -1;
  Metrics m_;
};

TEST_F(VerifiedFileTest, DigestsWholeFileAndChunks) {
  VerifyCache cache(1000);
  auto v = Verify(cache);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->sha256, Sha256Hex(bytes_));
  EXPECT_EQ(v->length, bytes_.size());
  EXPECT_EQ(v->chunks.size(), 11u);  // 10 full chunks and one of 7 bytes
  EXPECT_EQ(Verify(cache), v);       // cached
  EXPECT_EQ(m_.verify_cache_hits.load(), 1u);
}

TEST_F(VerifiedFileTest, WholeAndRangedReadsReturnExactBytes) {
  VerifyCache cache(1000);
  auto v = Verify(cache);
  for (auto [first, last] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, bytes_.size() - 1}, {0, 0}, {999, 1000}, {1500, 1600}, {10000, 10006}, {3, 9999}}) {
    CheckedReader r(fd_, v, first, last);
    Status err;
    EXPECT_EQ(ReadAll(r, &err), bytes_.substr(first, last - first + 1)) << first << "-" << last;
    EXPECT_TRUE(err.ok());
  }
}

TEST_F(VerifiedFileTest, ABytePokedAfterVerificationIsNeverReturned) {
  VerifyCache cache(1000);
  auto v = Verify(cache);
  Poke(4321, "X");  // in chunk 4
  CheckedReader whole(fd_, v, 0, bytes_.size() - 1);
  Status err;
  std::string got = ReadAll(whole, &err);
  EXPECT_EQ(err.code(), ErrorCode::kCorrupt);
  EXPECT_NE(err.message().find("chunk 4"), std::string::npos) << err.ToString();
  EXPECT_EQ(got, bytes_.substr(0, 4000));  // the four intact chunks, nothing of the fifth
  // A range inside the changed chunk, even one that avoids the changed byte itself.
  CheckedReader ranged(fd_, v, 4400, 4500);
  err = Status::OK();
  EXPECT_EQ(ReadAll(ranged, &err), "");
  EXPECT_EQ(err.code(), ErrorCode::kCorrupt);
  // A range in an untouched chunk is still served.
  CheckedReader other(fd_, v, 5000, 5099);
  err = Status::OK();
  EXPECT_EQ(ReadAll(other, &err), bytes_.substr(5000, 100));
  EXPECT_TRUE(err.ok());
}

TEST_F(VerifiedFileTest, ATruncatedFileIsNeverPaddedOrServed) {
  VerifyCache cache(1000);
  auto v = Verify(cache);
  ASSERT_EQ(::truncate(path_.c_str(), 9500), 0);
  CheckedReader r(fd_, v, 9000, bytes_.size() - 1);
  Status err;
  EXPECT_EQ(ReadAll(r, &err), "");
  EXPECT_EQ(err.code(), ErrorCode::kCorrupt);
}

TEST_F(VerifiedFileTest, SmallFilesKeepExactlyTheBytesThatWereHashed) {
  VerifyCache cache(1000, /*max_cached_file=*/1 << 20, /*content_budget=*/1 << 20);
  Verified a = VerifyWithContent(cache);
  ASSERT_TRUE(a.content);
  EXPECT_EQ(a.content->view(), bytes_);
  EXPECT_EQ(a.v->sha256, Sha256Hex(bytes_));
  EXPECT_EQ(a.v->chunks.size(), (bytes_.size() + 999) / 1000);
  Verified b = VerifyWithContent(cache);  // a hit: the same bytes, not read again
  EXPECT_EQ(b.content, a.content);
  EXPECT_EQ(m_.verify_cache_hits.load(), 1u);
  // Changed in place: another key (mtime/ctime), so it is read and hashed again, and what
  // is kept is what is now on disk (the caller then finds the hash differs from the signed one).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Poke(10, "XYZ");
  Verified c = VerifyWithContent(cache);
  ASSERT_TRUE(c.content);
  EXPECT_NE(c.v->sha256, a.v->sha256);
  EXPECT_EQ(c.v->sha256, Sha256Hex(c.content->view()));
  EXPECT_EQ(c.content->view().substr(10, 3), "XYZ");
  EXPECT_EQ(a.content->view(), bytes_);  // the bytes handed out before are never changed
  // Held in a sealed memfd: no write, resize or new seal can change them.
  int fd = a.content->sealed_fd();
  if (fd >= 0) {
    EXPECT_LT(::pwrite(fd, "Z", 1, 0), 0);
    EXPECT_EQ(errno, EPERM);
    EXPECT_NE(::ftruncate(fd, 0), 0);
    EXPECT_EQ(::fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
    std::string back(bytes_.size(), '\0');
    EXPECT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
    EXPECT_EQ(back, bytes_);
  }
}

TEST_F(VerifiedFileTest, LargeFilesAndFilesOverTheBudgetAreNotKept) {
  VerifyCache small_files(1000, /*max_cached_file=*/bytes_.size() - 1, 1 << 20);
  Verified a = VerifyWithContent(small_files);
  EXPECT_FALSE(a.content);
  EXPECT_EQ(a.v->sha256, Sha256Hex(bytes_));
  VerifyCache tight(1000, 1 << 20, /*content_budget=*/bytes_.size() - 1);
  EXPECT_FALSE(VerifyWithContent(tight).content);
  EXPECT_EQ(tight.content_bytes(), 0u);
}

// Over the budget, the least recently used file's bytes go first (a hit counts as a use),
// and the budget is never exceeded; a dropped file is read and hashed again when asked for.
TEST_F(VerifiedFileTest, OverTheBudgetTheLeastRecentlyUsedBytesAreDropped) {
  VerifyCache cache(1000, 1 << 20, /*content_budget=*/2 * bytes_.size());
  struct File {
    int fd;
    struct stat st;
  };
  std::vector<File> files;
  for (int i = 0; i < 4; ++i) {
    std::string p = dir_ + "/lru" + std::to_string(i);
    std::ofstream(p, std::ios::binary) << bytes_;
    File f{::open(p.c_str(), O_RDONLY | O_CLOEXEC), {}};
    ASSERT_GE(f.fd, 0);
    ASSERT_EQ(::fstat(f.fd, &f.st), 0);
    files.push_back(f);
  }
  auto verify = [&](int i) {
    auto v = cache.Verify(files[i].fd, files[i].st, &m_);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->content);
  };
  verify(0);
  verify(1);
  EXPECT_EQ(cache.content_bytes(), 2 * bytes_.size());
  EXPECT_TRUE(cache.CachedContent(files[0].st, &m_));  // 0 used after 1: 1 is the oldest now
  verify(2);
  EXPECT_EQ(cache.content_bytes(), 2 * bytes_.size());
  EXPECT_TRUE(cache.CachedContent(files[0].st, &m_));
  EXPECT_FALSE(cache.CachedContent(files[1].st, &m_));
  EXPECT_TRUE(cache.CachedContent(files[2].st, &m_));
  verify(3);  // 0 was used before 2
  EXPECT_FALSE(cache.CachedContent(files[0].st, &m_));
  EXPECT_TRUE(cache.CachedContent(files[2].st, &m_));
  EXPECT_TRUE(cache.CachedContent(files[3].st, &m_));
  uint64_t misses = m_.verify_cache_misses.load();
  verify(1);  // dropped: read and hashed again, and kept
  EXPECT_EQ(m_.verify_cache_misses.load(), misses + 1);
  EXPECT_TRUE(cache.CachedContent(files[1].st, &m_));
  EXPECT_EQ(cache.content_bytes(), 2 * bytes_.size());
  for (auto& f : files) ::close(f.fd);
}

// A node's bulk pull (cache_content false): the bytes come with the verification (exactly
// the hashed ones) but nothing is added to memory, and the verification is cached: the
// next pull of the same file is a hit without bytes (streamed with CheckedReader).
TEST_F(VerifiedFileTest, APullThatDoesNotCacheContentAddsNoBytesToMemory) {
  VerifyCache cache(1000, 1 << 20, 1 << 20);
  struct stat st {};
  ASSERT_EQ(::fstat(fd_, &st), 0);
  auto a = cache.Verify(fd_, st, &m_, /*cache_content=*/false);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->content);
  EXPECT_EQ(a->content->view(), bytes_);
  EXPECT_EQ(a->v->sha256, Sha256Hex(bytes_));
  EXPECT_EQ(cache.content_bytes(), 0u);
  EXPECT_FALSE(cache.CachedContent(st, &m_));
  auto b = cache.Verify(fd_, st, &m_, false);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(m_.verify_cache_hits.load(), 1u);
  EXPECT_FALSE(b->content);
  EXPECT_EQ(b->v, a->v);
  // A customer's request of the same file then reads it and keeps its bytes.
  auto c = cache.Verify(fd_, st, &m_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->content);
  EXPECT_EQ(cache.content_bytes(), bytes_.size());
  // And a node's later pull uses those bytes.
  auto d = cache.Verify(fd_, st, &m_, false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->content, c->content);
}

// Waits (up to 20 s) until `pred` holds; whether it did.
bool WaitFor(const std::function<bool()>& pred) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Eight requests for one cold file at once: one reads and hashes it, the seven others wait
// for that read and get the very same verified bytes. (The loader is held until the seven
// are waiting; without the one-loader guard each reads the file itself and the count is 8.)
TEST_F(VerifiedFileTest, ConcurrentRequestsForAColdFileShareOneLoad) {
  constexpr int kRequests = 8;
  VerifyCache cache(1000, 1 << 20, 1 << 20);
  cache.SetLoadHookForTest([&] { WaitFor([&] { return m_.verify_load_waits.load() >= kRequests - 1; }); });
  struct stat st {};
  ASSERT_EQ(::fstat(fd_, &st), 0);
  std::vector<Result<Verified>> got(kRequests, Unavailable("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) threads.emplace_back([&, i] { got[i] = cache.Verify(fd_, st, &m_); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(m_.verify_loads.load(), 1u) << "the file was read and hashed more than once";
  EXPECT_EQ(m_.verify_load_waits.load(), kRequests - 1u);
  EXPECT_EQ(m_.files_chunk_digests.load(), 1u);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status().ToString();
    ASSERT_TRUE(got[i]->content);
    EXPECT_EQ(got[i]->content, got[0]->content);
    EXPECT_EQ(got[i]->content->view(), bytes_);
    EXPECT_EQ(got[i]->v->sha256, Sha256Hex(bytes_));
  }
  EXPECT_EQ(cache.content_bytes(), bytes_.size());
  EXPECT_EQ(cache.loading_bytes(), 0u);
  // Now it is cached: a hit, no load.
  ASSERT_TRUE(cache.Verify(fd_, st, &m_).ok());
  EXPECT_EQ(m_.verify_loads.load(), 1u);
}

// A load that fails (the file changes while it is read) fails for every request waiting
// for it, and is not cached: the next request reads the file again.
TEST_F(VerifiedFileTest, AFailedLoadFailsForItsWaitersAndIsNotCached) {
  constexpr int kRequests = 4;
  VerifyCache cache(1000, 1 << 20, 1 << 20);
  std::atomic<int> loads{0};
  cache.SetLoadHookForTest([&] {
    if (loads++ != 0) return;
    WaitFor([&] { return m_.verify_load_waits.load() >= kRequests - 1; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a new mtime/ctime for sure
    Poke(10, "XYZ");  // changed while it is being read
  });
  struct stat st {};
  ASSERT_EQ(::fstat(fd_, &st), 0);
  std::vector<Result<Verified>> got(kRequests, Verified{});
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) threads.emplace_back([&, i] { got[i] = cache.Verify(fd_, st, &m_); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(m_.verify_loads.load(), 1u);
  for (auto& r : got) {
    ASSERT_FALSE(r.ok()) << "bytes changed while they were read were handed out";
    EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable) << r.status().ToString();
  }
  EXPECT_EQ(cache.content_bytes(), 0u);
  EXPECT_EQ(cache.loading_bytes(), 0u);
  // Not cached: asked again with the old identity, the file is read again (and the change seen).
  EXPECT_FALSE(cache.Verify(fd_, st, &m_).ok());
  EXPECT_EQ(m_.verify_loads.load(), 2u);
  // With its new identity, it is read, hashed and kept as it is now.
  Verified now = VerifyWithContent(cache);
  ASSERT_TRUE(now.content);
  EXPECT_EQ(now.content->view().substr(10, 3), "XYZ");
  EXPECT_EQ(now.v->sha256, Sha256Hex(now.content->view()));
  EXPECT_EQ(m_.verify_loads.load(), 3u);
}

// The budget counts loads in progress: while one file's load holds its part, another file
// that would not fit besides it is verified without keeping its bytes, and the bytes held
// never pass the budget.
TEST_F(VerifiedFileTest, TheBudgetCountsLoadsInProgress) {
  VerifyCache cache(1000, 1 << 20, /*content_budget=*/bytes_.size() + bytes_.size() / 2);
  std::string other = dir_ + "/other.bin";
  std::ofstream(other, std::ios::binary) << bytes_;
  int ofd = ::open(other.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ofd, 0);
  struct stat ost {}, st {};
  ASSERT_EQ(::fstat(ofd, &ost), 0);
  ASSERT_EQ(::fstat(fd_, &st), 0);
  std::atomic<int> loads{0};
  std::atomic<bool> other_done{false};
  cache.SetLoadHookForTest([&] {
    if (loads++ == 0) WaitFor([&] { return other_done.load(); });
  });
  Result<Verified> first = Unavailable("not run");
  std::thread t([&] { first = cache.Verify(fd_, st, &m_); });
  ASSERT_TRUE(WaitFor([&] { return cache.loading_bytes() == bytes_.size(); }));
  auto second = cache.Verify(ofd, ost, &m_);
  other_done = true;
  t.join();
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->content) << "kept past the budget while another load held its part";
  EXPECT_EQ(second->v->sha256, Sha256Hex(bytes_));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->content);
  EXPECT_EQ(cache.content_bytes(), bytes_.size());
  EXPECT_EQ(cache.loading_bytes(), 0u);
  ::close(ofd);
}

// The serving defaults are the cache's: files up to 64 MiB (the bench's 50 MiB file) are
// kept in verified memory, 256 MiB in all.
TEST(VerifyCacheDefaults, ServeKeepsFilesUpTo64MiBIn256MiB) {
  EXPECT_EQ(ServerOptions{}.verified_memory_max_file, VerifyCache::kMaxCachedFile);
  EXPECT_EQ(ServerOptions{}.verified_memory_bytes, VerifyCache::kContentBudget);
  EXPECT_GE(VerifyCache::kMaxCachedFile, 50u << 20);
}

// One chunk or several, the whole-file hash is the file's SHA-256.
TEST_F(VerifiedFileTest, WholeHashIsRightForOneChunkAndForMany) {
  VerifyCache one(bytes_.size() + 10, 1 << 20, 1 << 20);
  auto a = one.Verify(fd_, [&] { struct stat st {}; ::fstat(fd_, &st); return st; }(), &m_);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->v->chunks.size(), 1u);
  EXPECT_EQ(a->v->sha256, Sha256Hex(bytes_));
  VerifyCache many(1000, 1 << 20, 1 << 20);
  auto b = many.Verify(fd_, [&] { struct stat st {}; ::fstat(fd_, &st); return st; }(), &m_);
  ASSERT_TRUE(b.ok());
  EXPECT_GT(b->v->chunks.size(), 1u);
  EXPECT_EQ(b->v->sha256, Sha256Hex(bytes_));
}

// A kept file of whole 2 MiB spans plus a tail: its memfd holds the spans in 2 MiB folios
// where the kernel grants them (MADV_COLLAPSE), and is sealed all the same: the bytes kept,
// mapped and sent by sendfile(2) are exactly the ones hashed, and no write through the
// memfd - not even through a new writable descriptor or mapping of it - can change them.
TEST_F(VerifiedFileTest, AFileKeptInHugeFoliosIsTheHashedBytesAndSealed) {
  std::string big((4 << 20) + 5000, '\0');
  uint32_t x = 7;
  for (auto& c : big) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << big;
  ::close(fd_);
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd_, 0);
  VerifyCache cache(VerifyCache::kChunkSize, 64 << 20, 256 << 20);
  Verified v = VerifyWithContent(cache);
  ASSERT_TRUE(v.content);
  EXPECT_EQ(v.v->sha256, Sha256Hex(big));
  EXPECT_TRUE(v.content->view() == big);
  int fd = v.content->sealed_fd();
  ASSERT_GE(fd, 0) << "no memfd: the sendfile path is not exercised";
  std::cout << "memfd in 2 MiB folios: " << (v.content->huge_folios() ? "yes" : "no (kernel refused)") << "\n";
  if (v.content->huge_folios()) {  // mapped at a 2 MiB boundary, so whole folios can be
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.content->view().data()) % (2 << 20), 0u);
  }
  // Sealed: no write through the descriptor held, nor through a new one opened for writing.
  EXPECT_LT(::pwrite(fd, "Z", 1, 4 << 20), 0);
  EXPECT_EQ(errno, EPERM);
  int again = ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDWR);
  if (again >= 0) {
    EXPECT_LT(::pwrite(again, "Z", 1, 0), 0) << "a new descriptor could write the kept bytes";
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0), MAP_FAILED);
    ::close(again);
  }
  EXPECT_NE(::ftruncate(fd, 0), 0);
  EXPECT_NE(::fallocate(fd, 0, 0, 8 << 20), 0);
  // What sendfile(2) sends from it is the hashed bytes, across the folios and the tail.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::string sent;
  off_t off = (2 << 20) - 1000;
  char buf[65536];
  while (sent.size() < (2 << 20) + 4000) {
    ssize_t n = ::sendfile(p[1], fd, &off, std::min<size_t>(sizeof buf, (2 << 20) + 4000 - sent.size()));
    ASSERT_GT(n, 0);
    ASSERT_EQ(::read(p[0], buf, static_cast<size_t>(n)), n);
    sent.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_TRUE(sent == big.substr((2 << 20) - 1000, (2 << 20) + 4000));
  // The file on disk changes: the bytes kept do not.
  Poke(3 << 20, "EVIL");
  EXPECT_TRUE(v.content->view() == big);
}

// A file whose part past its whole 2 MiB spans is at least 1 MiB is kept in a memfd rounded
// up to a whole folio: the budget counts the memory really held (the rounded length), and
// the bytes handed out are still exactly the file's, zeros past them never among them.
TEST_F(VerifiedFileTest, ARoundedUpFileCountsItsMemoryAndHandsOutOnlyItsBytes) {
  EXPECT_EQ(VerifiedBytes::Footprint(1000), 1000u);
  EXPECT_EQ(VerifiedBytes::Footprint((1 << 20) - 1), (1u << 20) - 1);
  EXPECT_EQ(VerifiedBytes::Footprint(1 << 20), 2u << 20);
  EXPECT_EQ(VerifiedBytes::Footprint((2 << 20) + 5000), (2u << 20) + 5000);
  EXPECT_EQ(VerifiedBytes::Footprint((3 << 20) + 1), 4u << 20);
  EXPECT_EQ(VerifiedBytes::Footprint(50 << 20), 50u << 20);
  std::string mib((1 << 20) + 77, '\0');
  for (size_t i = 0; i < mib.size(); ++i) mib[i] = static_cast<char>(1 + i % 251);  // no zero byte
  std::vector<std::pair<int, struct stat>> files;
  for (int i = 0; i < 2; ++i) {
    std::string p = dir_ + "/mib" + std::to_string(i);
    std::ofstream(p, std::ios::binary) << mib;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    files.emplace_back(fd, st);
  }
  // Room for one rounded file (2 MiB) but not two, though their bytes alone would fit.
  VerifyCache cache(VerifyCache::kChunkSize, 4 << 20, /*content_budget=*/(3 << 20) + (1 << 19));
  auto a = cache.Verify(files[0].first, files[0].second, &m_);
  ASSERT_TRUE(a.ok() && a->content);
  EXPECT_EQ(a->v->sha256, Sha256Hex(mib));
  EXPECT_TRUE(a->content->view() == mib);
  EXPECT_EQ(a->content->footprint(), a->content->sealed_fd() >= 0 ? 2u << 20 : mib.size());
  EXPECT_EQ(cache.content_bytes(), a->content->footprint());
  auto b = cache.Verify(files[1].first, files[1].second, &m_);
  ASSERT_TRUE(b.ok() && b->content);
  EXPECT_TRUE(b->content->view() == mib);
  EXPECT_LE(cache.content_bytes(), (3u << 20) + (1 << 19)) << "the budget was exceeded";
  if (a->content->sealed_fd() >= 0) {
    EXPECT_FALSE(cache.CachedContent(files[0].second, &m_));  // dropped for b
  }
  EXPECT_EQ(cache.loading_bytes(), 0u);
  for (auto& f : files) ::close(f.first);
}

TEST_F(VerifiedFileTest, FsVerityIsDetectedPerFile) {
  // This test machine's filesystem may lack fs-verity: the file then uses chunk digests.
  VerifyCache cache(1000);
  auto v = Verify(cache);
  EXPECT_EQ(v->mode, HasFsVerity(fd_) ? ServeMode::kFsVerity : ServeMode::kChunkDigests);
  EXPECT_EQ(m_.files_chunk_digests.load() + m_.files_fs_verity.load(), 1u);
}

}  // namespace
}  // namespace patchgate::server
