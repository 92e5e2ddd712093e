// The role interfaces are views of one store: what one role writes, another reads, on both
// engines (PostgreSQL when PATCHGATE_TEST_PG_URL is set). And a role is small enough to
// fake on its own: a test double of one role implements that role and nothing else.
#include <gtest/gtest.h>

#include <optional>
#include <stdlib.h>

#include <filesystem>
#include <type_traits>

#include "core/clock.h"
#include "store/audit_sink.h"
#include "store/auth_directory.h"
#include "store/download_trail.h"
#include "store/incident_register.h"
#include "store/notification_ledger.h"
#include "store/store.h"
#include "store/target_catalogue.h"
#include "store/test_engine.h"
#include "store/verdict_cache.h"

namespace patchgate {
namespace {

static_assert(std::is_base_of_v<AuthDirectory, Store>);
static_assert(std::is_base_of_v<TargetCatalogue, Store>);
static_assert(std::is_base_of_v<AuditSink, Store>);
static_assert(std::is_base_of_v<DownloadTrail, Store>);
static_assert(std::is_base_of_v<IncidentRegister, Store>);
static_assert(std::is_base_of_v<NotificationLedger, Store>);
static_assert(std::is_base_of_v<AdvisoryRegister, Store>);
static_assert(std::is_base_of_v<VerdictCache, Store>);
static_assert(std::has_virtual_destructor_v<AuditSink> && std::has_virtual_destructor_v<VerdictCache>);

// A whole fake of one role: two methods, not the store's forty.
class MemoryVerdicts : public VerdictCache {
 public:
  Result<std::optional<ScanVerdict>> GetScanVerdict(const std::string& sha256, const std::string& db) override {
    if (v_.sha256 == sha256 && v_.db_version == db) return std::optional<ScanVerdict>(v_);
    return std::optional<ScanVerdict>();
  }
  Status PutScanVerdict(const ScanVerdict& v) override {
    v_ = v;
    return Status::OK();
  }

 private:
  ScanVerdict v_;
};

// What code that needs only the cache sees: the role, whatever implements it.
bool KnownClean(VerdictCache& cache, const std::string& sha256, const std::string& db) {
  auto v = cache.GetScanVerdict(sha256, db);
  return v.ok() && v->has_value() && (*v)->verdict == "clean";
}

TEST(Roles, OneRoleIsFakedAlone) {
  MemoryVerdicts fake;
  EXPECT_FALSE(KnownClean(fake, "aa", "27000"));
  ASSERT_TRUE(fake.PutScanVerdict({"aa", "27000", "clean", "", "1.4", 1}).ok());
  EXPECT_TRUE(KnownClean(fake, "aa", "27000"));
  EXPECT_FALSE(KnownClean(fake, "aa", "27001"));  // another signature version misses
}

class RolesTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_.emplace(GetParam(), "roles");
    if (!engine_->available()) GTEST_SKIP() << TestEngine::kNoPostgres;
    url_ = engine_->url();
    prefix_ = engine_->Unique("");
    auto s = Store::Open(url_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  std::optional<TestEngine> engine_;
  std::string url_, prefix_;
  std::unique_ptr<Store> store_;
};

TEST_P(RolesTest, WhatOneRoleWritesAnotherReads) {
  AuthDirectory& directory = *store_;
  AuditSink& sink = *store_;
  DownloadTrail& trail = *store_;
  TargetCatalogue& catalogue = *store_;
  IncidentRegister& incidents = *store_;
  NotificationLedger& ledger = *store_;
  VerdictCache& cache = *store_;

  Organisation org;
  org.name = prefix_ + "Fabrikam";
  org.tier = "gold";
  auto org_id = directory.AddOrganisation(org);
  ASSERT_TRUE(org_id.ok()) << org_id.status().ToString();
  // Token and acknowledgement hashes are unique across the (shared) PostgreSQL database.
  auto uid = directory.AddUser(org.name, prefix_ + "bob", prefix_ + std::string(64, 'b'));
  ASSERT_TRUE(uid.ok()) << uid.status().ToString();

  const std::string node = prefix_ + "edge-1", path = prefix_ + "tools/1.0/setup.exe";
  DownloadStart start;
  start.started_at = 5'000'000;
  start.node = node;
  start.user_id = *uid;
  start.org_id = *org_id;
  start.target_path = path;
  start.sha256 = std::string(64, 'c');
  auto ids = sink.BeginDownloads({start});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 1u);
  ASSERT_TRUE(sink.FinishDownloads({{(*ids)[0], 6'000'000, 42, DownloadOutcome::kComplete, ""}}).ok());

  DownloadQuery q;
  q.node = node;
  auto rows = trail.QueryDownloads(q);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, (*ids)[0]);
  EXPECT_EQ((*rows)[0].org_name, org.name);
  EXPECT_EQ((*rows)[0].bytes_sent, 42u);
  EXPECT_EQ((*rows)[0].outcome, DownloadOutcome::kComplete);

  ASSERT_TRUE(catalogue.QuarantineTargetOnNode(node, path, std::string(64, 'c'), std::string(64, 'd'), 7).ok());
  Incident inc;
  inc.node = node;
  inc.window_start = 1;
  inc.window_end = 9'000'000;
  inc.cause = "integrity";
  inc.detected_at = 9'000'000;
  inc.targets = {path};
  auto inc_id = incidents.CreateIncident(inc);
  ASSERT_TRUE(inc_id.ok()) << inc_id.status().ToString();
  const std::string ack = prefix_ + std::string(64, 'e');
  auto n = ledger.EnsureNotification(*inc_id, *org_id, "smtp", "sec@fabrikam.example", ack);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_TRUE(ledger.Acknowledge(ack, 10).ok());
  auto listed = ledger.ListNotifications(*inc_id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].org_name, org.name);
  EXPECT_TRUE((*listed)[0].acked_at.has_value());

  const std::string sha = prefix_ + std::string(40, 'f');
  EXPECT_FALSE(KnownClean(cache, sha, "27000"));
  ASSERT_TRUE(cache.PutScanVerdict({sha, "27000", "clean", "", "1.4", 1}).ok());
  EXPECT_TRUE(KnownClean(cache, sha, "27000"));
}

INSTANTIATE_TEST_SUITE_P(Engines, RolesTest, TestEngine::Names(), TestEngine::ParamName);

}  // namespace
}  // namespace patchgate
