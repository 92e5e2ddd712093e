// The download journal (migration 0009): begins and ends are written to a lean journal and
// folded into the indexed trail later; readers see both, each record exactly once. One
// suite, both engines (PostgreSQL when PATCHGATE_TEST_PG_URL is set).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "store/sql.h"
#include "store/store.h"
#include "store/test_engine.h"

namespace patchgate {
namespace {

constexpr int64_t kT0 = 1'790'000'000LL * 1'000'000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::min();  // fold no unfinished record
constexpr int64_t kAll = std::numeric_limits<int64_t>::max();    // fold unfinished records too

class DownloadJournalTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_.emplace(GetParam(), "journal");
    if (!engine_->available()) GTEST_SKIP() << TestEngine::kNoPostgres;
    url_ = engine_->url();
    if (GetParam() == "postgresql") OwnDatabase();
    auto s = Store::Open(url_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    node_ = engine_->Unique("edge");
    Organisation o;
    o.name = engine_->Unique("acme");
    o.tier = "premier";
    ASSERT_TRUE(store_->AddOrganisation(o).ok());
    org_ = o.name;
    ASSERT_TRUE(store_->AddUser(org_, engine_->Unique("alice"), engine_->Unique("token")).ok());
    auto u = store_->GetUser(engine_->Unique("alice"));
    ASSERT_TRUE(u.ok());
    user_id_ = u->id;
    product_ = engine_->Unique("office");
    TargetRecord t;
    t.path = product_ + "/setup.exe";
    t.product = product_;
    t.sha256 = "abc";
    ASSERT_TRUE(store_->UpsertTarget(t).ok());
  }

  DownloadStart Start(int64_t at) const {
    DownloadStart s;
    s.started_at = at;
    s.node = node_;
    s.user_id = user_id_;
    s.target_path = product_ + "/setup.exe";
    s.sha256 = "abc";
    s.remote_addr = "192.0.2.7";
    s.user_agent = "test";
    return s;
  }

  // Rows of `table` for this test's node, counted on the store's own connection.
  int64_t Count(Store& store, const std::string& table) {
    auto shared = sql::ConnectionOf(store);
    EXPECT_TRUE(shared.has_value());
    if (!shared) return -1;
    std::lock_guard<std::mutex> l(*shared->mu);
    auto rows = shared->conn->Query("SELECT COUNT(*) FROM " + table + " WHERE node = ?", {node_});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? std::stoll(*(*rows)[0][0]) : -1;
  }

  // Every record of the node, by id: the list (all columns) and the scope's window query.
  std::map<int64_t, Download> List(Store& store) {
    DownloadQuery q;
    q.node = node_;
    auto rows = store.QueryDownloads(q);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::map<int64_t, Download> out;
    for (auto& d : rows.value_or(std::vector<Download>{})) EXPECT_TRUE(out.emplace(d.id, d).second) << "id twice: " << d.id;
    return out;
  }
  std::map<int64_t, Download> Scope(Store& store, int64_t since, int64_t until) {
    DownloadQuery q;
    q.node = node_;
    q.since = since;
    q.until = until;
    q.successful_only = true;
    q.scope_columns = true;
    auto rows = store.QueryDownloads(q);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::map<int64_t, Download> out;
    for (auto& d : rows.value_or(std::vector<Download>{})) EXPECT_TRUE(out.emplace(d.id, d).second) << "id twice: " << d.id;
    return out;
  }

  // A fold moves the finished records of every node in the database, so another test
  // process folding on the shared PostgreSQL database (ctest -j) would move this test's
  // records under its assertions. Each test here gets a database of its own.
  void OwnDatabase() {
    auto admin = Store::Open(url_);
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    auto shared = sql::ConnectionOf(**admin);
    ASSERT_TRUE(shared.has_value());
    own_db_ = "journal_" + std::to_string(SystemClock::Get().NowMicros()) + "_" + std::to_string(::getpid());
    {
      std::lock_guard<std::mutex> l(*shared->mu);
      Status st = shared->conn->ExecScript("CREATE DATABASE " + own_db_);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    admin_ = std::move(*admin);
    const size_t slash = url_.find('/', url_.find("://") + 3);
    ASSERT_NE(slash, std::string::npos) << url_;
    const size_t query = url_.find('?', slash);
    url_ = url_.substr(0, slash + 1) + own_db_ + (query == std::string::npos ? "" : url_.substr(query));
  }
  void TearDown() override {
    store_.reset();
    if (admin_ && !own_db_.empty()) {
      auto shared = sql::ConnectionOf(*admin_);
      if (shared) {
        std::lock_guard<std::mutex> l(*shared->mu);
        Status st = shared->conn->ExecScript("DROP DATABASE IF EXISTS " + own_db_ + " WITH (FORCE)");
        EXPECT_TRUE(st.ok()) << st.ToString();
      }
    }
  }

  std::optional<TestEngine> engine_;
  std::unique_ptr<Store> admin_;  // PostgreSQL: on the shared database, to drop this test's own
  std::string url_, own_db_;
  std::unique_ptr<Store> store_;
  std::string node_, org_, product_;
  int64_t user_id_ = 0;
};

// What the serving path wrote is seen by every reader from its begin on, and the same
// once its end has moved it into the trail (same ids, same fields): an end moves its
// record's journal row into `downloads` at once, with the end in place (no rewrite of the
// journal row, nothing left for a fold). A record folded unfinished (old) still gets its
// end, in `downloads`.
TEST_P(DownloadJournalTest, ReadersSeeTheUnfoldedTailAndTheSameRecordsOnceFolded) {
  auto ids = store_->WriteDownloads({Start(kT0), Start(kT0 + 10), Start(kT0 + 20), Start(kT0 + 30)});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_TRUE(store_->SyncDownloads().ok());
  const int64_t done = (*ids)[0], cut = (*ids)[1], streaming = (*ids)[2], refused = (*ids)[3];
  ASSERT_EQ(Count(*store_, "download_journal"), 4);
  auto before = List(*store_);
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before[done].outcome, DownloadOutcome::kInProgress);
  EXPECT_EQ(before[done].org_name, org_);

  ASSERT_TRUE(store_->WriteFinishes({{done, kT0 + 100, 1024, DownloadOutcome::kComplete, ""},
                                     {cut, kT0 + 110, 512, DownloadOutcome::kAborted, "integrity: chunk 0 changed"},
                                     {refused, kT0 + 120, 0, DownloadOutcome::kAborted, "not served"}})
                  .ok());
  // The three ended records moved with their ends; the one still streaming stays.
  EXPECT_EQ(Count(*store_, "download_journal"), 1);
  EXPECT_EQ(Count(*store_, "downloads"), 3);

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    auto all = List(*store_);
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[done].outcome, DownloadOutcome::kComplete);
    EXPECT_EQ(all[done].bytes_sent, 1024u);
    EXPECT_EQ(all[done].ended_at, kT0 + 100);
    EXPECT_EQ(all[done].org_name, org_);
    EXPECT_EQ(all[done].remote_addr, "192.0.2.7");
    EXPECT_EQ(all[cut].detail, "integrity: chunk 0 changed");
    EXPECT_EQ(all[cut].bytes_sent, 512u);
    EXPECT_EQ(all[refused].outcome, DownloadOutcome::kAborted);
    EXPECT_EQ(all[refused].detail, "not served");
    EXPECT_EQ(all[streaming].outcome, DownloadOutcome::kInProgress);
    EXPECT_FALSE(all[streaming].ended_at.has_value());
    for (const auto& [id, d] : before) {
      EXPECT_EQ(all[id].started_at, d.started_at);
      EXPECT_EQ(all[id].target_path, d.target_path);
      EXPECT_EQ(all[id].user_agent, d.user_agent);
      EXPECT_EQ(all[id].sha256, d.sha256);
    }
    // The scope of a window after the begins: the complete, the cut-with-bytes and the
    // still-streaming ones (possibly received); not the refused one (no byte sent).
    auto scope = Scope(*store_, kT0 + 50, kT0 + 60);
    EXPECT_EQ(scope.size(), 3u);
    EXPECT_TRUE(scope.count(done) && scope.count(cut) && scope.count(streaming));
    EXPECT_EQ(scope[cut].detail, "integrity: chunk 0 changed");
    // A window after every end: only the one still streaming.
    scope = Scope(*store_, kT0 + 200, kT0 + 300);
    EXPECT_EQ(scope.size(), 1u);
    EXPECT_TRUE(scope.count(streaming));
    auto orgs = store_->OrganisationsThatDownloaded(product_);
    ASSERT_TRUE(orgs.ok());
    EXPECT_NE(std::find(orgs->begin(), orgs->end(), org_), orgs->end());
  };
  check("after the ends");

  // Nothing finished is left for a fold.
  auto moved = store_->FoldDownloads(1000, kNever);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 0u);
  check("after a fold");

  // An old unfinished record is folded as it is; its end, written later, still lands, with
  // ends of records still in the journal and of one that does not exist in the same batch.
  ASSERT_TRUE(store_->FoldDownloads(1000, kAll).ok());
  EXPECT_EQ(Count(*store_, "download_journal"), 0);
  EXPECT_EQ(Count(*store_, "downloads"), 4);
  EXPECT_EQ(List(*store_)[streaming].outcome, DownloadOutcome::kInProgress);
  auto more = store_->WriteDownloads({Start(kT0 + 40)});
  ASSERT_TRUE(more.ok());
  ASSERT_TRUE(store_->FinishDownloads({{streaming, kT0 + 500, 2048, DownloadOutcome::kComplete, ""},
                                       {(*more)[0], kT0 + 510, 7, DownloadOutcome::kPartial, ""},
                                       {(*more)[0] + 1'000'000, kT0 + 520, 1, DownloadOutcome::kComplete, ""}})
                  .ok());
  auto end = List(*store_);
  EXPECT_EQ(end.size(), 5u);
  EXPECT_EQ(end[streaming].outcome, DownloadOutcome::kComplete);
  EXPECT_EQ(end[streaming].bytes_sent, 2048u);
  EXPECT_EQ(end[streaming].ended_at, kT0 + 500);
  EXPECT_EQ(end[(*more)[0]].outcome, DownloadOutcome::kPartial);
  EXPECT_EQ(end[(*more)[0]].bytes_sent, 7u);
  EXPECT_EQ(Count(*store_, "download_journal"), 0);
  EXPECT_EQ(Count(*store_, "downloads"), 5);
}

// More ends in one write than one statement moves (SQLite moves them in statements of 64),
// some of them for records an earlier batch already moved: each record lands once, with
// its own end.
TEST_P(DownloadJournalTest, ManyEndsInOneWriteMoveEachRecordOnceWithItsOwnEnd) {
  constexpr int kRecords = 300;
  std::vector<DownloadStart> starts;
  for (int i = 0; i < kRecords; ++i) starts.push_back(Start(kT0 + i));
  auto ids = store_->WriteDownloads(starts);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  auto end_of = [&](int i, uint64_t bytes) {
    return DownloadFinish{(*ids)[static_cast<size_t>(i)], kT0 + 1000 + i, bytes, DownloadOutcome::kComplete, ""};
  };
  std::vector<DownloadFinish> early;
  for (int i = 0; i < kRecords; i += 7) early.push_back(end_of(i, 1));
  ASSERT_TRUE(store_->WriteFinishes(early).ok());
  std::vector<DownloadFinish> all_ends;
  for (int i = kRecords - 1; i >= 0; --i) all_ends.push_back(end_of(i, static_cast<uint64_t>(i) + 100));
  ASSERT_TRUE(store_->WriteFinishes(all_ends).ok());
  EXPECT_EQ(Count(*store_, "download_journal"), 0);
  EXPECT_EQ(Count(*store_, "downloads"), kRecords);
  auto all = List(*store_);
  ASSERT_EQ(all.size(), static_cast<size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i) {
    const Download& d = all[(*ids)[static_cast<size_t>(i)]];
    EXPECT_EQ(d.bytes_sent, static_cast<uint64_t>(i) + 100) << i;
    EXPECT_EQ(d.ended_at, kT0 + 1000 + i) << i;
    EXPECT_EQ(d.started_at, kT0 + i) << i;
  }
}

// Journal ids come from the trail's own sequence: rows imported meanwhile (which take ids
// from it too) never collide with a folded row, and a row keeps its id.
TEST_P(DownloadJournalTest, ImportsAndFoldsNeverShareAnId) {
  auto begun = store_->BeginDownloads({Start(kT0), Start(kT0 + 1)});
  ASSERT_TRUE(begun.ok()) << begun.status().ToString();
  std::vector<Download> imported(3);
  for (size_t i = 0; i < imported.size(); ++i) {
    imported[i].started_at = kT0 + 5;
    imported[i].ended_at = kT0 + 6;
    imported[i].node = node_;
    imported[i].username = "someone";
    imported[i].target_path = "x";
    imported[i].outcome = DownloadOutcome::kComplete;
    imported[i].import_key = engine_->Unique("k" + std::to_string(i));
  }
  ASSERT_TRUE(store_->ImportDownloads(imported).ok());
  auto more = store_->BeginDownloads({Start(kT0 + 7)});
  ASSERT_TRUE(more.ok());
  ASSERT_TRUE(store_->FinishDownloads({{(*begun)[0], kT0 + 9, 1, DownloadOutcome::kComplete, ""},
                                       {(*begun)[1], kT0 + 9, 1, DownloadOutcome::kComplete, ""},
                                       {(*more)[0], kT0 + 9, 1, DownloadOutcome::kComplete, ""}})
                  .ok());
  for (;;) {
    auto moved = store_->FoldDownloads(1000, kNever);
    ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    if (*moved < 1000) break;
  }
  auto all = List(*store_);
  EXPECT_EQ(all.size(), 6u);
  for (int64_t id : {(*begun)[0], (*begun)[1], (*more)[0]}) EXPECT_EQ(all[id].source, "served") << id;
  EXPECT_EQ(Count(*store_, "download_journal"), 0);
}

// Two folders on one store (two nodes sharing a PostgreSQL store; two processes on one
// SQLite file), racing each other and the ends still being written: every record lands in
// the trail exactly once, with its end.
TEST_P(DownloadJournalTest, TwoFoldersRacingTheEndsMoveEveryRecordOnce) {
  constexpr int kRecords = 1200;
  std::vector<DownloadStart> starts;
  for (int i = 0; i < kRecords; ++i) starts.push_back(Start(kT0 + i));
  auto ids = store_->WriteDownloads(starts);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_TRUE(store_->SyncDownloads().ok());
  auto end_of = [&](int i) {
    return DownloadFinish{(*ids)[static_cast<size_t>(i)], kT0 + 5000 + i, static_cast<uint64_t>(i + 1),
                          DownloadOutcome::kComplete, ""};
  };
  std::vector<DownloadFinish> first_half;
  for (int i = 0; i < kRecords / 2; ++i) first_half.push_back(end_of(i));
  ASSERT_TRUE(store_->WriteFinishes(first_half).ok());

  auto a = Store::Open(url_), b = Store::Open(url_);
  ASSERT_TRUE(a.ok() && b.ok());
  std::atomic<bool> ends_written{false};
  std::atomic<int> fold_errors{0};
  std::atomic<size_t> folded{0};
  auto folder = [&](Store* s) {
    // Unfinished records are folded too (kAll), so ends race with folds of their record.
    for (;;) {
      bool last = ends_written.load();
      auto moved = s->FoldDownloads(37, kAll);
      if (!moved.ok()) {
        ++fold_errors;
        ADD_FAILURE() << moved.status().ToString();
        return;
      }
      folded += *moved;
      if (*moved == 0 && last) return;
    }
  };
  std::thread fa(folder, a->get()), fb(folder, b->get());
  for (int i = kRecords / 2; i < kRecords; i += 25) {
    std::vector<DownloadFinish> batch;
    for (int k = i; k < std::min(kRecords, i + 25); ++k) batch.push_back(end_of(k));
    Status st = store_->WriteFinishes(batch);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  ends_written = true;
  fa.join();
  fb.join();
  ASSERT_EQ(fold_errors.load(), 0);
  // The first half moved with their ends; the rest by a folder (unfinished) or their end.
  EXPECT_LE(folded.load(), static_cast<size_t>(kRecords / 2));
  EXPECT_EQ(Count(*store_, "download_journal"), 0);
  EXPECT_EQ(Count(*store_, "downloads"), kRecords);
  auto all = List(*store_);
  ASSERT_EQ(all.size(), static_cast<size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i) {
    const Download& d = all[(*ids)[static_cast<size_t>(i)]];
    EXPECT_EQ(d.outcome, DownloadOutcome::kComplete) << i;
    EXPECT_EQ(d.bytes_sent, static_cast<uint64_t>(i + 1)) << i;
  }
}

// kill -9 of a process between its begins (durable) and any fold: nothing is lost. The next
// reader sees the records in the journal; the next fold moves them, once.
TEST_P(DownloadJournalTest, AKillBeforeTheFoldLosesNothing) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto s = Store::Open(url_);
    if (!s.ok()) ::_exit(2);
    std::vector<DownloadStart> starts;
    for (int i = 0; i < 5; ++i) starts.push_back(Start(kT0 + i));
    auto ids = (*s)->WriteDownloads(starts);
    if (!ids.ok() || !(*s)->SyncDownloads().ok()) ::_exit(3);
    if (!(*s)->WriteFinishes({{(*ids)[0], kT0 + 50, 7, DownloadOutcome::kComplete, ""}}).ok()) ::_exit(4);
    if (!(*s)->SyncDownloads().ok()) ::_exit(5);
    char ok = 'k';
    (void)!::write(ready[1], &ok, 1);
    for (;;) ::pause();  // killed here, with its store still open and nothing folded
  }
  ::close(ready[1]);
  char got = 0;
  ASSERT_EQ(::read(ready[0], &got, 1), 1) << "the writer process failed before writing its records";
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto reopened = Store::Open(url_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  // The ended record moved with its end; the four cut off are still in the journal.
  EXPECT_EQ(Count(**reopened, "download_journal"), 4);
  EXPECT_EQ(Count(**reopened, "downloads"), 1);
  auto seen = List(**reopened);
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(std::count_if(seen.begin(), seen.end(),
                          [](const auto& kv) { return kv.second.outcome == DownloadOutcome::kComplete; }),
            1);
  for (;;) {
    auto moved = (*reopened)->FoldDownloads(1000, kAll);
    ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    if (*moved < 1000) break;
  }
  EXPECT_EQ(Count(**reopened, "download_journal"), 0);
  EXPECT_EQ(Count(**reopened, "downloads"), 5);
  EXPECT_EQ(List(**reopened).size(), 5u);
}

// Two stores on one database (two serving nodes, or a node and an import) draw ids from
// the one sequence: on SQLite each reserves ids in blocks. Ids never repeat, and a batch
// the store refused (its reservation rolled back with it) does not leave the refusing
// store handing out ids that another store has since taken.
TEST_P(DownloadJournalTest, StoresSharingTheDatabaseNeverHandOutTheSameId) {
  auto other = Store::Open(url_);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  // The first batch of store_ is refused (an unknown user): whatever it reserved is undone.
  DownloadStart bad = Start(kT0);
  bad.user_id = user_id_ + 1'000'000;
  EXPECT_FALSE(store_->WriteDownloads({Start(kT0), bad}).ok());
  std::set<int64_t> seen;
  auto take = [&](Store& s, int n, int64_t at) {
    std::vector<DownloadStart> starts;
    for (int i = 0; i < n; ++i) starts.push_back(Start(at + i));
    auto ids = s.WriteDownloads(starts);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    ASSERT_EQ(ids->size(), static_cast<size_t>(n));
    for (int64_t id : *ids) EXPECT_TRUE(seen.insert(id).second) << "id handed out twice: " << id;
  };
  take(**other, 3, kT0 + 100);
  take(*store_, 3, kT0 + 200);
  take(**other, 2, kT0 + 300);
  take(*store_, 2000, kT0 + 400);  // more than one block at once
  take(**other, 1, kT0 + 5000);
  take(*store_, 1, kT0 + 6000);
  ASSERT_TRUE(store_->SyncDownloads().ok());
  EXPECT_EQ(List(*store_).size(), seen.size());
  for (;;) {
    auto moved = store_->FoldDownloads(1000, kAll);
    ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    if (*moved < 1000) break;
  }
  EXPECT_EQ(Count(*store_, "downloads"), static_cast<int64_t>(seen.size()));
}

// The node's longest download (download_bounds, migrations 0007 and 0010) is kept as ends
// move their records into the trail: set by the node's first finished record, raised only
// by a longer one, never lowered (a fold finds nothing finished left to move).
TEST_P(DownloadJournalTest, FoldsKeepTheNodesLongestDownload) {
  auto longest = [&]() -> std::optional<int64_t> {
    auto shared = sql::ConnectionOf(*store_);
    std::lock_guard<std::mutex> l(*shared->mu);
    auto rows = shared->conn->Query("SELECT longest_micros FROM download_bounds WHERE node = ?", {node_});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok() || rows->empty()) return std::nullopt;
    return std::stoll(*(*rows)[0][0]);
  };
  auto fold_lengths = [&](const std::vector<int64_t>& lengths) {
    std::vector<DownloadStart> starts;
    for (size_t i = 0; i < lengths.size(); ++i) starts.push_back(Start(kT0 + static_cast<int64_t>(i)));
    auto ids = store_->WriteDownloads(starts);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    std::vector<DownloadFinish> ends;
    for (size_t i = 0; i < lengths.size(); ++i)
      ends.push_back({(*ids)[i], kT0 + static_cast<int64_t>(i) + lengths[i], 1, DownloadOutcome::kComplete, ""});
    ASSERT_TRUE(store_->WriteFinishes(ends).ok());
    auto moved = store_->FoldDownloads(1000, kNever);
    ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    EXPECT_EQ(*moved, 0u);
  };
  EXPECT_FALSE(longest().has_value());
  fold_lengths({5, 50, 20});
  EXPECT_EQ(longest(), 50);
  fold_lengths({10});
  EXPECT_EQ(longest(), 50);
  fold_lengths({30, 70, 60});
  EXPECT_EQ(longest(), 70);
}

INSTANTIATE_TEST_SUITE_P(Engines, DownloadJournalTest, TestEngine::Names(), TestEngine::ParamName);

}  // namespace
}  // namespace patchgate
