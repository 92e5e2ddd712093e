#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/clock.h"
#include "core/csv.h"
#include "core/scratch_dir.h"
#include "incident/import.h"
#include "incident/nginx_log.h"
#include "incident/scope.h"
#include "incident/world.h"
#include "store/forwarding_store.h"

namespace patchgate::incident {
namespace {

// The store URLs a two-engine test runs on: a fresh SQLite file in `dir` (a ScratchDir's
// path), then the PostgreSQL server of PATCHGATE_TEST_PG_URL when it is set.
std::vector<std::string> EngineUrls(const std::string& dir) {
  std::vector<std::string> urls = {"sqlite://" + dir + "/store.db"};
  if (const char* pg = std::getenv("PATCHGATE_TEST_PG_URL"); pg && *pg) urls.push_back(pg);
  else std::fprintf(stderr, "PATCHGATE_TEST_PG_URL is not set: the PostgreSQL half of this test is skipped\n");
  return urls;
}

// A fresh SQLite store in `dir` (a ScratchDir's path, which outlives the store).
std::unique_ptr<Store> FreshStore(const std::string& dir) {
  auto s = Store::Open("sqlite://" + dir + "/store.db");
  EXPECT_TRUE(s.ok());
  return std::move(*s);
}

std::set<std::tuple<std::string, std::string, std::string, int64_t>> Keys(const Scope& s) {
  std::set<std::tuple<std::string, std::string, std::string, int64_t>> k;
  for (const auto& g : s.orgs)
    for (const auto& d : g.downloads)
      k.insert({std::string(d.org_name), std::string(d.username), std::string(d.target_path), d.started_at / 1'000'000});
  return k;
}

TEST(NginxLog, ParsesCombinedLines) {
  auto r = ParseCombinedLine(
      R"(203.0.113.7 - alice [10/Oct/2026:13:55:36 -0700] "GET /targets/office/abc.setup.exe?x=1 HTTP/1.1" 200 2326 "-" "curl/8 \"x\"")");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->remote_user, "alice");
  EXPECT_EQ(r->path, "/targets/office/abc.setup.exe");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->bytes, 2326u);
  EXPECT_EQ(r->user_agent, "curl/8 \"x\"");
  EXPECT_EQ(r->time_us, *ParseRfc3339Micros("2026-10-10T20:55:36Z"));
  for (const char* bad : {"", "garbage", "1.2.3.4 - - [bad] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
                          "1.2.3.4 - - [10/Oct/2026:13:55:36 -0700] \"GET / HTTP/1.1\" abc 1 \"-\" \"-\"",
                          "1.2.3.4 - - [10/Oct/2026:13:55:36 -0700] \"GET / HTTP/1.1\" 200 1 \"-\""})
    EXPECT_FALSE(ParseCombinedLine(bad).ok()) << bad;
  std::string t, sha;
  ASSERT_TRUE(TargetFromRequestPath("/targets/office/" + std::string(64, 'a') + ".setup.exe", &t, &sha));
  EXPECT_EQ(t, "office/setup.exe");
  EXPECT_EQ(sha, std::string(64, 'a'));
  EXPECT_FALSE(TargetFromRequestPath("/metadata/timestamp.json", &t, &sha));
  ASSERT_TRUE(TargetFromRequestPath("/targets/office/set%20up.exe", &t, &sha));
  EXPECT_EQ(t, "office/set up.exe");
  ASSERT_TRUE(TargetFromRequestPath("/targets/office/a%FFb.exe", &t, &sha));  // not UTF-8 once decoded
  EXPECT_EQ(t, "office/a%FFb.exe");
  ASSERT_TRUE(TargetFromRequestPath("/targets/office/a%00b.exe", &t, &sha));  // NUL once decoded
  EXPECT_EQ(t, "office/a%00b.exe");
}

TEST(NginxLog, DecodesPrintableEscapesAndKeepsOthersEscaped) {
  auto r = ParseCombinedLine(
      R"(203.0.113.7 - bob [10/Oct/2026:13:55:36 +0000] "GET /targets/a.bin HTTP/1.1" 200 1 "-" "say \x22hi\x22 \x5C \x00\xFF")");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->user_agent, R"(say "hi" \ \x00\xFF)");
}

TEST(NginxLog, RefusesControlBytesAndInvalidUtf8) {
  const std::string ok = R"(1.2.3.4 - bob [10/Oct/2026:13:55:36 +0000] "GET /targets/a.bin HTTP/1.1" 200 1 "-" "ua")";
  ASSERT_TRUE(ParseCombinedLine(ok).ok());
  std::string nul = ok;
  nul[40] = '\0';
  EXPECT_EQ(ParseCombinedLine(nul).status().code(), ErrorCode::kCorrupt);
  std::string tab = ok;
  tab.insert(tab.size() - 2, "\t");
  EXPECT_EQ(ParseCombinedLine(tab).status().code(), ErrorCode::kCorrupt);
  std::string latin1 = ok;
  latin1.insert(latin1.size() - 2, "\xE9");
  EXPECT_EQ(ParseCombinedLine(latin1).status().code(), ErrorCode::kCorrupt);
  std::string utf8 = ok;
  utf8.insert(utf8.size() - 2, "\xC3\xA9");
  EXPECT_TRUE(ParseCombinedLine(utf8).ok());
}

TEST(Scope, ServedDownloadsMatchTheGroundTruthExactly) {
  ScratchDir scratch("inc");
  const std::string& dir = scratch.path();
  auto store = FreshStore(dir);
  auto w = testing::MakeWorld(*store, {});
  testing::RecordServed(*store, w);
  ScopeQuery q{w.spec.node, w.spec.window_start, w.spec.window_end};
  auto s = ComputeScope(*store, *store, q);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Keys(*s), w.truth);
  EXPECT_EQ(s->orgs.size(), w.affected_orgs.size());
  EXPECT_EQ(s->downloads, 170u);
  EXPECT_EQ(s->orgs.size(), 26u);
  EXPECT_EQ(s->Totals(), "170 downloads of " + std::to_string(s->files) + " files by " + std::to_string(s->users) +
                             " users in 26 organisations");
  // Limited to some files: exactly those.
  std::string one = std::get<2>(*w.truth.begin());
  q.targets = {one};
  auto only = ComputeScope(*store, *store, q);
  for (const auto& g : only->orgs)
    for (const auto& d : g.downloads) EXPECT_EQ(d.target_path, one);
  // Renderers carry the same totals.
  EXPECT_NE(RenderTable(*s).find(s->Totals()), std::string::npos);
  EXPECT_NE(RenderJson(*s).find(s->Totals()), std::string::npos);
  std::string csv = RenderCsv(*s);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 171);
  std::string html = RenderHtml(*s);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find(s->Totals()), std::string::npos);
}

TEST(Scope, ADownloadStillStreamingWhenTheWindowOpensCounts) {
  ScratchDir scratch("inc");
  const std::string& dir = scratch.path();
  auto store = FreshStore(dir);
  ASSERT_TRUE(store->AddOrganisation({0, "Acme", "gold"}).ok());
  ASSERT_TRUE(store->AddUser("Acme", "a", "h").ok());
  auto u = store->GetUser("a");
  DownloadStart s{1'000, "n1", u->id, u->org_id, "p/f", "x"};
  auto ids = store->BeginDownloads({s});
  ASSERT_TRUE(store->FinishDownloads({{(*ids)[0], 5'000'000, 10, DownloadOutcome::kComplete}}).ok());
  auto sc = ComputeScope(*store, *store, {"n1", 2'000'000, 9'000'000});
  EXPECT_EQ(sc->downloads, 1u);
  sc = ComputeScope(*store, *store, {"n1", 6'000'000, 9'000'000});
  EXPECT_EQ(sc->downloads, 0u);
  EXPECT_EQ(ComputeScope(*store, *store, {"n1", 9, 1}).status().code(), ErrorCode::kInvalidArgument);
}

TEST(Scope, ARecordTheNodeNeverFinishedCountsAsReceivedAndIsMarked) {
  // The node recorded the download before its first byte, then died (kill -9, power):
  // no end was ever written. It may have delivered everything, so it is in scope.
  ScratchDir scratch("inc");
  const std::string& dir = scratch.path();
  auto store = FreshStore(dir);
  ASSERT_TRUE(store->AddOrganisation({0, "Acme", "gold"}).ok());
  ASSERT_TRUE(store->AddUser("Acme", "a", "h").ok());
  auto u = store->GetUser("a");
  auto ids = store->BeginDownloads({{3'000'000, "n1", u->id, u->org_id, "p/f", "x"},
                                    {4'000'000, "n1", u->id, u->org_id, "p/g", "y"},
                                    {4'500'000, "n1", u->id, u->org_id, "p/h", "z"}});
  ASSERT_TRUE(ids.ok());
  // p/g finished normally; p/h was refused before any byte (aborted, 0 bytes): not received.
  ASSERT_TRUE(store->FinishDownloads({{(*ids)[1], 5'000'000, 10, DownloadOutcome::kComplete},
                                      {(*ids)[2], 4'600'000, 0, DownloadOutcome::kAborted}})
                  .ok());
  auto sc = ComputeScope(*store, *store, {"n1", 2'000'000, 9'000'000});
  ASSERT_TRUE(sc.ok());
  EXPECT_EQ(sc->downloads, 2u);
  EXPECT_EQ(sc->unfinished, 1u);
  EXPECT_EQ(sc->Totals(), "2 downloads of 2 files by 1 users in 1 organisations (1 never recorded as finished: the node "
                          "stopped mid-transfer; count it as received)");
  EXPECT_NE(RenderCsv(*sc).find(",in_progress,\n"), std::string::npos);  // last column: detail, empty
  EXPECT_NE(RenderTable(*sc).find("unfinished"), std::string::npos);
}

// Files are counted per organisation (its distinct files) and in total (distinct across
// organisations): two organisations sharing one of their files, one user downloading the
// same file twice.
TEST(Scope, FilesAreCountedPerOrganisationAndInTotal) {
  ScratchDir scratch("inc");
  auto store = FreshStore(scratch.path());
  for (const char* org : {"Acme", "Bolt"}) {
    ASSERT_TRUE(store->AddOrganisation({0, org, "gold"}).ok());
  }
  ASSERT_TRUE(store->AddUser("Acme", "a1", "h1").ok());
  ASSERT_TRUE(store->AddUser("Acme", "a2", "h2").ok());
  ASSERT_TRUE(store->AddUser("Bolt", "b1", "h3").ok());
  auto a1 = store->GetUser("a1"), a2 = store->GetUser("a2"), b1 = store->GetUser("b1");
  // Acme: p/shared twice (a1), p/shared (a2), p/acme (a2): 4 downloads, 2 files.
  // Bolt: p/shared, p/bolt-1, p/bolt-2: 3 downloads, 3 files. In total: 4 files.
  std::vector<DownloadStart> starts = {{1'000'000, "n1", a1->id, a1->org_id, "p/shared", "x"},
                                       {2'000'000, "n1", a1->id, a1->org_id, "p/shared", "x"},
                                       {3'000'000, "n1", a2->id, a2->org_id, "p/shared", "x"},
                                       {4'000'000, "n1", a2->id, a2->org_id, "p/acme", "x"},
                                       {5'000'000, "n1", b1->id, b1->org_id, "p/shared", "x"},
                                       {6'000'000, "n1", b1->id, b1->org_id, "p/bolt-1", "x"},
                                       {7'000'000, "n1", b1->id, b1->org_id, "p/bolt-2", "x"}};
  auto ids = store->BeginDownloads(starts);
  ASSERT_TRUE(ids.ok());
  std::vector<DownloadFinish> ends;
  for (int64_t id : *ids) ends.push_back({id, 9'000'000, 10, DownloadOutcome::kComplete});
  ASSERT_TRUE(store->FinishDownloads(ends).ok());
  auto sc = ComputeScope(*store, *store, {"n1", 0, 10'000'000});
  ASSERT_TRUE(sc.ok()) << sc.status().ToString();
  ASSERT_EQ(sc->orgs.size(), 2u);
  EXPECT_EQ(sc->orgs[0].name, "Acme");
  EXPECT_EQ(sc->orgs[0].downloads.size(), 4u);
  EXPECT_EQ(sc->orgs[0].files, 2u);
  EXPECT_EQ(sc->orgs[0].users, 2u);
  EXPECT_EQ(sc->orgs[1].name, "Bolt");
  EXPECT_EQ(sc->orgs[1].files, 3u);
  EXPECT_EQ(sc->orgs[1].users, 1u);
  EXPECT_EQ(sc->files, 4u);
  EXPECT_EQ(sc->Totals(), "7 downloads of 4 files by 3 users in 2 organisations");
}

// The grouping works on interned ids (scope.cc): each text kept once, organisations and
// users ranked by name, files compared inside one user's rows. Checked against a plain
// recomputation from the full records (QueryDownloads) on a window with thousands of rows:
// hundreds of distinct files (the interning tables grow several times), users of several
// organisations, names that differ only in their last byte, unknown users, equal start
// times (then by id), aborted downloads with their detail. Both engines.
TEST(Scope, GroupingByInternedIdsMatchesAPlainRecomputation) {
  ScratchDir scratch("group");
  const std::vector<std::string> urls = EngineUrls(scratch.path());
  for (const auto& url : urls) {
    SCOPED_TRACE(url);
    auto opened = Store::Open(url);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Store& store = **opened;
    const std::string tag = "g" + std::to_string(SystemClock::Get().NowMicros());
    for (int o = 0; o < 12; ++o) ASSERT_TRUE(store.AddOrganisation({0, tag + "-org-" + std::to_string(11 - o), "gold"}).ok());
    std::vector<std::string> names;
    for (int u = 0; u < 60; ++u) {
      names.push_back(tag + "-user-" + std::to_string(u % 7) + "-" + std::string(1, static_cast<char>('a' + u / 7)));
      ASSERT_TRUE(store.AddUser(tag + "-org-" + std::to_string(u % 12), names.back(), tag + "-h" + std::to_string(u)).ok());
    }
    for (int u = 0; u < 5; ++u) names.push_back(tag + "-stranger-" + std::to_string(u));  // unknown to the store
    const std::string node = tag + "-node";
    const int64_t t0 = 1'790'000'000LL * 1'000'000;
    std::vector<Download> rows;
    uint64_t x = 88172645463325252ULL;
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    for (int i = 0; i < 3000; ++i) {
      Download d;
      d.started_at = t0 + static_cast<int64_t>(next() % 400) * 1'000'000;  // many equal start times
      d.ended_at = d.started_at + 2'000'000;
      d.node = node;
      d.username = names[next() % names.size()];
      const uint64_t f = next() % 450;
      d.target_path = "p/" + std::to_string(f % 3) + "/file-" + std::to_string(f) + (f % 2 ? "x" : "y");
      d.sha256 = std::string(63, 'a') + std::to_string(f % 10);
      d.bytes_sent = 1 + next() % 1000;
      d.outcome = DownloadOutcome::kComplete;
      d.http_status = 200;
      d.import_key = tag + "-" + std::to_string(i);
      rows.push_back(std::move(d));
    }
    auto imported = store.ImportDownloads(rows);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    ASSERT_EQ(imported->inserted, rows.size());
    // Served downloads too, two of them cut with a detail.
    auto someone = store.GetUser(names[3]);
    ASSERT_TRUE(someone.ok());
    auto ids = store.BeginDownloads({{t0 + 5'000'000, node, someone->id, someone->org_id, "p/cut-1", "c1"},
                                     {t0 + 5'000'000, node, someone->id, someone->org_id, "p/cut-2", "c2"},
                                     {t0 + 5'000'000, node, someone->id, someone->org_id, "p/whole", "c3"}});
    ASSERT_TRUE(ids.ok());
    ASSERT_TRUE(store.FinishDownloads({{(*ids)[0], t0 + 6'000'000, 7, DownloadOutcome::kAborted, "integrity: one"},
                                       {(*ids)[1], t0 + 6'000'000, 8, DownloadOutcome::kAborted, "integrity: two"},
                                       {(*ids)[2], t0 + 6'000'000, 9, DownloadOutcome::kComplete, ""}})
                    .ok());

    const ScopeQuery q{node, t0, t0 + 500 * 1'000'000LL};
    auto sc = ComputeScope(store, store, q);
    ASSERT_TRUE(sc.ok()) << sc.status().ToString();

    // The plain recomputation: full records, grouped by organisation name, then ordered by
    // user, file, time and id.
    DownloadQuery dq;
    dq.node = node;
    dq.since = q.from;
    dq.until = q.to;
    dq.successful_only = true;
    auto all = store.QueryDownloads(dq);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    ASSERT_EQ(all->size(), rows.size() + 3);
    std::map<std::string, std::vector<Download>> by_org;
    for (const auto& d : *all) by_org[d.org_name.empty() ? "(unknown user)" : d.org_name].push_back(d);
    std::set<std::string> all_files, all_users;
    ASSERT_EQ(sc->orgs.size(), by_org.size());
    size_t g = 0;
    for (auto& [name, list] : by_org) {
      std::sort(list.begin(), list.end(), [](const Download& a, const Download& b) {
        return std::tie(a.username, a.target_path, a.started_at, a.id) < std::tie(b.username, b.target_path, b.started_at, b.id);
      });
      const OrgScope& got = sc->orgs[g++];
      ASSERT_EQ(got.name, name);
      ASSERT_EQ(got.downloads.size(), list.size()) << name;
      std::set<std::string> files, users;
      for (size_t k = 0; k < list.size(); ++k) {
        const Download& want = list[k];
        const ScopeDownload& d = got.downloads[k];
        ASSERT_EQ(d.id, want.id) << name << " #" << k;
        EXPECT_EQ(d.username, want.username);
        EXPECT_EQ(d.target_path, want.target_path);
        EXPECT_EQ(d.sha256, want.sha256);
        EXPECT_EQ(d.started_at, want.started_at);
        EXPECT_EQ(d.node, want.node);
        EXPECT_EQ(d.source, want.source);
        EXPECT_EQ(d.org_name, want.org_name);
        EXPECT_EQ(d.bytes_sent, want.bytes_sent);
        EXPECT_EQ(d.outcome, want.outcome);
        EXPECT_EQ(d.unknown_user, want.unknown_user);
        EXPECT_EQ(d.detail, want.detail);
        files.insert(want.target_path);
        users.insert(want.username);
      }
      EXPECT_EQ(got.files, files.size()) << name;
      EXPECT_EQ(got.users, users.size()) << name;
      all_files.insert(files.begin(), files.end());
      all_users.insert(users.begin(), users.end());
    }
    EXPECT_EQ(sc->files, all_files.size());
    EXPECT_EQ(sc->downloads, all->size());
    EXPECT_GT(all_files.size(), 400u);  // enough distinct files to grow the tables several times
    EXPECT_NE(RenderTable(*sc).find("aborted: integrity: two"), std::string::npos);
    EXPECT_EQ(RenderJson(*sc), RenderJsonWhole(*sc));
  }
}

// RenderJson writes the downloads itself (the rest of the document by nlohmann): byte for
// byte the document built whole, whatever the texts hold: quotes, backslashes, control
// bytes, DEL, valid UTF-8, invalid bytes, empty texts, the text of the placeholder it
// replaces, in every field; flags set and not; refusals after the organisations.
TEST(Scope, TheJsonIsTheSameAsTheWholeDocumentWhateverTheTextsHold) {
  const std::vector<std::string> texts = {"plain", "", "a \"quoted\" word", "back\\slash", std::string("nul\0x", 5),
                                          "tab\tand\nnewline\r", "\x1b[31mred", "del\x7f", "caf\xc3\xa9 \xe2\x82\xac",
                                          "bad \xff\xfe byte", "cut \xc3", "\"downloads\": []", "x\"downloads\": []"};
  Scope s;
  s.query = {"node \"7\"", 0, 86'400'000'000, {"p/\"a\"", "p/\xff"}, 12, "cause"};
  for (size_t o = 0; o < 3; ++o) {
    OrgScope g;
    g.name = texts[(o * 5 + 2) % texts.size()] + std::to_string(o);
    g.tier = texts[(o + 11) % texts.size()];
    g.contacts = {texts[o % texts.size()]};
    for (size_t k = 0; k < texts.size(); ++k) {
      Download d;
      d.id = static_cast<int64_t>(o * 100 + k);
      d.started_at = static_cast<int64_t>(k) * 1'000'000'000;
      d.username = texts[k];
      d.target_path = texts[(k + 1) % texts.size()];
      d.sha256 = texts[(k + 2) % texts.size()];
      d.node = texts[(k + 3) % texts.size()];
      d.source = k % 2 ? "imported" : texts[(k + 4) % texts.size()];
      d.detail = texts[(k + 5) % texts.size()];
      d.bytes_sent = k * 1'000'000'007ULL;
      d.outcome = static_cast<DownloadOutcome>(k % 4);
      d.unknown_user = k % 3 == 0;
      d.unknown_target = k % 5 == 0;
      g.downloads.push_back(s.Keep(d));
    }
    s.downloads += g.downloads.size();
    s.orgs.push_back(g);
  }
  s.orgs.push_back(OrgScope{});  // an organisation without downloads: an empty array
  OrgRefusals r;
  r.name = "\"downloads\": []";
  r.refusals.push_back({"n", 5, 1, "o", "u\"", "t\xff", "why \"", 3});
  s.refused.push_back(r);
  s.refusals = 3;
  const std::string json = RenderJson(s);
  EXPECT_EQ(json, RenderJsonWhole(s));
  EXPECT_NE(json.find("\"user\": \"a \\\"quoted\\\" word\""), std::string::npos) << json;
  EXPECT_TRUE(nlohmann::json::accept(json));
}

// The CSV's fast path passes a cell through as it is only when CsvCell would: a comma,
// semicolon or quote anywhere in a 19-byte text (the check reads eight bytes at a time),
// and a leading formula character, send it through CsvCell.
TEST(Scope, TheCsvQuotesEveryCellThatNeedsItWhereverTheCharacterSits) {
  for (char bad : {',', ';', '"', '=', '+', '-', '@', '\t', '\n', '\x7f'}) {
    for (size_t pos = 0; pos < 19; ++pos) {
      std::string name(19, 'u');
      name[pos] = bad;
      Scope s;
      s.query = {"n1", 0, 1};
      OrgScope g;
      g.name = "Acme";
      Download d;
      d.username = name;
      d.target_path = "p/" + name;
      d.sha256 = name;
      g.downloads.push_back(s.Keep(d));
      s.orgs.push_back(g);
      const std::string csv = RenderCsv(s);
      const std::string want = "Acme,,,," + CsvCell(name) + "," + CsvCell("p/" + name) + ",1970-01-01T00:00:00Z," +
                               CsvCell(name) + ",,0,served,in_progress,\n";
      EXPECT_NE(csv.find(want), std::string::npos) << "byte " << int(bad) << " at " << pos << "\n" << csv;
    }
  }
}

// The table escapes every byte a terminal could act on (below 0x20, 0x7f and above),
// wherever it sits in a text: the fast path that passes printable ASCII through checks
// eight bytes at a time, so each byte is tried at each position of a 19-byte name.
TEST(Scope, TheTableEscapesEveryNonPrintableByteWhereverItSits) {
  for (unsigned char bad : {0x00, 0x01, 0x07, 0x0a, 0x1b, 0x1f, 0x7f, 0x80, 0x9b, 0xc3, 0xff}) {
    for (size_t pos = 0; pos < 19; ++pos) {
      std::string name(19, 'u');
      name[pos] = static_cast<char>(bad);
      Scope s;
      s.query = {"n1", 0, 1};
      OrgScope g;
      g.name = "Acme";
      Download d;
      d.username = name;
      d.target_path = "p/" + name;
      d.sha256 = std::string(64, 'a');
      g.downloads.push_back(s.Keep(d));
      s.orgs.push_back(g);
      const std::string table = RenderTable(s);
      EXPECT_EQ(table.find(name), std::string::npos) << "byte " << int(bad) << " at " << pos;
      if (bad != 0x0a) EXPECT_EQ(table.find(static_cast<char>(bad)), std::string::npos) << "byte " << int(bad) << " at " << pos;
    }
  }
  // And printable ASCII of every length passes through as it is.
  for (size_t len = 0; len < 20; ++len) {
    std::string name;
    for (size_t i = 0; i < len; ++i) name.push_back(static_cast<char>(0x20 + (i * 7) % 95));
    Scope s;
    s.query = {"n1", 0, 1};
    OrgScope g;
    g.name = "Acme";
    Download d;
    d.username = "user-" + name;
    g.downloads.push_back(s.Keep(d));
    s.orgs.push_back(g);
    EXPECT_NE(RenderTable(s).find("  user-" + name + "\n"), std::string::npos) << len;
  }
}

TEST(Scope, ADownloadCutForIntegrityIsListedWithItsReason) {
  // A download cut because the file changed on disk mid-stream (migration 0005): in scope
  // (bytes were sent), and every output says why it ended. The detail is read by id after
  // the window's rows; each aborted row gets its own, the others none. Both engines.
  ScratchDir scratch("cut");
  const std::vector<std::string> urls = EngineUrls(scratch.path());
  for (const auto& url : urls) {
    SCOPED_TRACE(url);
    std::string p = "c" + std::to_string(SystemClock::Get().NowMicros()) + "-";  // a shared PostgreSQL database
    auto opened = Store::Open(url);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Store* store = opened->get();
    ASSERT_TRUE(store->AddOrganisation({0, p + "Acme", "gold"}).ok());
    ASSERT_TRUE(store->AddUser(p + "Acme", p + "a", p + "h").ok());
    auto u = store->GetUser(p + "a");
    ASSERT_TRUE(u.ok());
    const std::string node = p + "n1";
    auto ids = store->BeginDownloads({{3'000'000, node, u->id, u->org_id, "p/f", "x"},
                                      {3'100'000, node, u->id, u->org_id, "p/g", "y"},
                                      {3'200'000, node, u->id, u->org_id, "p/h", "z"}});
    ASSERT_TRUE(ids.ok());
    const std::string why = "integrity: chunk 3 (bytes 786432-1048575) no longer matches its verified digest";
    const std::string why2 = "integrity: chunk 0 (bytes 0-262143) no longer matches its verified digest";
    ASSERT_TRUE(store->FinishDownloads({{(*ids)[0], 4'000'000, 786432, DownloadOutcome::kAborted, why},
                                        {(*ids)[1], 4'000'000, 100, DownloadOutcome::kComplete, ""},
                                        {(*ids)[2], 4'000'000, 5, DownloadOutcome::kAborted, why2}})
                    .ok());
    auto sc = ComputeScope(*store, *store, {node, 2'000'000, 9'000'000});
    ASSERT_TRUE(sc.ok()) << sc.status().ToString();
    EXPECT_EQ(sc->downloads, 3u);
    EXPECT_NE(RenderCsv(*sc).find("p/f,1970-01-01T00:00:03Z,x," + node + ",786432,served,aborted," + why + "\n"),
              std::string::npos) << RenderCsv(*sc);
    EXPECT_NE(RenderCsv(*sc).find(",complete,\n"), std::string::npos) << RenderCsv(*sc);
    EXPECT_NE(RenderCsv(*sc).find("p/h,1970-01-01T00:00:03Z,z," + node + ",5,served,aborted," + why2 + "\n"),
              std::string::npos) << RenderCsv(*sc);
    EXPECT_NE(RenderJson(*sc).find("\"detail\": \"" + why + "\""), std::string::npos) << RenderJson(*sc);
    EXPECT_NE(RenderTable(*sc).find("aborted: " + why), std::string::npos);
    EXPECT_NE(RenderHtml(*sc).find("<td>" + why + "</td>"), std::string::npos);
  }
}

// What each organisation received: verified bytes (downloads) or a refusal (migration
// 0008). Refusals are listed per organisation in every format, counted apart, limited to
// the window and the query's targets, and an organisation only refused is not among the
// organisations that received bytes (it is not notified). Both engines.
TEST(Scope, RefusalsAreListedPerOrganisationInEveryFormat) {
  ScratchDir scratch("ref");
  const std::vector<std::string> urls = EngineUrls(scratch.path());
  for (const auto& url : urls) {
    SCOPED_TRACE(url);
    std::string p = "r" + std::to_string(SystemClock::Get().NowMicros()) + "-";  // a shared PostgreSQL database
    auto store = Store::Open(url);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto reg = NodeRegistry::Open(url);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    ASSERT_TRUE((*store)->AddOrganisation({0, p + "Acme", "gold", "Ann Manager", "ann@example.com"}).ok());
    ASSERT_TRUE((*store)->AddOrganisation({0, p + "Globex", "premier"}).ok());
    ASSERT_TRUE((*store)->AddUser(p + "Acme", p + "a", p + "ha").ok());
    ASSERT_TRUE((*store)->AddUser(p + "Globex", p + "g", p + "hg").ok());
    auto a = (*store)->GetUser(p + "a");
    auto g = (*store)->GetUser(p + "g");
    ASSERT_TRUE(a.ok() && g.ok());
    std::string node = p + "m2";
    auto ids = (*store)->BeginDownloads({{3'000'000, node, a->id, a->org_id, "office/x.exe", "sha-x"}});
    ASSERT_TRUE(ids.ok());
    ASSERT_TRUE((*store)->FinishDownloads({{(*ids)[0], 3'500'000, 10, DownloadOutcome::kComplete, ""}}).ok());
    const std::string why = "integrity: does not match its signed hash; quarantined";
    ASSERT_TRUE((*reg)->RecordRefusals({{node, 4'000'000, a->org_id, p + "Acme", p + "a", "office/y.exe", why, 1},
                                        {node, 5'000'000, g->org_id, p + "Globex", p + "g", "office/y.exe", why, 3},
                                        {node, 6'000'000, g->org_id, p + "Globex", p + "g", "mail/z.exe", "fenced", 1},
                                        {node, 99'000'000, g->org_id, p + "Globex", p + "g", "office/y.exe", why, 1},
                                        {p + "other", 5'000'000, g->org_id, p + "Globex", p + "g", "office/y.exe", why, 1}})
                    .ok());
    auto sc = ComputeScope(**store, **store, {node, 2'000'000, 9'000'000});
    ASSERT_TRUE(sc.ok());
    ASSERT_TRUE(AttachRefusals(**store, **reg, &*sc).ok());
    ASSERT_EQ(sc->orgs.size(), 1u);  // only Acme received bytes
    EXPECT_EQ(sc->orgs[0].name, p + "Acme");
    ASSERT_EQ(sc->refused.size(), 2u);
    EXPECT_EQ(sc->refused[0].name, p + "Acme");
    EXPECT_EQ(sc->refused[0].tier, "gold");
    EXPECT_EQ(sc->refused[0].account_manager, "Ann Manager");
    EXPECT_EQ(sc->refused[1].refusals.size(), 2u);  // Globex: y (3 times) and z, not the one outside the window
    EXPECT_EQ(sc->refusals, 5u);
    EXPECT_NE(sc->Totals().find("5 refusals (nothing served) to 2 organisations"), std::string::npos) << sc->Totals();
    std::string csv = RenderCsv(*sc);
    EXPECT_NE(csv.find(p + "Globex,premier,,," + p + "g,office/y.exe,1970-01-01T00:00:05Z,," + node + ",0,refusal,refused,\"" + why +
                       " (3 times)\"\n"), std::string::npos) << csv;
    std::string json = RenderJson(*sc);
    EXPECT_NE(json.find("\"refusals\": 5"), std::string::npos) << json;
    EXPECT_NE(json.find("\"reason\": \"fenced\""), std::string::npos) << json;
    EXPECT_NE(RenderTable(*sc).find("office/y.exe  1970-01-01T00:00:04Z  refused: " + why), std::string::npos) << RenderTable(*sc);
    EXPECT_NE(RenderHtml(*sc).find("<td>" + why + "</td><td>3</td>"), std::string::npos);
    // Limited to the query's targets.
    auto only = ComputeScope(**store, **store, {node, 2'000'000, 9'000'000, {"mail/z.exe"}});
    ASSERT_TRUE(only.ok());
    ASSERT_TRUE(AttachRefusals(**store, **reg, &*only).ok());
    ASSERT_EQ(only->refused.size(), 1u);
    EXPECT_EQ(only->refusals, 1u);
  }
}

TEST(Import, AnImportedLogGivesTheSameScopeAndIsIdempotent) {
  ScratchDir scratch("inc");
  const std::string& dir = scratch.path();
  auto store = FreshStore(dir);
  auto w = testing::MakeWorld(*store, {});
  std::string log = testing::AsNginxLog(w, w.spec.node);
  log += "this line is not a log line\n";
  log += "203.0.113.9 - stranger [01/Sep/2026:00:00:00 +0000] \"GET /targets/x/y.bin HTTP/1.1\" 200 5 \"-\" \"-\"\n";
  std::ofstream(dir + "/access.log") << log;
  auto r = ImportNginxLog(*store, dir + "/access.log", {w.spec.node});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->unparseable, 1u);
  ASSERT_EQ(r->bad_lines.size(), 1u);
  EXPECT_GT(r->bad_lines[0].first, 1u);
  EXPECT_GE(r->unknown_users, 1u);
  auto again = ImportNginxLog(*store, dir + "/access.log", {w.spec.node});
  EXPECT_EQ(again->imported, 0u);
  EXPECT_EQ(again->duplicates, r->imported);
  auto s = ComputeScope(*store, *store, {w.spec.node, w.spec.window_start, w.spec.window_end});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Keys(*s), w.truth);
  EXPECT_EQ(s->orgs.size(), 26u);
  // Two identical lines are two downloads; importing them twice still adds nothing.
  std::string dup = "203.0.113.9 - stranger [01/Sep/2026:00:00:00 +0000] \"GET /targets/x/z.bin HTTP/1.1\" 200 5 \"-\" \"-\"\n";
  std::ofstream(dir + "/dup.log") << dup << dup;
  EXPECT_EQ(ImportNginxLog(*store, dir + "/dup.log", {"legacy"})->imported, 2u);
  EXPECT_EQ(ImportNginxLog(*store, dir + "/dup.log", {"legacy"})->imported, 0u);
  EXPECT_EQ(ImportNginxLog(*store, dir + "/missing.log", {"legacy"}).status().code(), ErrorCode::kNotFound);
}

TEST(Import, OddLinesAreCountedWithTheirNumbersAndTheRestIsImported) {
  ScratchDir scratch("inc");
  const std::string& dir = scratch.path();
  auto store = FreshStore(dir);
  const std::string line =
      "203.0.113.9 - carol [01/Sep/2026:00:00:%02d +0000] \"GET /targets/x/y.bin HTTP/1.1\" 200 5 \"-\" \"-\"";
  auto at = [&](int sec) {
    char b[256];
    std::snprintf(b, sizeof b, line.c_str(), sec);
    return std::string(b);
  };
  std::string log = at(1) + "\r\n";                        // 1: CRLF
  log += std::string(70 * 1024, 'A') + "\n";               // 2: longer than any log line
  log += at(2) + "\n";                                     // 3
  log += "\n";                                             // 4: empty
  log += "1.2.3.4 - - [01/Sep/2026:00:00:03 +0000] \"GET /targets/x/\x01.bin HTTP/1.1\" 200 5 \"-\" \"-\"\n";  // 5
  log += "1.2.3.4 - - [01/Sep/2026:00:00:03 +0000] \"HEAD /targets/x/y.bin HTTP/1.1\" 200 0 \"-\" \"-\"\n";    // 6
  log += "1.2.3.4 - - [01/Sep/2026:00:00:03 +0000] \"GET /targets/x/y.bin HTTP/1.1\" 404 0 \"-\" \"-\"\n";     // 7
  log += at(4);                                             // 8: no newline at the end
  std::ofstream(dir + "/odd.log", std::ios::binary) << log;
  ImportOptions o{"legacy"};
  o.batch = 2;  // several batches through the reader/writer hand-over
  auto r = ImportNginxLog(*store, dir + "/odd.log", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->lines, 8u);
  EXPECT_EQ(r->imported, 3u);
  EXPECT_EQ(r->skipped, 2u);
  EXPECT_EQ(r->unparseable, 2u);
  ASSERT_EQ(r->bad_lines.size(), 2u);
  EXPECT_EQ(r->bad_lines[0].first, 2u);
  EXPECT_NE(r->bad_lines[0].second.find("longer than"), std::string::npos);
  EXPECT_EQ(r->bad_lines[1].first, 5u);
  EXPECT_EQ(r->unknown_users, 3u);    // carol is nobody in this store
  EXPECT_EQ(r->unknown_targets, 3u);  // and x/y.bin was never published
  // The same file with one more line: only that line is new.
  std::ofstream(dir + "/odd.log", std::ios::binary | std::ios::app) << "\n" << at(5) << "\n";
  auto again = ImportNginxLog(*store, dir + "/odd.log", o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->imported, 1u);
  EXPECT_EQ(again->duplicates, 3u);
}

// A store that fails the second bulk write: the import stops with the error, keeps what
// was written, and a rerun completes it without duplicates.
class FailingImportStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  int calls = 0, fail_at = 2;
  Result<ImportResult> ImportDownloads(const std::vector<Download>& rows) override {
    if (++calls == fail_at) return Unavailable("store went away");
    return target_->ImportDownloads(rows);
  }
};

TEST(Import, AStoreOutageMidwayLosesNothingAndARerunCompletesIt) {
  ScratchDir scratch("inc");
  const std::string& dir = scratch.path();
  auto store = FreshStore(dir);
  std::ofstream out(dir + "/big.log");
  for (int i = 0; i < 50; ++i)
    out << "203.0.113.9 - dave [01/Sep/2026:00:01:" << (i < 10 ? "0" : "") << i
        << " +0000] \"GET /targets/x/y.bin HTTP/1.1\" 200 5 \"-\" \"-\"\n";
  out.close();
  FailingImportStore failing(store.get());
  ImportOptions o{"legacy"};
  o.batch = 10;
  auto r = ImportNginxLog(failing, dir + "/big.log", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.status().message().find("rerun"), std::string::npos);
  auto rerun = ImportNginxLog(*store, dir + "/big.log", o);
  ASSERT_TRUE(rerun.ok());
  EXPECT_EQ(rerun->imported, 40u);
  EXPECT_EQ(rerun->duplicates, 10u);
}

// Runs `sql` with psql against the test server (statistics and settings the store API does
// not expose).
bool Psql(const std::string& url, const std::string& sql) {
  std::string cmd = "psql '" + url + "' -qAtc \"" + sql + "\" >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

// The scope query's plan, on a trail large enough for the planner to care: SQLite answers
// it from the covering scope index alone; PostgreSQL uses the (node, started_at, ended_at)
// index and never a parallel plan nor JIT compilation, even when the server is set up to
// favour both.
TEST(Scope, TheScopeQueryUsesTheScopeIndexOnBothEngines) {
  ScratchDir scratch("plan");
  const std::vector<std::string> urls = EngineUrls(scratch.path());
  const char* pg = std::getenv("PATCHGATE_TEST_PG_URL");
  std::string pg_db;
  if (pg && *pg) {
    std::string u = pg;
    pg_db = u.substr(u.find_last_of('/') + 1);
    pg_db = pg_db.substr(0, pg_db.find('?'));
  }
  struct Cleanup {
    std::string url, db;
    ~Cleanup() {
      if (!db.empty()) Psql(url, "ALTER DATABASE \\\"" + db + "\\\" RESET ALL");
    }
  } cleanup{pg ? pg : "", pg_db};
  const std::string tag = "plan" + std::to_string(SystemClock::Get().NowMicros());
  const int64_t t0 = 1'790'000'000LL * 1'000'000, day = 86'400LL * 1'000'000;
  for (const auto& url : urls) {
    SCOPED_TRACE(url);
    bool postgres = url.rfind("postgres", 0) == 0;
    if (postgres) {
      // A server configured to launch parallel workers at the slightest excuse.
      ASSERT_TRUE(Psql(url, "ALTER DATABASE \\\"" + pg_db + "\\\" SET max_parallel_workers_per_gather = 4; "
                            "ALTER DATABASE \\\"" + pg_db + "\\\" SET parallel_setup_cost = 0; "
                            "ALTER DATABASE \\\"" + pg_db + "\\\" SET parallel_tuple_cost = 0; "
                            "ALTER DATABASE \\\"" + pg_db + "\\\" SET min_parallel_index_scan_size = 0; "
                            "ALTER DATABASE \\\"" + pg_db + "\\\" SET min_parallel_table_scan_size = 0; "
                            // and to compile every plan to machine code (where LLVM is installed)
                            "ALTER DATABASE \\\"" + pg_db + "\\\" SET jit = on; "
                            "ALTER DATABASE \\\"" + pg_db + "\\\" SET jit_above_cost = 0"));
    }
    auto store = Store::Open(url);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    std::vector<Download> rows;
    for (int i = 0; i < 40'000; ++i) {
      Download d;
      d.started_at = t0 + static_cast<int64_t>(i) * (10 * day / 40'000);
      d.ended_at = d.started_at + 5'000'000;
      d.node = tag + "-node-" + std::to_string(i % 20);
      d.username = "someone";
      d.target_path = "p/f" + std::to_string(i % 300);
      d.sha256 = std::string(64, 'a');
      d.bytes_sent = 10;
      d.outcome = DownloadOutcome::kComplete;
      d.import_key = tag + "-" + std::to_string(i);
      rows.push_back(std::move(d));
    }
    ASSERT_TRUE((*store)->ImportDownloads(rows).ok());
    // As autovacuum leaves a table that has grown: analysed, visibility map set.
    if (postgres) ASSERT_TRUE(Psql(url, "VACUUM ANALYZE downloads"));
    DownloadQuery q;
    q.node = tag + "-node-3";
    q.since = t0 + 5 * day;
    q.until = t0 + 6 * day;
    q.successful_only = true;
    q.scope_columns = true;
    auto plan = (*store)->ExplainQueryDownloads(q);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    std::fprintf(stderr, "%s plan:\n%s", postgres ? "PostgreSQL" : "SQLite", plan->c_str());
    if (postgres) {
      // Index-only from the covering index; the two small partial indexes for the rest;
      // no table scan, no parallel plan, no JIT section (EXPLAIN prints one when the plan
      // would be compiled).
      EXPECT_NE(plan->find("Index Only Scan using downloads_node_scope"), std::string::npos) << *plan;
      EXPECT_NE(plan->find("downloads_node_long"), std::string::npos) << *plan;
      EXPECT_NE(plan->find("downloads_unfinished"), std::string::npos) << *plan;
      EXPECT_EQ(plan->find("Seq Scan on downloads"), std::string::npos) << *plan;
      EXPECT_EQ(plan->find("Gather"), std::string::npos) << *plan;
      EXPECT_EQ(plan->find("Parallel"), std::string::npos) << *plan;
      EXPECT_EQ(plan->find("JIT"), std::string::npos) << *plan;
    } else {
      // The range starts at the window minus the node's longest download (5 s here), not a
      // day before it.
      EXPECT_NE(plan->find("COVERING INDEX downloads_node_scope (node=? AND started_at>? AND started_at<?)"),
                std::string::npos)
          << *plan;
      EXPECT_NE(plan->find("INDEX downloads_unfinished"), std::string::npos) << *plan;
      EXPECT_EQ(plan->find("SCAN d"), std::string::npos) << *plan;
    }
    // And the scope itself: the 200 downloads of that node-day.
    auto sc = ComputeScope(**store, **store, {*q.node, *q.since, *q.until});
    ASSERT_TRUE(sc.ok());
    EXPECT_EQ(sc->downloads, 200u);
  }
}


// The window's index range reaches back by the longest download the node recorded (kept by
// the store, migration 0007), not by a fixed day: a 30-hour download that ended inside the
// window counts; a record never finished counts for a window opening within a day of its
// start, not later; and a row whose texts are too long for PostgreSQL's covering index is
// stored and found all the same.
TEST(Scope, WindowsReachBackByTheLongestRecordedDownload) {
  ScratchDir scratch("bound");
  const std::vector<std::string> urls = EngineUrls(scratch.path());
  const int64_t hour = 3'600LL * 1'000'000, t0 = 1'790'000'000LL * 1'000'000;
  for (const auto& url : urls) {
    SCOPED_TRACE(url);
    auto store = Store::Open(url);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Store& s = **store;
    const std::string tag = "bound" + std::to_string(SystemClock::Get().NowMicros());
    ASSERT_TRUE(s.AddOrganisation({0, "Org " + tag, "gold"}).ok());
    ASSERT_TRUE(s.AddUser("Org " + tag, "u" + tag, "h" + tag).ok());
    auto u = s.GetUser("u" + tag);
    ASSERT_TRUE(u.ok());
    const std::string long_node = tag + "-long", dead_node = tag + "-dead";
    // A 30-hour download, recorded at its start and finished 30 hours later.
    auto ids = s.BeginDownloads({{t0, long_node, u->id, u->org_id, "p/big.iso", "x"},
                                 {t0 + hour, long_node, u->id, u->org_id, "p/small", "y"},
                                 {t0, dead_node, u->id, u->org_id, "p/f", "z"}});
    ASSERT_TRUE(ids.ok());
    ASSERT_TRUE(s.FinishDownloads({{(*ids)[0], t0 + 30 * hour, 10, DownloadOutcome::kComplete},
                                   {(*ids)[1], t0 + hour + 1'000'000, 10, DownloadOutcome::kComplete}})
                    .ok());
    auto sc = ComputeScope(s, s, {long_node, t0 + 29 * hour, t0 + 31 * hour});
    ASSERT_TRUE(sc.ok()) << sc.status().ToString();
    EXPECT_EQ(sc->downloads, 1u);
    sc = ComputeScope(s, s, {long_node, t0 + 30 * hour + 1, t0 + 31 * hour});
    EXPECT_EQ(sc->downloads, 0u);
    // Never finished (the node died): in a window opening 23 h later, not in one 25 h later.
    sc = ComputeScope(s, s, {dead_node, t0 + 23 * hour, t0 + 24 * hour});
    EXPECT_EQ(sc->downloads, 1u);
    EXPECT_EQ(sc->unfinished, 1u);
    sc = ComputeScope(s, s, {dead_node, t0 + 25 * hour, t0 + 26 * hour});
    EXPECT_EQ(sc->downloads, 0u);
    // Imported rows keep the bound too (a 2-hour line is not one the log format has, so
    // this one goes through the bulk path directly).
    Download d;
    d.started_at = t0;
    d.ended_at = t0 + 2 * hour;
    d.node = tag + "-imported";
    d.username = "u" + tag;
    d.target_path = "p/f";
    d.source = "imported";
    d.outcome = DownloadOutcome::kComplete;
    d.import_key = tag + "-1";
    // A hostile line: path, user and node at the store's caps, none of it compressible.
    Download h = d;
    h.ended_at = t0;
    h.node = tag + "-" + std::string(kMaxStoredNodeNameBytes - tag.size() - 1, 'n');
    std::string noise;
    for (size_t i = 0; noise.size() < kMaxStoredTargetPathBytes; ++i) noise += std::to_string(i * 2654435761u % 1000003);
    h.target_path = noise.substr(0, kMaxStoredTargetPathBytes);
    h.username = noise.substr(7, kMaxStoredUsernameBytes);
    h.sha256 = noise.substr(3, kMaxStoredHashBytes);
    h.import_key = tag + "-2";
    auto imp = s.ImportDownloads({d, h});
    ASSERT_TRUE(imp.ok()) << imp.status().ToString();
    EXPECT_EQ(imp->inserted, 2u);
    sc = ComputeScope(s, s, {d.node, t0 + hour, t0 + 3 * hour});
    EXPECT_EQ(sc->downloads, 1u);
    sc = ComputeScope(s, s, {h.node, t0, t0});
    ASSERT_TRUE(sc.ok()) << sc.status().ToString();
    ASSERT_EQ(sc->downloads, 1u);
    EXPECT_EQ(sc->orgs[0].downloads[0].target_path, h.target_path);
  }
}

}  // namespace
}  // namespace patchgate::incident
