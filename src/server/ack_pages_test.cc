// The acknowledgement pages on their own, against a real SQLite store. The route to them
// (GET/HEAD vs POST) is tested in routes_test.cc and through the whole server in server_test.cc.
#include "server/ack_pages.h"

#include <gtest/gtest.h>

#include "core/scratch_dir.h"
#include "crypto/hash.h"
#include "store/forwarding_store.h"
#include "store/store.h"

namespace patchgate::server {
namespace {

class AckPagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open("sqlite://" + dir_.path() + "/store.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->AddOrganisation({0, "Contoso", "premier"}).ok());
    auto id = store_->CreateIncident(Incident{0, "n", 1, 2, "test", 3, {}});
    ASSERT_TRUE(id.ok());
    incident_ = *id;
    auto org = store_->GetOrganisation("Contoso");
    ASSERT_TRUE(store_->EnsureNotification(incident_, org->id, "smtp", "a@b", Sha256Hex("tok-1")).ok());
  }
  bool Acked() { return (*store_->ListNotifications(incident_))[0].acked_at.has_value(); }

  ScratchDir dir_{"ackpages"};
  std::unique_ptr<Store> store_;
  int64_t incident_ = 0;
  Metrics m_;
};

TEST_F(AckPagesTest, TheLinkShowsAFormThatPostsBackAndRecordsNothing) {
  PendingSend out;
  EXPECT_TRUE(AckPage(&out, &m_, "tok-1", true, false));
  EXPECT_EQ(out.head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_NE(out.head.find("<form method=\"post\" action=\"/ack/tok-1\">"), std::string::npos) << out.head;
  EXPECT_NE(out.head.find("Cache-Control: no-store"), std::string::npos);
  EXPECT_NE(out.head.find("Referrer-Policy: no-referrer"), std::string::npos);
  EXPECT_FALSE(Acked()) << "following the link acknowledged (mail scanners follow links)";
  PendingSend head;
  AckPage(&head, &m_, "tok-1", true, /*head_only=*/true);
  EXPECT_EQ(head.head.find("<form"), std::string::npos);
  EXPECT_FALSE(Acked());
}

TEST_F(AckPagesTest, APostRecordsItOnceAndAnUnknownTokenIs404) {
  PendingSend a, b, c;
  EXPECT_TRUE(AckConfirm(&a, &m_, store_.get(), "tok-1", true));
  EXPECT_EQ(a.head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_TRUE(Acked());
  EXPECT_TRUE(AckConfirm(&b, &m_, store_.get(), "tok-1", true));  // idempotent
  EXPECT_EQ(b.head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_TRUE(AckConfirm(&c, &m_, store_.get(), "tok-2", true));
  EXPECT_EQ(c.head.rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(m_.requests_2xx.load(), 2u);
  EXPECT_EQ(m_.requests_4xx.load(), 1u);
}

class DownLedger : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status Acknowledge(const std::string&, int64_t) override { return Unavailable("database is down (injected)"); }
};

TEST_F(AckPagesTest, AStoreOutageIs503AndClosesTheConnection) {
  DownLedger down(store_.get());
  PendingSend out;
  EXPECT_FALSE(AckConfirm(&out, &m_, &down, "tok-1", true));
  EXPECT_EQ(out.head.rfind("HTTP/1.1 503", 0), 0u);
  EXPECT_NE(out.head.find("Connection: close"), std::string::npos);
  EXPECT_FALSE(Acked());
}

}  // namespace
}  // namespace patchgate::server
