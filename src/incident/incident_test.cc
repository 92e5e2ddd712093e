#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "core/clock.h"
#include "incident/import.h"
#include "incident/nginx_log.h"
#include "incident/scope.h"
#include "incident/world.h"

namespace patchgate::incident {
namespace {

std::unique_ptr<Store> FreshStore(std::string* dir) {
  char tmpl[] = "/tmp/pgincXXXXXX";
  *dir = mkdtemp(tmpl);
  auto s = Store::Open("sqlite://" + *dir + "/store.db");
  EXPECT_TRUE(s.ok());
  return std::move(*s);
}

std::set<std::tuple<std::string, std::string, std::string, int64_t>> Keys(const Scope& s) {
  std::set<std::tuple<std::string, std::string, std::string, int64_t>> k;
  for (const auto& g : s.orgs)
    for (const auto& d : g.downloads) k.insert({d.org_name, d.username, d.target_path, d.started_at / 1'000'000});
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
}

TEST(Scope, ServedDownloadsMatchTheGroundTruthExactly) {
  std::string dir;
  auto store = FreshStore(&dir);
  auto w = testing::MakeWorld(*store, {});
  testing::RecordServed(*store, w);
  ScopeQuery q{w.spec.node, w.spec.window_start, w.spec.window_end};
  auto s = ComputeScope(*store, q);
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
  auto only = ComputeScope(*store, q);
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
  std::string dir;
  auto store = FreshStore(&dir);
  ASSERT_TRUE(store->AddOrganisation({0, "Acme", "gold"}).ok());
  ASSERT_TRUE(store->AddUser("Acme", "a", "h").ok());
  auto u = store->GetUser("a");
  DownloadStart s{1'000, "n1", u->id, u->org_id, "p/f", "x"};
  auto ids = store->BeginDownloads({s});
  ASSERT_TRUE(store->FinishDownloads({{(*ids)[0], 5'000'000, 10, DownloadOutcome::kComplete}}).ok());
  auto sc = ComputeScope(*store, {"n1", 2'000'000, 9'000'000});
  EXPECT_EQ(sc->downloads, 1u);
  sc = ComputeScope(*store, {"n1", 6'000'000, 9'000'000});
  EXPECT_EQ(sc->downloads, 0u);
  EXPECT_EQ(ComputeScope(*store, {"n1", 9, 1}).status().code(), ErrorCode::kInvalidArgument);
}

TEST(Import, AnImportedLogGivesTheSameScopeAndIsIdempotent) {
  std::string dir;
  auto store = FreshStore(&dir);
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
  auto s = ComputeScope(*store, {w.spec.node, w.spec.window_start, w.spec.window_end});
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

}  // namespace
}  // namespace patchgate::incident
