// A real server on 127.0.0.1 (ephemeral port) over a real SQLite store and a real signed
// repository; clients are raw sockets so every malformed request can be sent.
#include "server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <set>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/scratch_dir.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "store/forwarding_store.h"
#include "tuf/repository.h"

namespace patchgate::server {
namespace {

class Client {
 public:
  explicit Client(int port, int timeout_s = 10) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    timeval tv{timeout_s, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Client() { ::close(fd_); }
  bool Send(std::string_view s) { return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); }
  // Reads until the peer closes or times out.
  std::string ReadAll() {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

int StatusOf(const std::string& resp) { return resp.size() > 12 ? std::stoi(resp.substr(9, 3)) : 0; }
std::string BodyOf(const std::string& resp) {
  auto p = resp.find("\r\n\r\n");
  return p == std::string::npos ? "" : resp.substr(p + 4);
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_.path();
    tuf::InitOptions io;
    io.dir = dir_ + "/repo";
    tuf::KeyAccess access{"pw", false};
    ASSERT_TRUE(tuf::InitRepository(io, access, SystemClock::Get()).ok());
    office_bytes_ = std::string(200000, 'O');
    for (size_t i = 0; i < office_bytes_.size(); i += 97) office_bytes_[i] = static_cast<char>('a' + i % 26);
    std::ofstream(dir_ + "/setup.exe") << office_bytes_;
    std::ofstream(dir_ + "/mail.bin") << "mail patch";
    ASSERT_TRUE(tuf::Publish({io.dir, "office", "1", false, nullptr}, {dir_ + "/setup.exe"}, access, SystemClock::Get()).ok());
    ASSERT_TRUE(tuf::Publish({io.dir, "mail", "1", false, nullptr}, {dir_ + "/mail.bin"}, access, SystemClock::Get()).ok());
    office_url_ = "/targets/" + tuf::ConsistentTargetName("office/setup.exe", Sha256Hex(office_bytes_));
    mail_url_ = "/targets/" + tuf::ConsistentTargetName("mail/mail.bin", Sha256Hex("mail patch"));

    auto s = Store::Open("sqlite://" + dir_ + "/store.db");
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    Organisation a{0, "Contoso", "premier"}, b{0, "Globex", "gold"};
    ASSERT_TRUE(store_->AddOrganisation(a).ok());
    ASSERT_TRUE(store_->AddOrganisation(b).ok());
    ASSERT_TRUE(store_->AddUser("Contoso", "alice", Sha256Hex("alice-token")).ok());
    ASSERT_TRUE(store_->AddUser("Globex", "bob", Sha256Hex("bob-token")).ok());
    ASSERT_TRUE(store_->Grant("Contoso", "office").ok());
    ASSERT_TRUE(store_->Grant("Globex", "mail").ok());
  }
  void TearDown() override { StopServer(); }

  void StartServer(Store* store = nullptr, int header_timeout = 10) {
    ServerOptions o;
    o.repo_dir = dir_ + "/repo";
    o.listen = "127.0.0.1:0";
    o.node_name = "test-node";
    o.header_timeout_seconds = header_timeout;
    o.drain_seconds = 5;
    o.auth_cache_ms = 0;  // revocations must show at once in these tests
    o.audit_finish_ms = audit_finish_ms_;
    o.send_timeout_seconds = send_timeout_;
    if (tweak_) tweak_(o);
    auto s = Server::Create(o, store ? store : store_.get(), read_store_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { server_->Run(); });
  }
  // Publishes office/mid.bin, 24 MiB (more than the kernel's socket buffers absorb): its
  // bytes and its consistent-snapshot URL.
  void PublishMidFile(std::string* mid, std::string* url) {
    *mid = std::string(24 << 20, 'm');
    for (size_t i = 0; i < mid->size(); i += 4093) (*mid)[i] = static_cast<char>('a' + i % 26);
    std::ofstream(dir_ + "/mid.bin", std::ios::binary) << *mid;
    tuf::KeyAccess access{"pw", false};
    ASSERT_TRUE(tuf::Publish({dir_ + "/repo", "office", "4", false, nullptr}, {dir_ + "/mid.bin"}, access,
                             SystemClock::Get()).ok());
    *url = "/targets/" + tuf::ConsistentTargetName("office/mid.bin", Sha256Hex(*mid));
  }
  void StopServer() {
    if (!server_) return;
    server_->Stop();
    thread_.join();
    server_.reset();
  }
  std::string Get(const std::string& path, const std::string& token = "alice-token", const std::string& extra = "") {
    Client c(server_->port());
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    c.Send(req + extra + "\r\n");
    return c.ReadAll();
  }
  // This node's download records, as the store has them now.
  Result<std::vector<Download>> Rows() {
    DownloadQuery q;
    q.node = "test-node";
    return store_->QueryDownloads(q);
  }
  size_t Records(const std::string& outcome = "") {
    auto rows = Rows();
    size_t n = 0;
    for (const auto& d : *rows)
      if (outcome.empty() || DownloadOutcomeName(d.outcome) == outcome) ++n;
    return n;
  }

  ScratchDir scratch_{"serve"};  // removed after the server and store below are gone
  std::string dir_, office_bytes_, office_url_, mail_url_;
  int audit_finish_ms_ = 100;
  int send_timeout_ = 30;
  std::function<void(ServerOptions&)> tweak_;
  Store* read_store_ = nullptr;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(ServerTest, ServesVerifiedBytesAndAuditsTheDownload) {
  StartServer();
  std::string r = Get(office_url_);
  ASSERT_EQ(StatusOf(r), 200) << r.substr(0, 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
  EXPECT_NE(r.find("ETag: \"" + Sha256Hex(office_bytes_) + "\""), std::string::npos);
  StopServer();  // drains and completes the record
  auto rows = Rows();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].org_name, "Contoso");
  EXPECT_EQ((*rows)[0].username, "alice");
  EXPECT_EQ((*rows)[0].sha256, Sha256Hex(office_bytes_));
  EXPECT_EQ((*rows)[0].bytes_sent, office_bytes_.size());
  EXPECT_EQ((*rows)[0].outcome, DownloadOutcome::kComplete);
  EXPECT_EQ((*rows)[0].remote_addr, "127.0.0.1");
}

// The CLI stops a server from its signal thread and destroys it as soon as Run returns: Run
// must not return while that Stop is still inside the server (a use after free, seen once
// as a SIGSEGV on SIGTERM; ASan names it when the threads interleave that way).
TEST_F(ServerTest, AServerStoppedFromAnotherThreadOutlivesTheStop) {
  for (int i = 0; i < 100; ++i) {
    StartServer();
    std::thread stopper([s = server_.get()] { s->Stop(); });
    thread_.join();
    server_.reset();
    stopper.join();
  }
}

TEST_F(ServerTest, AuthenticationAndEntitlement) {
  StartServer();
  EXPECT_EQ(StatusOf(Get(office_url_, "")), 401);
  EXPECT_EQ(StatusOf(Get(office_url_, "wrong-token")), 401);
  EXPECT_EQ(StatusOf(Get(office_url_, "bob-token")), 403);  // Globex is not entitled to office
  EXPECT_EQ(StatusOf(Get(mail_url_, "bob-token")), 200);
  // HTTP basic user:token, with the right and the wrong user name.
  std::string basic = "Authorization: Basic " + Base64Encode("alice:alice-token") + "\r\n";
  EXPECT_EQ(StatusOf(Get(office_url_, "", basic)), 200);
  EXPECT_EQ(StatusOf(Get(office_url_, "", "Authorization: Basic " + Base64Encode("bob:alice-token") + "\r\n")), 401);
  ASSERT_TRUE(store_->RevokeUser("alice").ok());
  EXPECT_EQ(StatusOf(Get(office_url_)), 401);
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json", "")), 401);
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json", "bob-token")), 200);
  EXPECT_EQ(StatusOf(Get("/metadata/2.root.json", "bob-token")), 404);
  StopServer();
  EXPECT_EQ(Records(), 2u);  // only the two target 200s are downloads (metadata is not)
}

TEST_F(ServerTest, TraversalInAnyEncodingIsRefused) {
  StartServer();
  for (const char* path : {"/targets/../keys/targets.key.json", "/targets/%2e%2e/keys/targets.key.json",
                           "/targets/%252e%252e/keys/targets.key.json", "/targets/office/..%5c..%5ckeys",
                           "/targets/..\\keys\\targets.key.json", "/metadata/../keys/timestamp.key.json",
                           "/metadata/%2e%2e/patchgate-repo.json", "/keys/targets.key.json", "/targets/%00",
                           "//etc/passwd", "/targets//etc/passwd"}) {
    int st = StatusOf(Get(path));
    EXPECT_TRUE(st == 400 || st == 404) << path << " -> " << st;
  }
}

TEST_F(ServerTest, OversizedAndSmuggledHeadsAreRefused) {
  StartServer();
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "X-Big: " + std::string(70 * 1024, 'a') + "\r\n")), 431);
  std::string many;
  for (int i = 0; i < 150; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", many)), 431);
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")), 400);
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Content-Length: 4\r\n")), 400);
  Client c(server_->port());
  c.Send("POST " + office_url_ + " HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(StatusOf(c.ReadAll()), 405);
  StopServer();
  EXPECT_EQ(Records(), 0u);
}

TEST_F(ServerTest, SlowlorisIsDroppedAndOthersAreServed) {
  StartServer(nullptr, /*header_timeout=*/2);
  Client slow(server_->port(), 10);
  slow.Send("GET " + office_url_ + " HTTP/1.1\r\nHost: t\r\n");
  std::atomic<bool> done{false};
  std::thread drip([&] {
    for (int i = 0; i < 8 && !done; ++i) {
      slow.Send("X-Slow-" + std::to_string(i) + ": y\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(StatusOf(Get(office_url_)), 200);  // others unaffected
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  std::string r = slow.ReadAll();  // the server gives up on the slow head
  auto waited = std::chrono::steady_clock::now() - t0;
  done = true;
  drip.join();
  EXPECT_EQ(StatusOf(r), 408);
  EXPECT_LT(waited, std::chrono::seconds(5));
}

TEST_F(ServerTest, RangesValidInvalidAndHuge) {
  StartServer();
  std::string r = Get(office_url_, "alice-token", "Range: bytes=10-19\r\n");
  EXPECT_EQ(StatusOf(r), 206);
  EXPECT_EQ(BodyOf(r), office_bytes_.substr(10, 10));
  EXPECT_NE(r.find("Content-Range: bytes 10-19/200000"), std::string::npos);
  r = Get(office_url_, "alice-token", "Range: bytes=-5\r\n");
  EXPECT_EQ(BodyOf(r), office_bytes_.substr(office_bytes_.size() - 5));
  r = Get(office_url_, "alice-token", "Range: bytes=199990-99999999999999999\r\n");
  EXPECT_EQ(StatusOf(r), 206);
  EXPECT_EQ(BodyOf(r).size(), 10u);
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Range: bytes=999999999-\r\n")), 416);
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Range: bytes=99999999999999999999999-\r\n")), 200);  // malformed: ignored
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Range: bytes=5-1\r\n")), 200);
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Range: bytes=0-1,5-6\r\n")), 200);
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "Range: lines=1-2\r\n")), 200);
}

TEST_F(ServerTest, HeadKeepAliveAndMetrics) {
  StartServer();
  Client c(server_->port());
  std::string auth = "Authorization: Bearer alice-token\r\n";
  c.Send("HEAD " + office_url_ + " HTTP/1.1\r\nHost: t\r\n" + auth + "\r\nGET " + office_url_ +
         " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth + "\r\n");
  std::string both = c.ReadAll();
  EXPECT_EQ(StatusOf(both), 200);
  auto second = both.find("HTTP/1.1 200", 10);
  ASSERT_NE(second, std::string::npos);  // two responses on one connection
  EXPECT_EQ(BodyOf(both.substr(second)), office_bytes_);
  std::string m = Get("/metrics", "");
  EXPECT_NE(m.find("patchgate_downloads_total{outcome=\"complete\"} 1"), std::string::npos);
  EXPECT_NE(m.find("patchgate_audit_commit_seconds_count"), std::string::npos);
  EXPECT_EQ(BodyOf(Get("/healthz", "")), "ok\n");
  StopServer();
  EXPECT_EQ(Records(), 1u);  // HEAD is not a download
}

TEST_F(ServerTest, ATargetChangedOnDiskIsNeverServed) {
  StartServer();
  ASSERT_EQ(StatusOf(Get(office_url_)), 200);
  auto cat = tuf::LoadCatalogue(dir_ + "/repo");
  std::string file;
  for (const auto& e : *cat)
    if (e.path == "office/setup.exe") file = e.file;
  std::string infected = office_bytes_;
  infected.replace(1000, 7, "FUNLOVE");
  std::ofstream(file, std::ios::trunc) << infected;  // same length, new bytes
  std::string r = Get(office_url_);
  EXPECT_EQ(StatusOf(r), 503);
  EXPECT_EQ(r.find("FUNLOVE"), std::string::npos);
  EXPECT_EQ(BodyOf(r).find(office_bytes_.substr(0, 100)), std::string::npos);
  EXPECT_NE(Get("/metrics", "").find("patchgate_verify_mismatch_total 1"), std::string::npos);
  StopServer();
  EXPECT_EQ(Records(), 1u);  // the refused request is not a download
}

class UnavailableAudit : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>&) override {
    return Unavailable("database is down (injected)");
  }
};

TEST_F(ServerTest, StoreUnavailableMeansNothingIsServed) {
  UnavailableAudit down(store_.get());
  StartServer(&down);
  std::string r = Get(office_url_);
  EXPECT_EQ(StatusOf(r), 503);
  EXPECT_EQ(r.find(office_bytes_.substr(0, 64)), std::string::npos);
  StopServer();
  EXPECT_EQ(Records(), 0u);
}

TEST_F(ServerTest, ConcurrentDownloadsEqualCompletedRecords) {
  StartServer();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        std::string r = Get(office_url_);
        if (StatusOf(r) == 200 && BodyOf(r) == office_bytes_) ++ok;
      }
    });
  for (auto& th : threads) th.join();
  StopServer();
  EXPECT_EQ(ok.load(), 160);
  EXPECT_EQ(Records("complete"), static_cast<size_t>(ok.load()));
  EXPECT_EQ(Records(), static_cast<size_t>(ok.load()));
}

TEST_F(ServerTest, CompletionsWaitAndTheDrainWritesThem) {
  audit_finish_ms_ = 600000;  // nothing but the drain writes them
  StartServer();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(StatusOf(Get(office_url_)), 200);
  EXPECT_EQ(Records("in_progress"), 3u);  // each begin was durable before its first byte
  EXPECT_EQ(Records("complete"), 0u);
  auto t0 = std::chrono::steady_clock::now();
  StopServer();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(Records("complete"), 3u);
  EXPECT_EQ(Records(), 3u);
}

// One connection for everything: a look-up waits while an audit commit holds it.
class OneConnection : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& s) override {
    std::lock_guard<std::mutex> l(mu_);
    in_commit_ = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a very slow fsync
    in_commit_ = false;
    return ForwardingStore::BeginDownloads(s);
  }
  Result<User> AuthenticateTokenHash(const std::string& h) override {
    std::lock_guard<std::mutex> l(mu_);
    return ForwardingStore::AuthenticateTokenHash(h);
  }
  std::atomic<bool> in_commit_{false};

 private:
  std::mutex mu_;
};

TEST_F(ServerTest, LookupsDoNotQueueBehindAuditCommits) {
  OneConnection writes(store_.get());
  read_store_ = store_.get();
  StartServer(&writes);
  std::thread download([&] { EXPECT_EQ(StatusOf(Get(office_url_)), 200); });
  for (int i = 0; i < 200 && !writes.in_commit_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(writes.in_commit_);
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json", "bob-token")), 200);
  EXPECT_TRUE(writes.in_commit_);  // answered while the commit was still running
  download.join();
  StopServer();
  EXPECT_EQ(Records("complete"), 1u);
}

TEST_F(ServerTest, AcknowledgementLinks) {
  Incident inc{0, "n", 1, 2, "test", 3, {}};
  auto id = store_->CreateIncident(inc);
  auto org = store_->GetOrganisation("Contoso");
  ASSERT_TRUE(store_->EnsureNotification(*id, org->id, "smtp", "a@b", Sha256Hex("ack-token-1")).ok());
  StartServer();
  auto post = [&](const std::string& token) {
    Client c(server_->port());
    c.Send("POST /ack/" + token + " HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return c.ReadAll();
  };
  EXPECT_EQ(StatusOf(post("ack-token-1")), 200);
  EXPECT_EQ(StatusOf(post("ack-token-1")), 200);  // idempotent
  std::string r = post("unknown-token");
  EXPECT_EQ(StatusOf(r), 404);
  EXPECT_EQ(BodyOf(r), "not found\n");
  EXPECT_TRUE((*store_->ListNotifications(*id))[0].acked_at.has_value());
}

// ---- #9: the trust holes ------------------------------------------------------------

std::string TargetFile(const std::string& repo, const std::string& path) {
  auto cat = tuf::LoadCatalogue(repo);
  for (const auto& e : *cat)
    if (e.path == path) return e.file;
  return "";
}

// Overwrites bytes in place: same inode, same length (dd conv=notrunc).
void PokeInPlace(const std::string& file, uint64_t at, std::string_view bytes) {
  int fd = ::open(file.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// A client with a tiny receive window that reads slowly: the download stays in flight.
class SlowReader {
 public:
  explicit SlowReader(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int small = 16 * 1024;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~SlowReader() { ::close(fd_); }
  void Send(const std::string& s) { ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }
  // Reads until at least `n` bytes have arrived in total (or EOF).
  bool ReadUntil(size_t n) {
    char buf[8192];
    while (got_.size() < n) {
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) return false;
      got_.append(buf, static_cast<size_t>(r));
    }
    return true;
  }
  void ReadToEnd() { ReadUntil(SIZE_MAX); }
  const std::string& got() const { return got_; }
  int fd() const { return fd_; }

 private:
  int fd_;
  std::string got_;
};

class TamperTest : public ServerTest {
 protected:
  // The hash-while-send path: the 16 MiB file is not kept in verified memory (a test below
  // raises the cap to see the memory path instead).
  void SetUp() override {
    ServerTest::SetUp();
    tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 4 << 20; };
  }
  void PublishBig(size_t size = 16 << 20) {
    big_ = std::string(size, '\0');
    uint32_t x = 12345;
    for (auto& c : big_) {
      x = x * 1103515245 + 12345;
      c = static_cast<char>(x >> 24);
    }
    std::ofstream(dir_ + "/big.bin", std::ios::binary) << big_;
    tuf::KeyAccess access{"pw", false};
    ASSERT_TRUE(tuf::Publish({dir_ + "/repo", "office", "2", false, nullptr}, {dir_ + "/big.bin"}, access,
                             SystemClock::Get()).ok());
    big_url_ = "/targets/" + tuf::ConsistentTargetName("office/big.bin", Sha256Hex(big_));
    big_file_ = TargetFile(dir_ + "/repo", "office/big.bin");
    ASSERT_FALSE(big_file_.empty());
  }
  // What a response's body holds that the original bytes from `from` do not.
  static size_t ChangedBytes(const std::string& body, const std::string& original, size_t from) {
    size_t changed = 0;
    for (size_t i = 0; i < body.size(); ++i)
      if (from + i >= original.size() || body[i] != original[from + i]) ++changed;
    return changed;
  }
  std::string big_, big_url_, big_file_;
};

TEST_F(TamperTest, AFileChangedMidDownloadIsCutBeforeAnyChangedByte) {
  PublishBig();
  audit_finish_ms_ = 0;
  StartServer();
  for (const std::string range : {"", "Range: bytes=1000-16000000\r\n"}) {
    SlowReader c(server_->port());
    c.Send("GET " + big_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n" + range + "\r\n");
    ASSERT_TRUE(c.ReadUntil(1 << 20));  // the download is streaming, far from the change below
    std::string evil(64 * 1024, 'E');
    PokeInPlace(big_file_, 12 << 20, evil);
    c.ReadToEnd();
    std::string head = c.got().substr(0, c.got().find("\r\n\r\n") + 4);
    std::string body = c.got().substr(head.size());
    EXPECT_EQ(StatusOf(head), range.empty() ? 200 : 206);
    size_t from = range.empty() ? 0 : 1000;
    EXPECT_EQ(ChangedBytes(body, big_, from), 0u) << "changed bytes reached the client";
    EXPECT_LT(body.size(), (12u << 20) - from + 1) << "the download was not cut before the changed chunk";
    EXPECT_GT(body.size(), 1u << 20);
    PokeInPlace(big_file_, 12 << 20, std::string_view(big_).substr(12 << 20, evil.size()));  // restore
  }
  // Now the file is verified anew at its new ctime, and served whole again.
  std::string r = Get(big_url_);
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), big_);
  std::string m = Get("/metrics", "");
  EXPECT_NE(m.find("patchgate_integrity_aborts_total 2"), std::string::npos) << m;
  StopServer();
  auto rows = Rows();
  ASSERT_TRUE(rows.ok());
  int aborted = 0;
  for (const auto& d : *rows) {
    if (d.outcome != DownloadOutcome::kAborted) continue;
    ++aborted;
    EXPECT_GT(d.bytes_sent, 1u << 20);  // the bytes really sent, all of them verified
    EXPECT_LE(d.bytes_sent, 12u << 20);  // nothing from the changed chunk on
    // ...and says why (migration 0005): the changed chunk, the 48th of 256 KiB (12 MiB in).
    EXPECT_EQ(d.detail.rfind("integrity: chunk 48 (bytes 12582912-12845055) no longer matches", 0), 0u) << d.detail;
  }
  for (const auto& d : *rows)
    if (d.outcome != DownloadOutcome::kAborted) EXPECT_EQ(d.detail, "") << "only a cut download has a reason";
  EXPECT_EQ(aborted, 2);  // never "complete" with the signed hash
  EXPECT_EQ(Records("complete"), 1u);
}

TEST_F(TamperTest, ARangeOnAChangedChunkGetsNoChangedByte) {
  PublishBig();
  StartServer();
  ASSERT_EQ(StatusOf(Get(big_url_, "alice-token", "Range: bytes=0-99\r\n")), 206);  // verified and cached
  PokeInPlace(big_file_, 5 << 20, "EVIL");
  for (const std::string range : {"bytes=5242880-5242883", "bytes=5242000-5243000", "bytes=5000000-5100000"}) {
    std::string r = Get(big_url_, "alice-token", "Range: " + range + "\r\n");
    EXPECT_EQ(StatusOf(r), 503) << range;
    EXPECT_EQ(r.find("EVIL"), std::string::npos) << range;
    EXPECT_EQ(BodyOf(r).find(big_.substr(5000000, 64)), std::string::npos);
  }
  StopServer();
  EXPECT_EQ(Records(), 1u);  // refused requests are not downloads
}

// Kept in verified memory (a sealed memfd, sent with sendfile): a file changed on disk
// mid-download changes nothing that is sent (the bytes sent are the verified ones, whole);
// the next request sees the changed file, verifies it again and refuses it (quarantined).
TEST_F(TamperTest, AFileKeptInMemoryIsSentAsVerifiedAndRefusedOnceChanged) {
  PublishBig();
  audit_finish_ms_ = 0;
  tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 64 << 20; };
  StartServer();
  ASSERT_EQ(BodyOf(Get(big_url_)), big_);  // verified and kept
  SlowReader c(server_->port());
  c.Send("GET " + big_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n\r\n");
  ASSERT_TRUE(c.ReadUntil(1 << 20));
  std::string evil(64 * 1024, 'E');
  PokeInPlace(big_file_, 12 << 20, evil);
  ASSERT_TRUE(c.ReadUntil(c.got().find("\r\n\r\n") + 4 + big_.size()));
  std::string body = c.got().substr(c.got().find("\r\n\r\n") + 4);
  EXPECT_EQ(body, big_) << "the bytes sent are not the verified ones";
  std::string r = Get(big_url_);
  EXPECT_EQ(StatusOf(r), 503);
  EXPECT_EQ(r.find(evil.substr(0, 64)), std::string::npos);
  std::string m = Get("/metrics", "");
  EXPECT_EQ(m.find("patchgate_verify_mismatch_total 0"), std::string::npos) << m;
  StopServer();
  EXPECT_EQ(Records("complete"), 2u);
}

// A 1.5 MiB file is kept in a memfd rounded up to one 2 MiB folio (VerifiedBytes::Footprint)
// and sent from it by sendfile: exactly its bytes go out, whole or ranged, and nothing past
// them (two requests on one connection: a stray zero would break the second response); once
// changed on disk it is verified again and refused, and no changed byte is sent.
TEST_F(TamperTest, AFileKeptInARoundedFolioIsSentExactlyAndRefusedOnceChanged) {
  PublishBig((3 << 20) / 2);
  audit_finish_ms_ = 0;
  tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 64 << 20; };
  StartServer();
  ASSERT_EQ(BodyOf(Get(big_url_)), big_);  // verified and kept
  Client c(server_->port());
  std::string auth = "Authorization: Bearer alice-token\r\n";
  c.Send("GET " + big_url_ + " HTTP/1.1\r\nHost: t\r\n" + auth + "\r\nGET " + big_url_ +
         " HTTP/1.1\r\nHost: t\r\n" + auth + "Range: bytes=-100\r\nConnection: close\r\n\r\n");
  std::string both = c.ReadAll();
  size_t body1 = both.find("\r\n\r\n") + 4;
  ASSERT_GE(both.size(), body1 + big_.size());
  EXPECT_TRUE(both.substr(body1, big_.size()) == big_) << "not the verified bytes";
  std::string second = both.substr(body1 + big_.size());
  EXPECT_EQ(StatusOf(second), 206) << second.substr(0, 200);
  EXPECT_EQ(BodyOf(second), big_.substr(big_.size() - 100));
  std::string m = Get("/metrics", "");
  EXPECT_NE(m.find("patchgate_verify_loads_total 1\n"), std::string::npos) << m;
  PokeInPlace(big_file_, 1 << 20, std::string(4096, 'E'));
  std::string r = Get(big_url_);
  EXPECT_EQ(StatusOf(r), 503);
  EXPECT_EQ(r.find(std::string(64, 'E')), std::string::npos);
  StopServer();
  EXPECT_EQ(Records("complete") + Records("partial"), 3u);
}

// Eight customers ask for a cold 16 MiB file (kept in verified memory) at once: one of
// their requests reads and verifies it, the others wait for that and get the same verified
// bytes (patchgate_verify_loads_total counts the reads).
TEST_F(TamperTest, ConcurrentColdRequestsAreVerifiedOnceAndAllServed) {
  PublishBig();
  audit_finish_ms_ = 0;
  tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 64 << 20; };
  StartServer();
  constexpr int kRequests = 8;
  std::vector<std::string> got(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) threads.emplace_back([&, i] { got[i] = Get(big_url_); });
  for (auto& t : threads) t.join();
  for (const auto& r : got) {
    EXPECT_EQ(StatusOf(r), 200);
    EXPECT_TRUE(BodyOf(r) == big_) << "not the verified bytes";
  }
  std::string m = Get("/metrics", "");
  EXPECT_NE(m.find("patchgate_verify_loads_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("patchgate_verified_files_total{mode=\"chunk-digest\"} 1\n"), std::string::npos) << m;
  StopServer();
  EXPECT_EQ(Records("complete"), static_cast<size_t>(kRequests));
}

// The same for a file changed on disk before anyone asked for it: every request is refused,
// no byte of it is sent, it is read once; restored, it is verified again and served (the
// refusal did not stick to the path).
TEST_F(TamperTest, ConcurrentColdRequestsForATamperedFileAreAllRefused) {
  PublishBig();
  audit_finish_ms_ = 0;
  tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 64 << 20; };
  std::string evil(4096, 'E');
  PokeInPlace(big_file_, 5 << 20, evil);
  StartServer();
  constexpr int kRequests = 8;
  std::vector<std::string> got(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) threads.emplace_back([&, i] { got[i] = Get(big_url_); });
  for (auto& t : threads) t.join();
  for (const auto& r : got) {
    EXPECT_EQ(StatusOf(r), 503);
    EXPECT_EQ(r.find(evil.substr(0, 64)), std::string::npos);
    EXPECT_EQ(r.find(big_.substr(0, 64)), std::string::npos);
  }
  std::string m = Get("/metrics", "");
  EXPECT_NE(m.find("patchgate_verify_loads_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("patchgate_verify_mismatch_total 8\n"), std::string::npos) << m;
  PokeInPlace(big_file_, 5 << 20, std::string_view(big_).substr(5 << 20, evil.size()));  // restored
  std::string r = Get(big_url_);
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_TRUE(BodyOf(r) == big_);
  StopServer();
  EXPECT_EQ(Records(), 1u);  // the refusals are not downloads
}

TEST_F(ServerTest, AfterA400ThatSaysCloseNothingMoreIsServed) {
  StartServer();
  Client c(server_->port());
  c.Send("GET /targets/%00 HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string r = c.ReadAll();
  EXPECT_EQ(StatusOf(r), 400);
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
  EXPECT_EQ(r.find("HTTP/1.1", 5), std::string::npos) << "a pipelined request was served after the 400:\n" << r;
}

TEST_F(ServerTest, ANonReadingClientIsDroppedAtTheSendTimeout) {
  send_timeout_ = 2;
  audit_finish_ms_ = 0;
  std::string big(32 << 20, 'x');
  std::ofstream(dir_ + "/huge.bin", std::ios::binary) << big;
  tuf::KeyAccess access{"pw", false};
  ASSERT_TRUE(tuf::Publish({dir_ + "/repo", "office", "3", false, nullptr}, {dir_ + "/huge.bin"}, access,
                           SystemClock::Get()).ok());
  StartServer();
  SlowReader c(server_->port());
  c.Send("GET /targets/" + tuf::ConsistentTargetName("office/huge.bin", Sha256Hex(big)) +
         " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n\r\n");
  auto t0 = std::chrono::steady_clock::now();
  // Never read. The server must give up about send_timeout after the window closed.
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (Get("/metrics", "").find("patchgate_downloads_total{outcome=\"aborted\"} 1") != std::string::npos) break;
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(12)) << "the stalled client was not dropped";
  }
  StopServer();
  EXPECT_EQ(Records("aborted"), 1u);
}

TEST_F(ServerTest, AcknowledgementNeedsADeliberatePost) {
  Incident inc{0, "n", 1, 2, "test", 3, {}};
  auto id = store_->CreateIncident(inc);
  auto org = store_->GetOrganisation("Contoso");
  ASSERT_TRUE(store_->EnsureNotification(*id, org->id, "smtp", "a@b", Sha256Hex("ack-token-2")).ok());
  StartServer();
  auto acked = [&] { return (*store_->ListNotifications(*id))[0].acked_at.has_value(); };
  // What a mail link scanner does: GET and HEAD. They show a page and record nothing.
  std::string page = Get("/ack/ack-token-2", "");
  EXPECT_EQ(StatusOf(page), 200);
  EXPECT_NE(page.find("<form method=\"post\" action=\"/ack/ack-token-2\">"), std::string::npos);
  Client h(server_->port());
  h.Send("HEAD /ack/ack-token-2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(h.ReadAll()), 200);
  EXPECT_FALSE(acked());
  // The button.
  Client p(server_->port());
  p.Send("POST /ack/ack-token-2 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  std::string r = p.ReadAll();
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_NE(r.find("recorded"), std::string::npos);
  EXPECT_TRUE(acked());
  Client u(server_->port());
  u.Send("POST /ack/unknown-token HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(u.ReadAll()), 404);
  Client t(server_->port());
  t.Send("POST " + office_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n\r\n");
  EXPECT_EQ(StatusOf(t.ReadAll()), 405);  // POST is for acknowledgements only
}

TEST_F(ServerTest, SymbolicLinksInTheServedTreeAreNeverFollowed) {
  std::string md = dir_ + "/repo/metadata";
  ASSERT_EQ(::symlink("../keys/timestamp.key.json", (md + "/tk.json").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (md + "/pw.json").c_str()), 0);
  // A published target replaced by a link to a file with the very same bytes.
  std::string file = TargetFile(dir_ + "/repo", "office/setup.exe");
  std::ofstream(dir_ + "/copy.exe", std::ios::binary) << office_bytes_;
  ASSERT_EQ(::rename(file.c_str(), (file + ".moved").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ + "/copy.exe").c_str(), file.c_str()), 0);
  StartServer();
  for (const char* p : {"/metadata/tk.json", "/metadata/pw.json"}) {
    std::string r = Get(p);
    EXPECT_EQ(StatusOf(r), 404) << p;
    EXPECT_EQ(r.find("keytype"), std::string::npos);
    EXPECT_EQ(r.find("root:"), std::string::npos);
  }
  EXPECT_EQ(StatusOf(Get(office_url_)), 503);
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json")), 200);  // real files still are
}

// The token check compares the whole hash, on both engines (issue #9 §8): a stored hash
// that differs from the token's only in its last digit, or only in its first, is refused.
class TokenCheckTest : public ServerTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(TokenCheckTest, ATokenWhoseHashDiffersLateIsRefused) {
  Store* s = store_.get();
  std::unique_ptr<Store> pg;
  std::string p;  // name prefix: the PostgreSQL test database is shared by every run
  if (GetParam() == "postgresql") {
    const char* url = std::getenv("PATCHGATE_TEST_PG_URL");
    if (!url || !*url) GTEST_SKIP() << "PATCHGATE_TEST_PG_URL is not set: no PostgreSQL to test against";
    auto opened = Store::Open(url);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    pg = std::move(*opened);
    s = pg.get();
    p = "t" + std::to_string(SystemClock::Get().NowMicros()) + "-";
    ASSERT_TRUE(s->AddOrganisation(Organisation{0, p + "Contoso", "premier"}).ok());
    ASSERT_TRUE(s->AddUser(p + "Contoso", p + "alice", Sha256Hex(p + "alice-token")).ok());
    ASSERT_TRUE(s->Grant(p + "Contoso", "office").ok());
  }
  // mallory's stored hash equals the hash of her token except in its last digit.
  std::string h = Sha256Hex(p + "mallory-token");
  h.back() = h.back() == '0' ? '1' : '0';
  ASSERT_TRUE(s->AddUser(p + "Contoso", p + "mallory", h).ok());
  std::string early = Sha256Hex(p + "eve-token");
  early[0] = early[0] == '0' ? '1' : '0';
  ASSERT_TRUE(s->AddUser(p + "Contoso", p + "eve", early).ok());
  const int64_t since = SystemClock::Get().NowMicros();
  StartServer(s);
  EXPECT_EQ(StatusOf(Get(office_url_, p + "mallory-token")), 401);
  EXPECT_EQ(StatusOf(Get(office_url_, p + "eve-token")), 401);
  EXPECT_EQ(StatusOf(Get(office_url_, p + "alice-token")), 200);
  StopServer();
  DownloadQuery q;
  q.org = p + "Contoso";
  q.since = since;
  auto rows = s->QueryDownloads(q);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].username, p + "alice");
}

INSTANTIATE_TEST_SUITE_P(Engines, TokenCheckTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

// Holds a store call while armed: the call blocks in Pass() until the test disarms it;
// WaitHeld() says (within 10 s) that one is held. Thread-safe.
class HoldGate {
 public:
  void Pass() {
    std::unique_lock<std::mutex> l(mu_);
    if (!armed_) return;
    held_ = true;
    cv_.notify_all();
    cv_.wait(l, [&] { return !armed_; });
  }
  void Arm(bool on) {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = on;
    cv_.notify_all();
  }
  bool WaitHeld() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10), [&] { return held_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, held_ = false;
};

// The one-step audit record (BeginDownloads: written and durable at once), held at the gate.
class HeldBegin : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& s) override {
    gate.Pass();
    return ForwardingStore::BeginDownloads(s);
  }
  HoldGate gate;
};

TEST_F(ServerTest, NoByteLeavesBeforeTheRecordIsDurable) {
  HeldBegin held(store_.get());
  held.gate.Arm(true);
  StartServer(&held);
  Client c(server_->port());
  c.Send("GET " + office_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(held.gate.WaitHeld());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // time for any early byte to arrive
  char b;
  ssize_t n = ::recv(c.fd(), &b, 1, MSG_DONTWAIT);
  EXPECT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << "the client received bytes before the record was durable";
  held.gate.Arm(false);
  std::string r = c.ReadAll();
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
  StopServer();  // before `held` goes
}

TEST_F(ServerTest, HostileHeaderBytesAreStoredAsValidUtf8) {
  audit_finish_ms_ = 0;
  StartServer();
  std::string ua = "evil\xff\xfe agent \xe2\x82";  // not UTF-8, ends inside a character
  std::string r = Get(office_url_, "alice-token", "User-Agent: " + ua + "\r\nRange: bytes=0-9\xc3\r\n");
  EXPECT_EQ(StatusOf(r), 200);  // a malformed range is ignored
  EXPECT_EQ(StatusOf(Get(office_url_, "alice-token", "User-Agent: " + std::string(254, 'b') + "\xe2\x82\xac\r\n")), 200);
  StopServer();
  auto rows = Rows();
  ASSERT_EQ(rows->size(), 2u);
  std::set<std::string> uas;
  for (const auto& d : *rows) {
    EXPECT_TRUE(IsValidUtf8(d.user_agent));
    EXPECT_TRUE(IsValidUtf8(d.range));
    EXPECT_LE(d.user_agent.size(), 256u);
    uas.insert(d.user_agent);
    if (d.user_agent.rfind("evil", 0) == 0) EXPECT_EQ(d.range, "bytes=0-9\\xC3");
  }
  EXPECT_TRUE(uas.count("evil\\xFF\\xFE agent \\xE2\\x82"));
  EXPECT_TRUE(uas.count(std::string(253, 'b') + "..."));  // cut before the 3-byte character, not through it
}

TEST_F(ServerTest, DateHeaderAndAbsoluteFormForOurOwnHost) {
  StartServer();
  std::string host = "127.0.0.1:" + std::to_string(server_->port());
  Client c(server_->port());
  c.Send("GET http://" + host + office_url_ + " HTTP/1.1\r\nHost: " + host +
         "\r\nAuthorization: Bearer alice-token\r\nConnection: close\r\n\r\n");
  std::string r = c.ReadAll();
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
  EXPECT_NE(r.find("\r\nDate: "), std::string::npos);
  EXPECT_NE(r.find(" GMT\r\n"), std::string::npos);
  Client other(server_->port());
  other.Send("GET http://elsewhere.example" + office_url_ + " HTTP/1.1\r\nHost: " + host +
             "\r\nAuthorization: Bearer alice-token\r\n\r\n");
  EXPECT_EQ(StatusOf(other.ReadAll()), 400);
  Client two(server_->port());
  two.Send("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  EXPECT_EQ(StatusOf(two.ReadAll()), 400);
}

// ---- the event-driven core ----

// A client socket bound to a chosen loopback source address.
int ConnectFrom(int port, const char* source) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, source, &src.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

size_t ThreadsOfThisProcess() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

TEST_F(ServerTest, ManyIdleAndSlowConnectionsCostNoThreadsAndHealthzAnswers) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  const size_t kIdle = std::min<size_t>(1500, (rl.rlim_cur - 200) / 2), kSlow = 300;
  StartServer();
  size_t threads_before = ThreadsOfThisProcess();
  std::vector<int> fds;
  for (size_t i = 0; i < kIdle + kSlow; ++i) {
    // Spread over source addresses, as many clients would be.
    std::string src = "127.0.0." + std::to_string(2 + i % 50);
    int fd = ConnectFrom(server_->port(), src.c_str());
    ASSERT_GE(fd, 0) << "connection " << i;
    if (i >= kIdle) {  // slowloris: a head that never ends
      std::string part = "GET " + office_url_ + " HTTP/1.1\r\nHost: t\r\nX-Slow: ";
      ASSERT_GT(::send(fd, part.data(), part.size(), MSG_NOSIGNAL), 0);
    }
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(StatusOf(Get("/healthz", "")), 200);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  }
  std::string r = Get(office_url_);
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
  // A thread per connection would add ~1,800 threads; the loops and workers are a few dozen.
  EXPECT_LT(ThreadsOfThisProcess(), threads_before + 64) << "connections are holding threads";
  std::string m = Get("/metrics", "");
  EXPECT_NE(m.find("patchgate_connections_open "), std::string::npos);
  for (int fd : fds) ::close(fd);
}

// One response on a keep-alive connection (head and Content-Length body); "" on EOF/error.
std::string ReadOneResponse(int fd) {
  std::string got;
  char buf[4096];
  for (;;) {
    auto end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      auto cl = got.find("Content-Length: ");
      size_t len = cl == std::string::npos || cl > end ? 0 : std::stoul(got.substr(cl + 16));
      if (got.size() >= end + 4 + len) return got;
    }
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return "";
    got.append(buf, static_cast<size_t>(r));
  }
}

// Whether the server closed `fd` (EOF, possibly after a last response), waiting up to `wait_ms`.
bool ClosedByServer(int fd, int wait_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  char buf[4096];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return true;
    if (r > 0) continue;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The loop's deadlines over many connections opened and closed in any order: an idle
// keep-alive connection is closed at the idle deadline, a silent one at the header deadline,
// a slow head gets its 408; a connection that keeps asking is never dropped as idle; and a
// head begun on a kept-alive connection gets the (earlier) header deadline, not what is
// left of the idle one.
TEST_F(ServerTest, IdleAndHeaderDeadlinesHoldAmongManyConnections) {
  tweak_ = [](ServerOptions& o) { o.idle_timeout_seconds = 6; };
  StartServer(nullptr, /*header_timeout=*/2);
  const std::string ask = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  std::vector<std::unique_ptr<Client>> idle, silent, slow;
  auto late_slow = std::make_unique<Client>(server_->port(), 30);
  ASSERT_TRUE(late_slow->Send(ask));
  ASSERT_EQ(StatusOf(ReadOneResponse(late_slow->fd())), 200);
  for (int i = 0; i < 150; ++i) {
    if (i % 3 == 0) {
      idle.push_back(std::make_unique<Client>(server_->port(), 30));
      ASSERT_TRUE(idle.back()->Send(ask));
      ASSERT_EQ(StatusOf(ReadOneResponse(idle.back()->fd())), 200);
    } else if (i % 3 == 1) {
      silent.push_back(std::make_unique<Client>(server_->port(), 30));
    } else {
      slow.push_back(std::make_unique<Client>(server_->port(), 30));
      ASSERT_TRUE(slow.back()->Send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "));
    }
    if (i % 7 == 6) idle.erase(idle.begin());  // closed by the client, in the middle of the others
  }
  // A head begun on the kept-alive connection: it now has the header deadline (2 s), which
  // comes before the idle deadline of the connections kept alive before it (6 s).
  ASSERT_TRUE(late_slow->Send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "));
  Client busy(server_->port(), 30);
  ASSERT_TRUE(busy.Send(ask));  // kept alive from now on (a silent one would go at the header deadline)
  ASSERT_EQ(StatusOf(ReadOneResponse(busy.fd())), 200);
  auto t0 = std::chrono::steady_clock::now();
  std::string r = late_slow->ReadAll();
  EXPECT_EQ(StatusOf(r), 408) << r;
  size_t idle_closed_before = 0;
  for (auto& c : idle) idle_closed_before += ClosedByServer(c->fd(), 0) ? 1 : 0;
  EXPECT_EQ(idle_closed_before, 0u) << "the slow head on a kept-alive connection waited for the idle deadline";
  // Every silent and slow connection goes at its header deadline (slow ones with a 408).
  for (auto& c : silent) EXPECT_TRUE(ClosedByServer(c->fd(), 30000));
  for (auto& c : slow) {
    std::string s = c->ReadAll();
    EXPECT_EQ(StatusOf(s), 408);
  }
  // The busy connection asks every 300 ms for longer than the idle timeout: never dropped.
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(8)) {
    ASSERT_TRUE(busy.Send(ask));
    ASSERT_EQ(StatusOf(ReadOneResponse(busy.fd())), 200) << "a connection in use was dropped";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  // Every idle connection is closed at its idle deadline.
  for (auto& c : idle) EXPECT_TRUE(ClosedByServer(c->fd(), 30000)) << "an idle connection was kept";
  EXPECT_FALSE(ClosedByServer(busy.fd(), 0));
  ASSERT_TRUE(busy.Send(ask));
  EXPECT_EQ(StatusOf(ReadOneResponse(busy.fd())), 200);
}

// A head that arrives in pieces (a byte at a time, then in parts with pauses) is read on as
// each piece comes (the loop waits for readability after a short read, never for more than
// is there), on the same kept-alive connection as whole heads.
TEST_F(ServerTest, AHeadArrivingInPiecesIsServed) {
  StartServer();
  Client c(server_->port(), 30);
  const std::string head = "GET " + office_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n\r\n";
  for (size_t i = 0; i < 40; ++i) {  // the first 40 bytes one by one
    ASSERT_TRUE(c.Send(head.substr(i, 1)));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(c.Send(head.substr(40, 30)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(c.Send(head.substr(70)));
  std::string r = ReadOneResponse(c.fd());
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
  ASSERT_TRUE(c.Send(head));  // then a whole one on the same connection
  r = ReadOneResponse(c.fd());
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
}

// A client that reads a long body steadily, but for longer in all than the send timeout, is
// never dropped: the timeout is for no progress, and each write moves it.
TEST_F(ServerTest, ASteadyReaderSlowerThanTheSendTimeoutGetsTheWholeBody) {
  send_timeout_ = 1;
  tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 64 << 20; };
  std::string mid, url;
  ASSERT_NO_FATAL_FAILURE(PublishMidFile(&mid, &url));
  StartServer();
  ASSERT_EQ(BodyOf(Get(url)), mid);  // verified and kept in memory: the loop sends it
  SlowReader c(server_->port());
  c.Send("GET " + url + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n\r\n");
  auto t0 = std::chrono::steady_clock::now();
  std::string got;
  char buf[16384];
  for (;;) {
    ssize_t r = ::recv(c.fd(), buf, sizeof buf, 0);
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
    if (got.size() >= mid.size() && BodyOf(got).size() >= mid.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto took = std::chrono::steady_clock::now() - t0;
  std::printf("steady reader: %zu bytes in %.1f s (send timeout 1 s)\n", got.size(),
              std::chrono::duration<double>(took).count());
  EXPECT_EQ(StatusOf(got), 200);
  EXPECT_TRUE(BodyOf(got) == mid) << "the body was cut after " << BodyOf(got).size() << " bytes";
}

TEST_F(ServerTest, ConnectionsPerSourceAddressAreCapped) {
  tweak_ = [](ServerOptions& o) { o.max_connections_per_address = 3; };
  StartServer();
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(ConnectFrom(server_->port(), "127.0.0.7"));
  for (int fd : held) ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int over = ConnectFrom(server_->port(), "127.0.0.7");
  ASSERT_GE(over, 0);  // the kernel accepts; the server closes it at once
  std::string req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  ::send(over, req.data(), req.size(), MSG_NOSIGNAL);
  char b[64];
  EXPECT_LE(::recv(over, b, sizeof b, 0), 0) << "a fourth connection from one address was served";
  ::close(over);
  // Other addresses are not affected, and a freed slot is usable again.
  int other = ConnectFrom(server_->port(), "127.0.0.8");
  ASSERT_GE(other, 0);
  ::send(other, req.data(), req.size(), MSG_NOSIGNAL);
  EXPECT_GT(::recv(other, b, sizeof b, 0), 0);
  ::close(other);
  ::close(held[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int again = ConnectFrom(server_->port(), "127.0.0.7");
  ::send(again, req.data(), req.size(), MSG_NOSIGNAL);
  EXPECT_GT(::recv(again, b, sizeof b, 0), 0);
  ::close(again);
  for (size_t i = 1; i < held.size(); ++i) ::close(held[i]);
}

TEST_F(ServerTest, AStalledReaderOfAFileServedFromMemoryIsDroppedWithItsBytesRecorded) {
  send_timeout_ = 2;
  audit_finish_ms_ = 0;
  // Larger than what the kernel's socket buffers absorb, and kept in verified memory (the
  // cap raised for the test), so the loop sends it.
  tweak_ = [](ServerOptions& o) { o.verified_memory_max_file = 64 << 20; };
  std::string mid, url;
  ASSERT_NO_FATAL_FAILURE(PublishMidFile(&mid, &url));
  StartServer();
  ASSERT_EQ(BodyOf(Get(url)), mid);  // verified and kept in memory
  SlowReader c(server_->port());
  c.Send("GET " + url + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\n\r\n");
  // While it stalls, no worker is held by it: others are served at once.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(StatusOf(Get(mail_url_, "bob-token")), 200);
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (Get("/metrics", "").find("patchgate_downloads_total{outcome=\"aborted\"} 1") != std::string::npos) break;
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(12)) << "the stalled client was not dropped";
  }
  StopServer();
  auto rows = Rows();
  ASSERT_TRUE(rows.ok());
  size_t aborted = 0;
  for (const auto& d : *rows) {
    if (d.outcome != DownloadOutcome::kAborted) continue;
    ++aborted;
    EXPECT_GT(d.bytes_sent, 0u);           // the kernel took some (socket buffers) ...
    EXPECT_LT(d.bytes_sent, mid.size());   // ... never all: the record says what was really sent
  }
  EXPECT_EQ(aborted, 1u);
}

TEST_F(ServerTest, ConditionalRequestsGet304ForMetadataAndTargets) {
  audit_finish_ms_ = 0;
  StartServer();
  std::string ts = Get("/metadata/timestamp.json");
  ASSERT_EQ(StatusOf(ts), 200);
  auto at = ts.find("\r\nETag: ");
  ASSERT_NE(at, std::string::npos);
  std::string etag = ts.substr(at + 8, ts.find("\r\n", at + 8) - at - 8);
  EXPECT_EQ(etag, "\"" + Sha256Hex(BodyOf(ts)) + "\"");
  std::string again = Get("/metadata/timestamp.json", "alice-token", "If-None-Match: " + etag + "\r\n");
  EXPECT_EQ(StatusOf(again), 304);
  EXPECT_EQ(BodyOf(again), "");
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json", "alice-token", "If-None-Match: \"other\"\r\n")), 200);
  // No token, no 304: the condition is answered only to whom the file would be.
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json", "", "If-None-Match: " + etag + "\r\n")), 401);
  std::string tag = "\"" + Sha256Hex(office_bytes_) + "\"";
  std::string t = Get(office_url_, "alice-token", "If-None-Match: W/\"x\", " + tag + "\r\n");
  EXPECT_EQ(StatusOf(t), 304);
  EXPECT_EQ(BodyOf(t), "");
  EXPECT_EQ(StatusOf(Get(office_url_, "bob-token", "If-None-Match: " + tag + "\r\n")), 403);  // not entitled
  StopServer();
  EXPECT_EQ(Records(), 0u);  // nothing was sent, so nothing was downloaded
}

TEST_F(ServerTest, TheLoopPathSendsNoByteBeforeTheRecordIsDurable) {
  // With the caches on, a repeated download is answered by the event loop (no worker): its
  // response waits for the group commit without a thread, and still sends nothing before.
  HeldBegin gate(store_.get());
  tweak_ = [](ServerOptions& o) { o.auth_cache_ms = 60000; };
  StartServer(&gate);
  ASSERT_EQ(BodyOf(Get(office_url_)), office_bytes_);  // warms token, entitlement, verified bytes
  auto loop_answers = [&] {
    std::string m = Get("/metrics", "");
    auto p = m.find("\npatchgate_loop_answers_total ");
    return p == std::string::npos ? -1 : std::stol(m.substr(p + 30));
  };
  long before = loop_answers();
  gate.gate.Arm(true);
  Client c(server_->port());
  c.Send("GET " + office_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(gate.gate.WaitHeld());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // time for any early byte to arrive
  char b;
  ssize_t n = ::recv(c.fd(), &b, 1, MSG_DONTWAIT);
  EXPECT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << "bytes left before the record was durable";
  EXPECT_EQ(loop_answers(), before + 1) << "the download did not take the loop path";
  EXPECT_EQ(StatusOf(Get("/healthz", "")), 200);  // the held response holds no loop either
  gate.gate.Arm(false);
  std::string r = c.ReadAll();
  EXPECT_EQ(StatusOf(r), 200);
  EXPECT_EQ(BodyOf(r), office_bytes_);
  StopServer();
  EXPECT_EQ(Records("complete"), 2u);
}

// The real store's two steps (written, then flushed to disk), with the flush held at the
// gate: the durable point of a record is the end of its flush, not its write. With `fail`
// set, the flush fails (the disk said no).
class HeldFlush : public ForwardingStore {
 public:
  explicit HeldFlush(Store* s) : ForwardingStore(s), real_(s) {}
  Result<std::vector<int64_t>> WriteDownloads(const std::vector<DownloadStart>& s) override {
    return real_->WriteDownloads(s);
  }
  Status WriteFinishes(const std::vector<DownloadFinish>& f) override { return real_->WriteFinishes(f); }
  Status SyncDownloads() override {
    gate.Pass();
    if (fail) return Unavailable("test: the flush failed");
    return real_->SyncDownloads();
  }
  HoldGate gate;
  std::atomic<bool> fail{false};

 private:
  Store* real_;
};

// Both serving paths (the loop's, for bytes held in memory; a worker's hash-while-send for
// files not kept) hold the response until the record's flush has returned.
TEST_F(ServerTest, NoByteLeavesBeforeTheFlushThatMakesTheRecordDurable) {
  for (bool in_memory : {true, false}) {
    SCOPED_TRACE(in_memory ? "loop path, verified bytes in memory" : "worker path, hash-while-send");
    HeldFlush gate(store_.get());
    tweak_ = [in_memory](ServerOptions& o) {
      o.auth_cache_ms = 60000;
      if (!in_memory) o.verified_memory_max_file = 0;
    };
    StartServer(&gate);
    ASSERT_EQ(BodyOf(Get(office_url_)), office_bytes_);  // warms the caches
    size_t before = Records();
    gate.gate.Arm(true);
    Client c(server_->port());
    c.Send("GET " + office_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice-token\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(gate.gate.WaitHeld());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // time for any early byte to arrive
    EXPECT_EQ(Records(), before + 1) << "the record was not written before its flush (not the two-step path)";
    char b;
    ssize_t n = ::recv(c.fd(), &b, 1, MSG_DONTWAIT);
    EXPECT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << "bytes left before the record was flushed";
    gate.gate.Arm(false);
    std::string r = c.ReadAll();
    EXPECT_EQ(StatusOf(r), 200);
    EXPECT_EQ(BodyOf(r), office_bytes_);
    StopServer();
  }
}

// A response held for its flush is sent by the flushing thread itself when the loop is
// idle; a flush that fails still sends the refusal, never the file (on both paths).
TEST_F(ServerTest, AFailedFlushSendsTheRefusalNotTheFile) {
  for (bool in_memory : {true, false}) {
    SCOPED_TRACE(in_memory ? "loop path, verified bytes in memory" : "worker path, hash-while-send");
    HeldFlush flush(store_.get());
    tweak_ = [in_memory](ServerOptions& o) {
      o.auth_cache_ms = 60000;
      if (!in_memory) o.verified_memory_max_file = 0;
    };
    StartServer(&flush);
    ASSERT_EQ(BodyOf(Get(mail_url_, "bob-token")), "mail patch");  // warms the caches
    // Held until the loop waits again (idle: the flushing thread then sends the answer).
    flush.gate.Arm(true);
    Client c(server_->port());
    c.Send("GET " + mail_url_ + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer bob-token\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(flush.gate.WaitHeld());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    flush.fail = true;
    flush.gate.Arm(false);
    std::string r = c.ReadAll();
    EXPECT_EQ(StatusOf(r), 503) << r;
    EXPECT_EQ(r.find("mail patch"), std::string::npos) << r;
    flush.fail = false;
    EXPECT_EQ(BodyOf(Get(mail_url_, "bob-token")), "mail patch");  // the next flush works again
    StopServer();
  }
}

}  // namespace
}  // namespace patchgate::server
