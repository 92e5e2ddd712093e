// One suite, two engines: SQLite always; PostgreSQL when PATCHGATE_TEST_PG_URL is set
// (scripts/test.sh starts a throwaway server and sets it).
#include "store/store.h"

#include <gtest/gtest.h>

#include <optional>
#include <stdlib.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "core/clock.h"
#include "store/test_engine.h"

namespace patchgate {
namespace {

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_.emplace(GetParam(), "store");
    if (!engine_->available()) GTEST_SKIP() << TestEngine::kNoPostgres;
    url_ = engine_->url();
    auto s = Store::Open(url_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    prefix_ = engine_->Unique("");
  }
  std::string N(const std::string& name) { return prefix_ + name; }
  int64_t AddOrg(const std::string& name, const std::string& tier = "premier") {
    Organisation o;
    o.name = N(name);
    o.tier = tier;
    o.account_manager_name = "Ann";
    o.account_manager_email = "ann@vendor.example";
    o.security_contacts = {"sec@" + name + ".example", "cso@" + name + ".example"};
    auto id = store_->AddOrganisation(o);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.value_or(0);
  }

  std::optional<TestEngine> engine_;
  std::string url_, prefix_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, ReopenIsANoOpMigration) {
  auto again = Store::Open(url_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->engine(), GetParam());
}

TEST_P(StoreTest, OrganisationsUsersAndEntitlements) {
  int64_t acme = AddOrg("acme");
  AddOrg("globex", "gold");
  Organisation dup;
  dup.name = N("acme");
  dup.tier = "gold";
  EXPECT_EQ(store_->AddOrganisation(dup).status().code(), ErrorCode::kAlreadyExists);
  dup.name = N("bad");
  dup.tier = "platinum";
  EXPECT_EQ(store_->AddOrganisation(dup).status().code(), ErrorCode::kInvalidArgument);
  auto org = store_->GetOrganisation(N("acme"));
  ASSERT_TRUE(org.ok());
  EXPECT_EQ(org->security_contacts.size(), 2u);
  EXPECT_EQ(store_->GetOrganisation(N("nope")).status().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("hash-a")).ok());
  EXPECT_EQ(store_->AddUser(N("acme"), N("alice"), N("hash-b")).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->AddUser(N("nope"), N("bob"), N("hash-c")).status().code(), ErrorCode::kNotFound);
  auto u = store_->AuthenticateTokenHash(N("hash-a"));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->org_id, acme);
  EXPECT_EQ(store_->AuthenticateTokenHash(N("wrong")).status().code(), ErrorCode::kUnauthorized);
  ASSERT_TRUE(store_->RevokeUser(N("alice")).ok());
  EXPECT_EQ(store_->AuthenticateTokenHash(N("hash-a")).status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(store_->RevokeUser(N("ghost")).code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->Grant(N("acme"), "office").ok());
  ASSERT_TRUE(store_->Grant(N("acme"), "office").ok());  // idempotent
  EXPECT_TRUE(*store_->IsEntitled(acme, "office"));
  EXPECT_FALSE(*store_->IsEntitled(acme, "mail"));
  auto ent = store_->EntitledOrganisations("office");
  ASSERT_TRUE(ent.ok());
  EXPECT_NE(std::find(ent->begin(), ent->end(), N("acme")), ent->end());
}

TEST_P(StoreTest, DownloadAuditAndWindowQueries) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  auto alice = store_->GetUser(N("alice"));
  ASSERT_TRUE(alice.ok());
  std::string node = N("mirror-2");
  auto mk = [&](int64_t t, const std::string& path) {
    DownloadStart s;
    s.started_at = t;
    s.node = node;
    s.user_id = alice->id;
    s.org_id = alice->org_id;
    s.target_path = path;
    s.sha256 = "abc";
    s.remote_addr = "127.0.0.1";
    s.user_agent = "test";
    return s;
  };
  auto ids = store_->BeginDownloads({mk(100, "office/a"), mk(200, "office/b"), mk(300, "office/c"), mk(5000, "office/d")});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 4u);
  ASSERT_TRUE(store_->FinishDownloads({{(*ids)[0], 150, 10, DownloadOutcome::kComplete},
                                       {(*ids)[1], 900, 10, DownloadOutcome::kComplete},
                                       {(*ids)[2], 310, 0, DownloadOutcome::kAborted},
                                       {(*ids)[3], 5100, 10, DownloadOutcome::kComplete}})
                  .ok());
  DownloadQuery q;
  q.node = node;
  q.since = 500;  // b was still streaming at 500: it counts
  q.until = 6000;
  q.successful_only = true;
  auto rows = store_->QueryDownloads(q);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].target_path, "office/b");
  EXPECT_EQ((*rows)[0].org_name, N("acme"));
  EXPECT_EQ((*rows)[0].outcome, DownloadOutcome::kComplete);
  EXPECT_EQ((*rows)[1].target_path, "office/d");
  q.successful_only = false;
  q.since = 0;
  EXPECT_EQ(store_->QueryDownloads(q)->size(), 4u);  // the aborted, zero-byte one included
  q.targets = {"office/a"};
  EXPECT_EQ(store_->QueryDownloads(q)->size(), 1u);
  // A download for a user that does not exist is refused, and nothing of the batch lands.
  auto bad = mk(7000, "office/e");
  bad.user_id = 999999;
  EXPECT_FALSE(store_->BeginDownloads({mk(7000, "office/f"), bad}).ok());
  q.targets.clear();
  q.until = 8000;
  EXPECT_EQ(store_->QueryDownloads(q)->size(), 4u);
}

// The audit pipeline's two steps: written records are visible at once (another connection
// reads them) and made durable by SyncDownloads, which on SQLite flushes the very
// write-ahead log the commits went to (a missing one is an error, not a silent success).
TEST_P(StoreTest, WrittenDownloadsAreVisibleAtOnceAndSyncFlushesTheirLog) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  auto alice = store_->GetUser(N("alice"));
  ASSERT_TRUE(alice.ok());
  DownloadStart s;
  s.started_at = 100;
  s.node = N("two-step-node");
  s.user_id = alice->id;
  s.target_path = "office/a";
  s.sha256 = "abc";
  auto ids = store_->WriteDownloads({s, s});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 2u);
  ASSERT_TRUE(store_->WriteFinishes({{(*ids)[0], 200, 10, DownloadOutcome::kComplete, ""}}).ok());
  auto other = Store::Open(url_);
  ASSERT_TRUE(other.ok());
  DownloadQuery q;
  q.node = N("two-step-node");
  auto rows = (*other)->QueryDownloads(q);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 2u);
  EXPECT_TRUE(store_->SyncDownloads().ok());
  // Every later commit is durable by itself again (the one-step path still works after).
  ASSERT_TRUE(store_->BeginDownloads({s}).ok());
  if (GetParam() == "sqlite") {
    std::string wal = url_.substr(std::string("sqlite://").size()) + "-wal";
    ASSERT_EQ(::unlink(wal.c_str()), 0);
    Status gone = store_->SyncDownloads();
    EXPECT_EQ(gone.code(), ErrorCode::kUnavailable) << gone.ToString();
  }
}

// Issue #9: a download cut because its file changed on disk is recorded as aborted WITH
// why (migration 0005), in one multi-row statement on PostgreSQL; the reason is safe text.
TEST_P(StoreTest, FinishedDownloadsKeepTheirDetailAsSafeText) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  auto alice = store_->GetUser(N("alice"));
  ASSERT_TRUE(alice.ok());
  std::vector<DownloadStart> starts(4);
  for (size_t i = 0; i < starts.size(); ++i) {
    starts[i].started_at = 100 + static_cast<int64_t>(i);
    starts[i].node = N("detail-node");
    starts[i].user_id = alice->id;
    starts[i].target_path = "office/" + std::to_string(i);
    starts[i].sha256 = "abc";
  }
  auto ids = store_->BeginDownloads(starts);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  const std::string reason = "integrity: chunk 3 (bytes 786432-1048575) no longer matches its verified digest";
  std::string long_reason;
  for (int i = 0; i < 400; ++i) long_reason += "\xC3\xA9";  // 800 bytes of two-byte characters: over the cap
  std::vector<DownloadFinish> fin = {{(*ids)[0], 200, 786432, DownloadOutcome::kAborted, reason},
                                     {(*ids)[1], 200, 10, DownloadOutcome::kComplete, ""},
                                     {(*ids)[2], 200, 5, DownloadOutcome::kAborted, "integrity: bad \xFF\x01 byte"},
                                     {(*ids)[3], 200, 5, DownloadOutcome::kAborted, long_reason}};
  ASSERT_TRUE(store_->FinishDownloads(fin).ok());
  for (bool scope : {false, true}) {
    DownloadQuery q;
    q.node = N("detail-node");
    q.scope_columns = scope;
    auto rows = store_->QueryDownloads(q);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ASSERT_EQ(rows->size(), 4u);
    std::map<std::string, Download> by_path;
    for (auto& d : *rows) by_path[d.target_path] = d;
    EXPECT_EQ(by_path["office/0"].outcome, DownloadOutcome::kAborted);
    EXPECT_EQ(by_path["office/0"].bytes_sent, 786432u);
    EXPECT_EQ(by_path["office/0"].detail, reason) << "scope columns: " << scope;
    EXPECT_EQ(by_path["office/1"].detail, "");
    EXPECT_EQ(by_path["office/2"].detail, "integrity: bad \\xFF\x01 byte") << "stored escaped, as valid UTF-8";
    const std::string& cut = by_path["office/3"].detail;
    EXPECT_LE(cut.size(), kMaxStoredDownloadDetailBytes);
    EXPECT_GE(cut.size(), kMaxStoredDownloadDetailBytes - 2);
    EXPECT_EQ(cut.size() % 2, 0u) << "cut inside a character";
  }
}

TEST_P(StoreTest, LargeAuditBatchesKeepEachIdWithItsRecord) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  auto alice = store_->GetUser(N("alice"));
  std::vector<DownloadStart> starts;
  for (int i = 0; i < 2500; ++i) {  // more rows than one statement takes on PostgreSQL
    DownloadStart s;
    s.started_at = 10'000 + i;
    s.node = N("big");
    s.user_id = alice->id;
    s.target_path = "p/" + std::to_string(i);
    s.user_agent = i == 3 ? "tab\tand 'quote' \\ \xC3\xA9" : "ua";
    starts.push_back(s);
  }
  auto ids = store_->BeginDownloads(starts);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), starts.size());
  std::vector<DownloadFinish> fin;
  for (size_t i = 0; i < ids->size(); ++i)
    fin.push_back({(*ids)[i], 20'000 + static_cast<int64_t>(i), 1 + i, DownloadOutcome::kComplete});
  ASSERT_TRUE(store_->FinishDownloads(fin).ok());
  DownloadQuery q;
  q.node = N("big");
  auto rows = store_->QueryDownloads(q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), starts.size());
  for (size_t i = 0; i < rows->size(); ++i) {  // ordered by started_at = the i-th start
    EXPECT_EQ((*rows)[i].id, (*ids)[i]);
    EXPECT_EQ((*rows)[i].target_path, "p/" + std::to_string(i));
    EXPECT_EQ((*rows)[i].bytes_sent, 1 + i);
    EXPECT_EQ((*rows)[i].ended_at, 20'000 + static_cast<int64_t>(i));
    EXPECT_EQ((*rows)[i].org_name, N("acme"));
  }
  EXPECT_EQ((*rows)[3].user_agent, "tab\tand 'quote' \\ \xC3\xA9");
}

TEST_P(StoreTest, ConcurrentBeginsAllLand) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  auto alice = store_->GetUser(N("alice"));
  std::string node = N("origin");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        DownloadStart s;
        s.started_at = 1000 + t * 100 + i;
        s.node = node;
        s.user_id = alice->id;
        s.target_path = "p/f";
        EXPECT_TRUE(store_->BeginDownloads({s}).ok());
      }
    });
  for (auto& th : threads) th.join();
  DownloadQuery q;
  q.node = node;
  EXPECT_EQ(store_->QueryDownloads(q)->size(), 100u);
}

TEST_P(StoreTest, ImportDedupesByKeyAndFlagsUnknowns) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  std::vector<Download> rows;
  for (int i = 0; i < 3; ++i) {
    Download d;
    d.started_at = 1000 + i;
    d.ended_at = 1000 + i;
    d.node = N("legacy");
    d.username = i == 2 ? N("stranger") : N("alice");
    d.unknown_user = i == 2;
    d.target_path = "office/setup.exe";
    d.bytes_sent = 10;
    d.outcome = DownloadOutcome::kComplete;
    d.http_status = 200;
    d.import_key = N("line-") + std::to_string(i);
    rows.push_back(d);
  }
  auto r = store_->ImportDownloads(rows);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inserted, 3u);
  r = store_->ImportDownloads(rows);
  EXPECT_EQ(r->inserted, 0u);
  EXPECT_EQ(r->duplicates, 3u);
  DownloadQuery q;
  q.node = N("legacy");
  q.successful_only = true;
  auto got = store_->QueryDownloads(q);
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].org_name, N("acme"));
  EXPECT_TRUE((*got)[2].unknown_user);
  EXPECT_EQ((*got)[2].org_name, "");
  EXPECT_EQ((*got)[2].source, "imported");
}

TEST_P(StoreTest, BulkImportKeepsAwkwardTextAndDedupesWithinABatch) {
  AddOrg("acme");
  ASSERT_TRUE(store_->AddUser(N("acme"), N("alice"), N("h1")).ok());
  std::vector<Download> rows;
  for (int i = 0; i < 150; ++i) {  // more rows than one multi-row statement holds
    Download d;
    d.started_at = 5000 + i;
    d.ended_at = 5000 + i;
    d.node = N("bulk");
    d.username = N("alice");
    d.target_path = "office/setup " + std::to_string(i) + ".exe";
    d.user_agent = i == 7 ? "tab\there\nnewline\\backslash \\N \xC3\xA9" : "curl/8";
    d.outcome = DownloadOutcome::kComplete;
    d.bytes_sent = 1;
    d.import_key = N("bulk-") + std::to_string(i % 100);  // rows 100..149 repeat keys 0..49
    rows.push_back(d);
  }
  auto r = store_->ImportDownloads(rows);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inserted, 100u);
  EXPECT_EQ(r->duplicates, 50u);
  EXPECT_EQ(r->unknown_users, 0u);
  DownloadQuery q;
  q.node = N("bulk");
  auto got = store_->QueryDownloads(q);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 100u);
  EXPECT_EQ((*got)[7].user_agent, "tab\there\nnewline\\backslash \\N \xC3\xA9");
  EXPECT_EQ((*got)[7].org_name, N("acme"));
  // A row without its key is refused and the whole batch with it.
  rows[0].import_key = N("fresh");
  rows[1].import_key.clear();
  EXPECT_EQ(store_->ImportDownloads(rows).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->QueryDownloads(q)->size(), 100u);
}

TEST_P(StoreTest, IncidentsNotificationsAndAcks) {
  int64_t acme = AddOrg("acme");
  Incident inc{0, N("mirror-2"), 100, 200, "file infector", 250, {"office/a", "office/b"}};
  auto id = store_->CreateIncident(inc);
  ASSERT_TRUE(id.ok());
  auto back = store_->GetIncident(*id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->targets.size(), 2u);
  EXPECT_EQ(store_->GetIncident(987654321).status().code(), ErrorCode::kNotFound);
  inc.window_end = 50;
  EXPECT_EQ(store_->CreateIncident(inc).status().code(), ErrorCode::kInvalidArgument);

  auto n = store_->EnsureNotification(*id, acme, "smtp", "sec@acme.example", N("ack-hash"));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->state, "pending");
  auto again = store_->EnsureNotification(*id, acme, "smtp", "other", N("other-hash"));
  EXPECT_EQ(again->id, n->id);  // idempotent: the existing row
  ASSERT_TRUE(store_->RecordNotificationAttempt(n->id, false, "connection refused", 300).ok());
  ASSERT_TRUE(store_->RecordNotificationAttempt(n->id, true, "", 400).ok());
  ASSERT_TRUE(store_->RecordNotificationAttempt(n->id, false, "late failure", 500).ok());  // does not undo 'sent'
  auto list = store_->ListNotifications(*id);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "sent");
  EXPECT_EQ((*list)[0].attempts, 2);
  EXPECT_EQ(*(*list)[0].sent_at, 400);
  EXPECT_EQ(store_->Acknowledge(N("unknown"), 600).code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->Acknowledge(N("ack-hash"), 600).ok());
  ASSERT_TRUE(store_->Acknowledge(N("ack-hash"), 700).ok());  // recorded once
  EXPECT_EQ(*(*store_->ListNotifications(*id))[0].acked_at, 600);
}

TEST_P(StoreTest, TargetsNodesAndScanCache) {
  TargetRecord t{N("office/a"), "office", "2.1", 10, "abc", 1, "clean", "ClamAV 1.4", "db1", false, ""};
  ASSERT_TRUE(store_->UpsertTarget(t).ok());
  ASSERT_TRUE(store_->MarkTargetInfected(N("office/a"), "Win.Test.EICAR_HDB-1").ok());
  auto got = store_->GetTarget(N("office/a"));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->infected);
  EXPECT_EQ(store_->MarkTargetInfected(N("nope"), "x").code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->UpsertNode({N("mirror-1"), "mirror", "origin", 5, "{}", "ok"}).ok());
  ASSERT_TRUE(store_->UpsertNode({N("mirror-1"), "mirror", "origin", 6, "{}", "non-compliant"}).ok());
  auto nodes = store_->ListNodes();
  bool found = false;
  for (const auto& n : *nodes)
    if (n.name == N("mirror-1")) found = n.state == "non-compliant" && n.last_heartbeat == 6;
  EXPECT_TRUE(found);
  ASSERT_TRUE(store_->QuarantineTargetOnNode(N("mirror-1"), N("office/a"), "abc", "def", 7).ok());
  EXPECT_FALSE(store_->GetScanVerdict(N("sha"), "db1")->has_value());
  ASSERT_TRUE(store_->PutScanVerdict({N("sha"), "db1", "clean", "", "1.4.6", 9}).ok());
  auto v = store_->GetScanVerdict(N("sha"), "db1");
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ((*v)->verdict, "clean");
  EXPECT_FALSE(store_->GetScanVerdict(N("sha"), "db2")->has_value());
}

TEST_P(StoreTest, SubjectNotificationsAreClaimedByOneSenderAtATime) {
  int64_t org = AddOrg("claims");
  std::string subject = "advisory:" + N("PG-1") + ":prenotice";
  auto n = store_->EnsureSubjectNotification(subject, org, "smtp", "a@x.example", N("hash-claim"));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->subject, subject);
  EXPECT_EQ(n->incident_id, 0);
  auto again = store_->EnsureSubjectNotification(subject, org, "smtp", "other", N("hash-other"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, n->id);  // one row per subject, organisation and channel
  EXPECT_TRUE(*store_->ClaimNotification(n->id, 100, 200));
  EXPECT_FALSE(*store_->ClaimNotification(n->id, 150, 250));  // held by the first sender
  EXPECT_TRUE(*store_->ClaimNotification(n->id, 201, 300));   // the lease expired
  ASSERT_TRUE(store_->RecordNotificationAttempt(n->id, true, "", 210).ok());
  EXPECT_FALSE(*store_->ClaimNotification(n->id, 10'000, 20'000));  // sent: never again
  auto list = store_->ListSubjectNotifications("advisory:" + N("PG-1") + ":");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "sent");
  EXPECT_TRUE(store_->ListSubjectNotifications("advisory:" + N("PG-2") + ":")->empty());
  EXPECT_EQ(store_->EnsureSubjectNotification("incident:1", org, "smtp", "", N("h3")).status().code(),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(store_->Acknowledge(N("hash-claim"), 500).ok());
  EXPECT_TRUE((*store_->ListSubjectNotifications(subject))[0].acked_at.has_value());
}

TEST_P(StoreTest, AdvisoriesGetSequentialIdsAndCompareAndSwapUpdates) {
  AdvisoryRow a;
  a.product = N("webserver");
  a.state = "draft";
  a.tlp = "AMBER";
  a.data = "{}";
  auto id1 = store_->CreateAdvisory(a, 2091);
  auto id2 = store_->CreateAdvisory(a, 2091);
  ASSERT_TRUE(id1.ok() && id2.ok()) << id1.status().ToString();
  EXPECT_EQ(id1->substr(0, 8), "PG-2091-");
  EXPECT_NE(*id1, *id2);
  auto got = store_->GetAdvisory(*id1);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version, 1);
  AdvisoryRow b = *got;
  b.state = "scheduled";
  b.publish_at = 77;
  ASSERT_TRUE(store_->UpdateAdvisory(b).ok());
  EXPECT_EQ(store_->UpdateAdvisory(b).code(), ErrorCode::kConflict);  // stale version
  got = store_->GetAdvisory(*id1);
  EXPECT_EQ(got->state, "scheduled");
  EXPECT_EQ(got->publish_at, 77);
  EXPECT_EQ(got->version, 2);
  EXPECT_EQ(store_->GetAdvisory("PG-0000-0000").status().code(), ErrorCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, TestEngine::Names(), TestEngine::ParamName);

TEST(StoreOpen, RefusesUnknownSchemesAndUnreachableServers) {
  EXPECT_EQ(Store::Open("mysql://x").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Store::Open("sqlite://").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Store::Open("sqlite:///nonexistent-dir/x/y.db").status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(Store::Open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2").status().code(),
            ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace patchgate

namespace patchgate {
namespace {

// The store turns GSS encryption off unless asked for; a URL that asks for it is obeyed:
// `gssencmode=require` against a server without GSS (the test server) is refused, where
// the same URL with `gssencmode=disable` (what the store uses by default) connects.
TEST(StoreOpen, PostgresUrlKeepsItsOwnGssEncMode) {
  const char* url = std::getenv("PATCHGATE_TEST_PG_URL");
  if (!url) GTEST_SKIP() << "PATCHGATE_TEST_PG_URL is not set: no PostgreSQL to test against";
  const std::string base = url, sep = base.find('?') == std::string::npos ? "?" : "&";
  EXPECT_TRUE(Store::Open(base).ok());
  EXPECT_TRUE(Store::Open(base + sep + "gssencmode=disable").ok());
  auto required = Store::Open(base + sep + "gssencmode=require");
  ASSERT_FALSE(required.ok());
  EXPECT_EQ(required.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(required.status().message().find("GSS"), std::string::npos) << required.status().ToString();
}

}  // namespace
}  // namespace patchgate
