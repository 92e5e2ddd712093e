// The store's text rules on both engines: whatever bytes arrive, what is stored is valid
// UTF-8 (escaped "\xHH"), cut at character boundaries under named caps; one record's bytes
// never fail another's write; names that can never work are refused.
#include <gtest/gtest.h>

#include <optional>
#include <stdlib.h>

#include "core/clock.h"
#include "core/text.h"
#include "store/store.h"
#include "store/test_engine.h"

namespace patchgate {
namespace {

class StoreTextTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_.emplace(GetParam(), "storetext");
    if (!engine_->available()) GTEST_SKIP() << TestEngine::kNoPostgres;
    url_ = engine_->url();
    auto s = Store::Open(url_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    prefix_ = "x" + std::to_string(SystemClock::Get().NowMicros()) + "-";
    Organisation o;
    o.name = prefix_ + "acme";
    o.tier = "gold";
    ASSERT_TRUE(store_->AddOrganisation(o).ok());
    ASSERT_TRUE(store_->AddUser(o.name, prefix_ + "alice", prefix_ + "hash").ok());
    alice_ = *store_->GetUser(prefix_ + "alice");
  }
  DownloadStart Start(int64_t t, std::string ua, std::string range = "") {
    DownloadStart s;
    s.started_at = t;
    s.node = prefix_ + "node";
    s.user_id = alice_.id;
    s.org_id = alice_.org_id;
    s.target_path = "office/setup.exe";
    s.sha256 = "abc";
    s.remote_addr = "127.0.0.1";
    s.user_agent = std::move(ua);
    s.range = std::move(range);
    return s;
  }
  std::vector<Download> Rows() {
    DownloadQuery q;
    q.node = prefix_ + "node";
    auto r = store_->QueryDownloads(q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.value_or({});
  }

  std::optional<TestEngine> engine_;
  std::string url_, prefix_;
  std::unique_ptr<Store> store_;
  User alice_;
};

const std::string kEuro = "\xE2\x82\xAC";

TEST_P(StoreTextTest, InvalidHeaderBytesAreStoredEscapedAndFailNoOtherRecord) {
  std::string cut_ua;  // 600 bytes: the cap falls in the middle of a euro sign
  while (cut_ua.size() < 600) cut_ua += kEuro;
  std::string cut_range = std::string(255, 'r') + kEuro;  // a 256-byte cut through a character
  auto ids = store_->BeginDownloads({Start(1, "honest client/1.0"),
                                     Start(2, "evil\xFF\xFE agent", "bytes=0-\xC0\xAF"),
                                     Start(3, std::string("nul\0byte", 8)),
                                     Start(4, cut_ua, cut_range),
                                     Start(5, "another honest client")});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 5u);
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& d : rows) {
    EXPECT_TRUE(IsStorableText(d.user_agent)) << d.id;
    EXPECT_TRUE(IsStorableText(d.range)) << d.id;
  }
  EXPECT_EQ(rows[0].user_agent, "honest client/1.0");
  EXPECT_EQ(rows[1].user_agent, "evil\\xFF\\xFE agent");
  EXPECT_EQ(rows[1].range, "bytes=0-\\xC0\\xAF");
  EXPECT_EQ(rows[2].user_agent, "nul\\x00byte");
  EXPECT_LE(rows[3].user_agent.size(), kMaxStoredUserAgentBytes);
  EXPECT_EQ(rows[3].user_agent.size(), kMaxStoredUserAgentBytes / 3 * 3);  // whole euro signs only
  EXPECT_EQ(rows[3].range, std::string(255, 'r'));
  EXPECT_EQ(rows[4].user_agent, "another honest client");
  ASSERT_TRUE(store_->FinishDownloads({{(*ids)[1], 10, 5, DownloadOutcome::kComplete}}).ok());
}

TEST_P(StoreTextTest, ImportedRowsAreStoredAsValidUtf8) {
  std::vector<Download> rows;
  for (int i = 0; i < 3; ++i) {
    Download d;
    d.started_at = 100 + i;
    d.node = prefix_ + "node";
    d.username = i == 1 ? "m\xFCller" : prefix_ + "alice";  // Latin-1 from an old log
    d.target_path = i == 2 ? "office/\xE2\x82" : "office/setup.exe";
    d.user_agent = "ua\x80\x81";
    d.remote_addr = "10.0.0.\xFF";
    d.outcome = DownloadOutcome::kComplete;
    d.http_status = 200;
    d.import_key = prefix_ + "k" + std::to_string(i);
    rows.push_back(d);
  }
  auto r = store_->ImportDownloads(rows);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inserted, 3u);
  EXPECT_EQ(r->unknown_users, 1u);
  auto got = Rows();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].username, "m\\xFCller");
  EXPECT_TRUE(got[1].unknown_user);
  EXPECT_EQ(got[2].target_path, "office/\\xE2\\x82");
  EXPECT_EQ(got[0].user_agent, "ua\\x80\\x81");
  EXPECT_EQ(got[0].remote_addr, "10.0.0.\\xFF");
  // The same lines again are duplicates: the escaped key matches itself.
  EXPECT_EQ(store_->ImportDownloads(rows)->duplicates, 3u);
}

TEST_P(StoreTextTest, EveryOtherWriteIsStoredAsValidUtf8) {
  Incident inc{0, prefix_ + "node", 1, 2, "cause \xFF", 3, {"office/\xFE"}};
  auto id = store_->CreateIncident(inc);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto back = store_->GetIncident(*id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->cause, "cause \\xFF");
  EXPECT_EQ(back->targets[0], "office/\\xFE");
  auto n = store_->EnsureNotification(*id, alice_.org_id, "smtp", "a@b.example", prefix_ + "ack");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_TRUE(store_->RecordNotificationAttempt(n->id, false, "550 \xE9t\xE9", 4).ok());
  EXPECT_EQ((*store_->ListNotifications(*id))[0].last_error, "550 \\xE9t\\xE9");
  TargetRecord t{prefix_ + "office/a", "office", "1", 1, "abc", 1, "clean", "e", "db", false, ""};
  ASSERT_TRUE(store_->UpsertTarget(t).ok());
  ASSERT_TRUE(store_->MarkTargetInfected(t.path, "Win.\xFF").ok());
  EXPECT_EQ(store_->GetTarget(t.path)->infected_detail, "Win.\\xFF");
  ASSERT_TRUE(store_->UpsertNode({prefix_ + "n\xFF", "mirror", "o", 1, "{}", "ok"}).ok());
  // Looking up a name with bad bytes is an ordinary miss, not a database error.
  EXPECT_EQ(store_->GetUser("nobody\xFF").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetOrganisation("x\xC0").status().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTextTest, NamesThatCanNeverWorkAreRefused) {
  Organisation o;
  o.tier = "gold";
  for (const std::string& bad : {std::string("Evil\xFF"), std::string("a\x1b[2Jb"), std::string(" pad"),
                                 std::string(201, 'o'), std::string()}) {
    o.name = bad;
    auto r = store_->AddOrganisation(o);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().code(), ErrorCode::kUnavailable) << r.status().ToString();
  }
  o.name = prefix_ + "ok";
  o.account_manager_name = "Ann\x07";
  EXPECT_EQ(store_->AddOrganisation(o).status().code(), ErrorCode::kInvalidArgument);
  o.account_manager_name = "Ann";
  o.security_contacts = {"a@b.example,c@d.example"};
  EXPECT_EQ(store_->AddOrganisation(o).status().code(), ErrorCode::kInvalidArgument);
  for (const std::string& bad : {std::string("bob\xFF"), std::string("bob smith"), std::string("bob:x"),
                                 std::string("b\nob"), std::string(101, 'u')})
    EXPECT_FALSE(store_->AddUser(prefix_ + "acme", bad, "h-" + bad).ok()) << bad;
  for (const char* bad : {"office.", "../etc", "a/b", "of fice", "", ".", "office\xFF"})
    EXPECT_EQ(store_->Grant(prefix_ + "acme", bad).code(), ErrorCode::kInvalidArgument) << bad;
  EXPECT_TRUE(store_->Grant(prefix_ + "acme", "office-2024").ok());
  Status dup = store_->AddUser(prefix_ + "acme", prefix_ + "alice", "other").status();
  EXPECT_EQ(dup.code(), ErrorCode::kAlreadyExists);
}

TEST(DisplayOutcome, AFreshUnfinishedServedRecordIsCompletingAnOldOneUnfinished) {
  const int64_t now = 1'000'000'000'000'000;
  Download d;
  d.source = "served";
  d.outcome = DownloadOutcome::kInProgress;
  d.started_at = now - 200'000;  // 0.2 s ago: the completion may be waiting in the server's batch
  EXPECT_EQ(DisplayOutcome(d, now), "completing");
  d.started_at = now - kCompletingWindowMicros + 1;
  EXPECT_EQ(DisplayOutcome(d, now), "completing");
  d.started_at = now - kCompletingWindowMicros;
  EXPECT_EQ(DisplayOutcome(d, now), "in_progress");  // old: the node stopped, or still streaming
  d.started_at = now - 200'000;
  d.outcome = DownloadOutcome::kComplete;
  d.ended_at = now;
  EXPECT_EQ(DisplayOutcome(d, now), "complete");
  d.outcome = DownloadOutcome::kInProgress;
  d.ended_at.reset();
  d.source = "imported";  // imported rows have no batch behind them
  EXPECT_EQ(DisplayOutcome(d, now), "in_progress");
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTextTest, TestEngine::Names(), TestEngine::ParamName);

}  // namespace
}  // namespace patchgate
