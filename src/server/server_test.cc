// A real server on 127.0.0.1 (ephemeral port) over a real SQLite store and a real signed
// repository; clients are raw sockets so every malformed request can be sent.
#include "server/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

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
    char tmpl[] = "/tmp/pgserveXXXXXX";
    dir_ = mkdtemp(tmpl);
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
    auto s = Server::Create(o, store ? store : store_.get(), read_store_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this] { server_->Run(); });
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
  size_t Records(const std::string& outcome = "") {
    DownloadQuery q;
    q.node = "test-node";
    auto rows = store_->QueryDownloads(q);
    size_t n = 0;
    for (const auto& d : *rows)
      if (outcome.empty() || DownloadOutcomeName(d.outcome) == outcome) ++n;
    return n;
  }

  std::string dir_, office_bytes_, office_url_, mail_url_;
  int audit_finish_ms_ = 100;
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
  DownloadQuery q;
  q.node = "test-node";
  auto rows = store_->QueryDownloads(q);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].org_name, "Contoso");
  EXPECT_EQ((*rows)[0].username, "alice");
  EXPECT_EQ((*rows)[0].sha256, Sha256Hex(office_bytes_));
  EXPECT_EQ((*rows)[0].bytes_sent, office_bytes_.size());
  EXPECT_EQ((*rows)[0].outcome, DownloadOutcome::kComplete);
  EXPECT_EQ((*rows)[0].remote_addr, "127.0.0.1");
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
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(StatusOf(Get("/metadata/timestamp.json", "bob-token")), 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(700));
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
  EXPECT_EQ(StatusOf(Get("/ack/ack-token-1", "")), 200);
  EXPECT_EQ(StatusOf(Get("/ack/ack-token-1", "")), 200);  // idempotent
  std::string r = Get("/ack/unknown-token", "");
  EXPECT_EQ(StatusOf(r), 404);
  EXPECT_EQ(BodyOf(r), "not found\n");
  EXPECT_TRUE((*store_->ListNotifications(*id))[0].acked_at.has_value());
}

}  // namespace
}  // namespace patchgate::server
