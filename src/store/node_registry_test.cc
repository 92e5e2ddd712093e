// The node registry on both engines (PostgreSQL when PATCHGATE_TEST_PG_URL is set).
#include "store/node_registry.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <optional>
#include <stdlib.h>

#include "core/clock.h"
#include "store/forwarding_store.h"
#include "store/store.h"
#include "store/test_engine.h"

namespace patchgate {
namespace {

class NodeRegistryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_.emplace(GetParam(), "nodes");
    if (!engine_->available()) GTEST_SKIP() << TestEngine::kNoPostgres;
    url_ = engine_->url();
    prefix_ = engine_->Unique("");
    auto r = NodeRegistry::Open(url_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    reg_ = std::move(*r);
  }
  std::string N(const std::string& n) { return prefix_ + n; }
  std::optional<TestEngine> engine_;
  std::string url_, prefix_;
  std::unique_ptr<NodeRegistry> reg_;
};

TEST_P(NodeRegistryTest, TokenAuthenticatesUntilRevoked) {
  ASSERT_TRUE(reg_->AddNode(N("m1"), "mirror", "http://127.0.0.1:1", N("hash-m1")).ok());
  auto who = reg_->AuthenticateNodeTokenHash(N("hash-m1"));
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(*who, N("m1"));
  EXPECT_EQ(reg_->AuthenticateNodeTokenHash(N("other")).status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(reg_->AddNode(N("m1"), "mirror", "", N("hash-2")).code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(reg_->RevokeNode(N("m1")).ok());
  EXPECT_EQ(reg_->AuthenticateNodeTokenHash(N("hash-m1")).status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(reg_->RevokeNode(N("nobody")).code(), ErrorCode::kNotFound);
  EXPECT_EQ(reg_->AddNode("bad name", "mirror", "", "h").code(), ErrorCode::kInvalidArgument);
  auto nodes = reg_->ListNodes();
  ASSERT_TRUE(nodes.ok());
  bool found = false;
  for (const auto& n : *nodes)
    if (n.name == N("m1")) {
      found = true;
      EXPECT_TRUE(n.revoked);
      EXPECT_TRUE(n.has_token);
      EXPECT_FALSE(n.heartbeat);
    }
  EXPECT_TRUE(found);
}

TEST_P(NodeRegistryTest, HeartbeatKeepsTheLatest) {
  ASSERT_TRUE(reg_->EnsureNode(N("origin"), "origin", "").ok());
  NodeHeartbeat h;
  h.node = N("origin");
  h.at = 100;
  h.role = "origin";
  h.snapshot_version = 7;
  h.scanner_loaded = true;
  h.signature_age_seconds = 3600;
  ASSERT_TRUE(reg_->PutHeartbeat(h).ok());
  h.at = 200;
  h.watch_alive = true;
  ASSERT_TRUE(reg_->PutHeartbeat(h).ok());
  auto nodes = reg_->ListNodes();
  ASSERT_TRUE(nodes.ok());
  for (const auto& n : *nodes)
    if (n.name == N("origin")) {
      ASSERT_TRUE(n.heartbeat);
      EXPECT_EQ(n.heartbeat->at, 200);
      EXPECT_TRUE(n.heartbeat->watch_alive);
      EXPECT_EQ(n.heartbeat->snapshot_version, 7);
      EXPECT_EQ(n.heartbeat->signature_age_seconds, 3600);
      return;
    }
  FAIL() << "origin not listed";
}

TEST_P(NodeRegistryTest, SyncsAndPolicy) {
  ASSERT_TRUE(reg_->RecordSyncs({{N("m2"), "targets", 10, 3, 3000}, {N("m2"), "metadata/timestamp.json", 11, 1, 500}}).ok());
  auto s = reg_->ListSyncs(N("m2"));
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].bytes, 3000);
  ChainPolicy p;
  p.require_scanner = true;
  p.max_lag_seconds = 600;
  p.fence = true;
  ASSERT_TRUE(reg_->SetPolicy(p).ok());
  auto got = reg_->GetPolicy();
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->require_scanner);
  EXPECT_TRUE(got->fence);
  EXPECT_EQ(got->max_lag_seconds, 600);
  EXPECT_FALSE(got->require_watch);
  ASSERT_TRUE(reg_->SetPolicy(ChainPolicy{}).ok());
}

TEST_P(NodeRegistryTest, RefusalsAreListedByNodeAndWindow) {
  RefusalRecord a{N("m2"), 100, 7, "Acme", "alice", "office/setup.exe", "integrity: quarantined on this node", 1};
  RefusalRecord b{N("m2"), 200, 8, "Globex", "bob", std::string("office/\xff\xfe.exe") + std::string(600, 'x'), "fenced", 4};
  RefusalRecord other{N("m1"), 150, 7, "Acme", "alice", "office/setup.exe", "fenced", 1};
  ASSERT_TRUE(reg_->RecordRefusals({a, b, other}).ok());
  auto all = reg_->ListRefusals(N("m2"), 0, 1000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].organisation, "Acme");
  EXPECT_EQ((*all)[0].username, "alice");
  EXPECT_EQ((*all)[0].target, "office/setup.exe");
  EXPECT_EQ((*all)[0].reason, "integrity: quarantined on this node");
  EXPECT_EQ((*all)[0].org_id, 7);
  EXPECT_EQ((*all)[1].repeats, 4);
  // Text from a request is stored as valid UTF-8, capped.
  EXPECT_LE((*all)[1].target.size(), 512u);
  EXPECT_EQ((*all)[1].target.find('\xff'), std::string::npos);
  auto window = reg_->ListRefusals(N("m2"), 150, 250);
  ASSERT_TRUE(window.ok());
  ASSERT_EQ(window->size(), 1u);
  EXPECT_EQ((*window)[0].username, "bob");
  EXPECT_TRUE(reg_->RecordRefusals({}).ok());
}

// Beside a store, the registry runs on the store's own connection: one server process on
// PostgreSQL (counted in pg_stat_activity by a unique application_name), and on SQLite
// even a private in-memory database is shared. A store that is not Store::Open's gets a
// connection of its own, which still works.
TEST_P(NodeRegistryTest, OpenBesideSharesTheStoresConnection) {
  std::string url = url_;
  const std::string app = "pgreg" + std::to_string(SystemClock::Get().NowMicros());
  if (GetParam() == "sqlite") url = "sqlite::memory:";
  else url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("application_name=") + app;
  auto store = Store::Open(url);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto beside = NodeRegistry::OpenBeside(**store, url);
  ASSERT_TRUE(beside.ok()) << beside.status().ToString();
  RefusalRecord r{N("m9"), 300, 7, "Acme", "alice", "office/setup.exe", "fenced", 1};
  ASSERT_TRUE((*beside)->RecordRefusals({r}).ok());
  auto got = (*beside)->ListRefusals(N("m9"), 0, 1000);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  ASSERT_TRUE((*store)->ListOrganisations().ok());  // the store still runs on it
  if (GetParam() == "postgresql") {
    PGconn* probe = PQconnectdb(url_.c_str());
    ASSERT_EQ(PQstatus(probe), CONNECTION_OK) << PQerrorMessage(probe);
    const char* values[] = {app.c_str()};
    PGresult* res = PQexecParams(probe, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", 1,
                                 nullptr, values, nullptr, nullptr, 0);
    ASSERT_EQ(PQresultStatus(res), PGRES_TUPLES_OK) << PQresultErrorMessage(res);
    EXPECT_STREQ(PQgetvalue(res, 0, 0), "1") << "the store and the registry beside it use one connection";
    PQclear(res);
    PQfinish(probe);
  }
  // Not the SQL store: its own connection (on a file or server database, not a private one).
  ForwardingStore other(store->get());
  if (GetParam() == "sqlite") {
    EXPECT_EQ(NodeRegistry::OpenBeside(other, url).status().code(), ErrorCode::kInvalidArgument);
  } else {
    auto own = NodeRegistry::OpenBeside(other, url_);
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    auto again = (*own)->ListRefusals(N("m9"), 0, 1000);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->size(), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, NodeRegistryTest, TestEngine::Names(), TestEngine::ParamName);

}  // namespace
}  // namespace patchgate
