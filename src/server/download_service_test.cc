// The download service on its own: a real signed repository, a real SQLite store and audit
// log, a connected socket pair for the client. The whole server (routing, tokens, the
// event loop) is tested in server_test.cc.
#include "server/download_service.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "core/clock.h"
#include "crypto/hash.h"
#include "server/http_request.h"
#include "tuf/naming.h"
#include "tuf/repository.h"

namespace patchgate::server {
namespace {

class DownloadServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgdlsXXXXXX";
    dir_ = mkdtemp(tmpl);
    tuf::InitOptions io;
    io.dir = dir_ + "/repo";
    tuf::KeyAccess access{"pw", false};
    ASSERT_TRUE(tuf::InitRepository(io, access, SystemClock::Get()).ok());
    std::ofstream(dir_ + "/setup.exe") << bytes_;
    ASSERT_TRUE(tuf::Publish({io.dir, "office", "1", false, nullptr}, {dir_ + "/setup.exe"}, access, SystemClock::Get()).ok());
    rel_ = tuf::ConsistentTargetName("office/setup.exe", Sha256Hex(bytes_));
    auto s = Store::Open("sqlite://" + dir_ + "/store.db");
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    ASSERT_TRUE(store_->AddOrganisation({0, "Contoso", "premier"}).ok());
    ASSERT_TRUE(store_->AddOrganisation({0, "Globex", "gold"}).ok());
    ASSERT_TRUE(store_->AddUser("Contoso", "alice", Sha256Hex("a")).ok());
    ASSERT_TRUE(store_->AddUser("Globex", "bob", Sha256Hex("b")).ok());
    ASSERT_TRUE(store_->Grant("Contoso", "office").ok());
    alice_ = *store_->GetUser("alice");
    bob_ = *store_->GetUser("bob");
    options_.node_name = "n";
    catalogue_ = std::make_unique<Catalogue>(io.dir);
    ASSERT_TRUE(catalogue_->StartBackground().ok());
    audit_ = std::make_unique<AuditLog>(store_.get(), &metrics_, std::chrono::milliseconds(0));
    repo_fd_ = ::open(io.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    service_ = std::make_unique<DownloadService>(DownloadService::Deps{
        &options_, catalogue_.get(), &verify_, audit_.get(), &metrics_, store_.get(), store_.get(), &entitlements_,
        repo_fd_});
  }
  void TearDown() override {
    service_.reset();
    audit_.reset();
    catalogue_.reset();
    if (repo_fd_ >= 0) ::close(repo_fd_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RequestHead Head(const std::string& extra = "") {
    ParseOutcome p = ParseRequestHead("GET /targets/" + rel_ + " HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n", HttpLimits{});
    EXPECT_TRUE(p.head.has_value());
    return *p.head;
  }
  // Serves on this thread (as a worker would); returns what the client got, including
  // what was left for the loop.
  std::string Serve(const User& user, const std::string& extra = "") {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto conn = MakePlainConn(sv[0]);
    bool keep = true;
    PendingSend later;
    service_->Serve(*conn, Head(extra), rel_, user, "127.0.0.1", &keep, false, &later);
    conn.reset();  // closes sv[0]
    std::string got;
    char buf[65536];
    for (ssize_t n; (n = ::recv(sv[1], buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
    ::close(sv[1]);
    // What the loop does with what was left: a held response waits for its record first.
    if (later.wait) {
      std::promise<bool> durable;
      later.wait([&](bool ok) { durable.set_value(ok); });
      if (!durable.get_future().get()) return got + later.refusal();
    }
    if (later.done) later.done(later.body.size(), true);
    return got + later.head + std::string(later.body);
  }
  size_t Records() {
    EXPECT_TRUE(audit_->Flush());
    DownloadQuery q;
    q.node = "n";
    auto rows = store_->QueryDownloads(q);
    return rows.ok() ? rows->size() : 0;
  }

  std::string dir_, rel_, bytes_ = std::string(5000, 'x') + "end";
  std::unique_ptr<Store> store_;
  User alice_, bob_;
  ServerOptions options_;
  Metrics metrics_;
  VerifyCache verify_;
  TtlCache<bool> entitlements_{60000};
  std::unique_ptr<Catalogue> catalogue_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<DownloadService> service_;
  int repo_fd_ = -1;
};

TEST_F(DownloadServiceTest, AnEntitledUserGetsTheVerifiedBytesAndOneRecord) {
  std::string r = Serve(alice_);
  ASSERT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("ETag: \"" + Sha256Hex(bytes_) + "\""), std::string::npos);
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), bytes_);
  EXPECT_EQ(Records(), 1u);
}

TEST_F(DownloadServiceTest, AnOrganisationNotEntitledGets403AndNoRecord) {
  std::string r = Serve(bob_);
  EXPECT_EQ(r.rfind("HTTP/1.1 403 ", 0), 0u) << r;
  EXPECT_EQ(r.find(bytes_), std::string::npos);
  EXPECT_EQ(Records(), 0u);
}

TEST_F(DownloadServiceTest, ARangeIsRecordedPartialAndA304IsNotADownload) {
  std::string r = Serve(alice_, "Range: bytes=5000-5002\r\n");
  ASSERT_EQ(r.rfind("HTTP/1.1 206 ", 0), 0u) << r;
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "end");
  r = Serve(alice_, "If-None-Match: \"" + Sha256Hex(bytes_) + "\"\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 304 ", 0), 0u) << r;
  EXPECT_EQ(Records(), 1u);
}

TEST_F(DownloadServiceTest, TheLoopAnswersOnlyFromCachesAndHoldsTheResponseForTheRecord) {
  PendingSend out;
  // Nothing cached yet (entitlement, verified bytes): a worker must answer.
  EXPECT_FALSE(service_->ServeFromLoop(Head(), rel_, alice_, "127.0.0.1", true, &out));
  ASSERT_EQ(Serve(alice_).rfind("HTTP/1.1 200 OK\r\n", 0), 0u);  // caches both
  EXPECT_FALSE(service_->ServeFromLoop(Head(), rel_, bob_, "127.0.0.1", true, &out));  // bob: not entitled
  ASSERT_TRUE(service_->ServeFromLoop(Head(), rel_, alice_, "127.0.0.1", true, &out));
  EXPECT_EQ(out.body, bytes_);
  ASSERT_TRUE(static_cast<bool>(out.wait)) << "the response must wait for its record";
  std::promise<bool> durable;
  out.wait([&](bool ok) { durable.set_value(ok); });
  EXPECT_TRUE(durable.get_future().get());
  EXPECT_EQ(Records(), 2u);  // the loop's record is in the store before its bytes may go
  out.done(out.body.size(), true);
}

}  // namespace
}  // namespace patchgate::server
