// The role interfaces are views of one store: what one role writes, another reads, on both
// engines (PostgreSQL when PATCHGATE_TEST_PG_URL is set). And a role is small enough to
// fake on its own: a test double of one role implements that role and nothing else.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <tuple>
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

// A DownloadTrail that implements only the four required calls (on a real store): its
// VisitScopeDownloads is the role's default, built on QueryDownloads.
class QueryOnlyTrail : public DownloadTrail {
 public:
  explicit QueryOnlyTrail(DownloadTrail& t) : t_(t) {}
  Result<std::vector<Download>> QueryDownloads(const DownloadQuery& q) override { return t_.QueryDownloads(q); }
  Result<std::string> ExplainQueryDownloads(const DownloadQuery& q) override { return t_.ExplainQueryDownloads(q); }
  Result<ImportResult> ImportDownloads(const std::vector<Download>& rows) override { return t_.ImportDownloads(rows); }
  Result<std::vector<std::string>> OrganisationsThatDownloaded(const std::string& p) override {
    return t_.OrganisationsThatDownloaded(p);
  }

 private:
  DownloadTrail& t_;
};

// The store's own VisitScopeDownloads (rows read in place) hands over exactly the rows and
// details of the role's default (QueryDownloads with scope_columns): same rows, same
// fields, each aborted row's detail once, an ordinary row's none.
TEST_P(RolesTest, ScopeRowsReadInPlaceAreTheQueryDownloadsRows) {
  AuthDirectory& directory = *store_;
  AuditSink& sink = *store_;
  DownloadTrail& trail = *store_;
  ASSERT_TRUE(directory.AddOrganisation({0, prefix_ + "Contoso", "gold"}).ok());
  auto uid = directory.AddUser(prefix_ + "Contoso", prefix_ + "eve", prefix_ + std::string(64, 'f'));
  ASSERT_TRUE(uid.ok()) << uid.status().ToString();
  auto u = directory.GetUser(prefix_ + "eve");
  ASSERT_TRUE(u.ok());
  const std::string node = prefix_ + "edge-9";
  std::vector<DownloadStart> starts;
  for (int i = 0; i < 6; ++i)
    starts.push_back({5'000'000 + i, node, u->id, u->org_id, "p/f" + std::to_string(i % 3), std::string(64, 'a' + i % 2)});
  auto ids = sink.BeginDownloads(starts);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_TRUE(sink.FinishDownloads({{(*ids)[0], 6'000'000, 42, DownloadOutcome::kComplete, ""},
                                    {(*ids)[1], 6'000'000, 7, DownloadOutcome::kAborted, "integrity: cut"},
                                    {(*ids)[2], 6'000'000, 9, DownloadOutcome::kPartial, ""},
                                    {(*ids)[3], 6'000'000, 1, DownloadOutcome::kAborted, "integrity: again"}})
                  .ok());  // 4 and 5 never finished
  Download imported;
  imported.started_at = 5'500'000;
  imported.ended_at = 5'600'000;
  imported.node = node;
  imported.username = prefix_ + "stranger";
  imported.target_path = "p/imported";
  imported.source = "imported";
  imported.outcome = DownloadOutcome::kComplete;
  imported.bytes_sent = 3;
  imported.import_key = prefix_ + "k1";
  ASSERT_TRUE(trail.ImportDownloads({imported}).ok());

  DownloadQuery q;
  q.node = node;
  q.since = 1;
  q.until = 9'000'000;
  q.successful_only = true;
  using Seen = std::tuple<int64_t, int64_t, int64_t, uint64_t, int, std::string, std::string, std::string, std::string,
                          std::string, bool, bool>;
  auto visit = [&](DownloadTrail& t, std::map<int64_t, Seen>* rows, std::map<int64_t, std::string>* details) {
    return t.VisitScopeDownloads(
        q,
        [&](const ScopeRowView& v) {
          EXPECT_TRUE(rows->emplace(v.id, Seen{v.id, v.started_at, v.org_id, v.bytes_sent, static_cast<int>(v.outcome),
                                               std::string(v.node), std::string(v.username), std::string(v.target_path),
                                               std::string(v.sha256), std::string(v.source), v.unknown_user,
                                               v.unknown_target})
                          .second);
        },
        [&](int64_t id, std::string_view d) { EXPECT_TRUE(details->emplace(id, std::string(d)).second); });
  };
  std::map<int64_t, Seen> in_place, by_default;
  std::map<int64_t, std::string> in_place_details, default_details;
  ASSERT_TRUE(visit(trail, &in_place, &in_place_details).ok());
  QueryOnlyTrail plain(trail);
  ASSERT_TRUE(visit(plain, &by_default, &default_details).ok());
  EXPECT_EQ(in_place.size(), 7u);
  EXPECT_EQ(in_place, by_default);
  EXPECT_EQ(in_place_details, default_details);
  EXPECT_EQ(in_place_details, (std::map<int64_t, std::string>{{(*ids)[1], "integrity: cut"}, {(*ids)[3], "integrity: again"}}));
}

INSTANTIATE_TEST_SUITE_P(Engines, RolesTest, TestEngine::Names(), TestEngine::ParamName);

}  // namespace
}  // namespace patchgate
