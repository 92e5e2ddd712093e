// The seed's scenario (issue 11) end to end on the library, with the clock seam, a real
// SMTP server (Debian's python3-aiosmtpd, tests/respond/smtp_sink.py), a real OpenPGP key
// (GnuPG through GPGME), the CSAF validator library, on SQLite and on PostgreSQL
// (PATCHGATE_TEST_PG_URL; each test in a schema of its own).
#include "advisory/runner.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "advisory/openpgp.h"
#include "advisory/provider.h"
#include "core/fs.h"
#include "crypto/hash.h"
#include "notify/smtp_sink.h"
#include "store/sql.h"

namespace patchgate::advisory {
namespace {

using notify::testing::Messages;
// The project's SMTP sink (src/notify/smtp_sink.h) with this source tree's script.
struct SmtpSink : notify::testing::SmtpSink {
  SmtpSink(const std::string& dir, int port, int max_messages = -1)
      : notify::testing::SmtpSink(PATCHGATE_SOURCE_DIR, dir, port, max_messages) {}
};

std::string OrgOf(const std::string& msg) {
  std::smatch m;
  return std::regex_search(msg, m, std::regex("Dear (org-[0-9]+) security team")) ? m[1].str() : "";
}

constexpr int64_t kT = 1'796'000'400;  // the announced public release (seconds), a Tuesday 18:00-ish
constexpr char kPass[] = "correct horse battery staple";

class ScenarioTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!notify::testing::SmtpSinkAvailable()) {
      if (std::getenv("CI")) FAIL() << "python3-aiosmtpd is not installed (scripts/deps.sh installs it)";
      GTEST_SKIP() << "python3-aiosmtpd is not installed (scripts/deps.sh installs it)";
    }
    char tmpl[] = "/tmp/pgadviseXXXXXX";
    dir_ = mkdtemp(tmpl);
    if (GetParam() == "sqlite") {
      url_ = "sqlite://" + dir_ + "/store.db";
    } else {
      const char* pg = std::getenv("PATCHGATE_TEST_PG_URL");
      if (!pg) GTEST_SKIP() << "PATCHGATE_TEST_PG_URL is not set: no PostgreSQL to test against";
      std::string schema = "adv" + std::to_string(getpid()) + "_" + std::to_string(SystemClock::Get().NowMicros());
      auto c = sql::OpenPostgres(pg);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      ASSERT_TRUE((*c)->ExecScript("CREATE SCHEMA " + schema).ok());
      url_ = std::string(pg) + (std::string(pg).find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
    }
    auto s = Store::Open(url_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    Seed();
    home_ = dir_ + "/keys/openpgp";
    ::mkdir((dir_ + "/keys").c_str(), 0700);
    auto key = CreateSigningKey(home_, "Vendor PSIRT <psirt@vendor.example>", kPass);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    key_ = *key;
    port_ = notify::testing::FreeLoopbackPort();
    o_.delivery.from = "Vendor PSIRT <psirt@vendor.example>";
    o_.delivery.ack_base_url = "https://downloads.vendor.example";
    o_.delivery.backoff_ms = 10;
    o_.delivery.max_attempts = 1;
    o_.delivery.parallel = 4;
    o_.publisher.base_url = "https://downloads.vendor.example";
    o_.gnupg_home = home_;
    o_.passphrase = kPass;
    clock_.SetUnix(kT - 7 * 86400);
  }
  void TearDown() override {
    if (!home_.empty()) std::system(("gpgconf --homedir '" + home_ + "' --kill gpg-agent 2>/dev/null").c_str());
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  // 200 organisations in three tiers (50 premier, 60 gold, 90 standard); webserver entitled
  // to 120 of them (every premier, 40 gold, 30 standard), downloaded by 80 of those.
  void Seed() {
    TargetRecord t;
    t.product = "webserver";
    t.length = 4096;
    t.published_at = 1;
    t.scan_verdict = "clean";
    for (const char* v : {"2.4.0", "2.4.1"}) {
      t.path = std::string("webserver/") + v + "/webserver.tar.gz";
      t.version = v;
      t.sha256 = Sha256Hex(t.path);
      ASSERT_TRUE(store_->UpsertTarget(t).ok());
    }
    std::vector<DownloadStart> starts;
    for (int i = 0; i < 200; ++i) {
      Organisation o;
      char name[16];
      std::snprintf(name, sizeof name, "org-%03d", i);
      o.name = name;
      o.tier = i < 50 ? "premier" : i < 110 ? "gold" : "standard";
      tier_[o.name] = o.tier;
      o.account_manager_name = "AM " + std::to_string(i % 7);
      o.account_manager_email = "am" + std::to_string(i % 7) + "@vendor.example";
      o.account_manager_phone = "+1 555 01" + std::to_string(i);
      o.security_contacts = {std::string("security@") + name + ".example"};
      auto id = store_->AddOrganisation(o);
      ASSERT_TRUE(id.ok());
      ids_[o.name] = *id;
      bool entitled = i < 50 || (i >= 50 && i < 90) || (i >= 110 && i < 140);
      if (entitled) {
        entitled_.insert(o.name);
        ASSERT_TRUE(store_->Grant(o.name, "webserver").ok());
        ASSERT_TRUE(store_->AddUser(o.name, std::string("u-") + name, Sha256Hex(std::string("tok-") + name)).ok());
        if (entitled_.size() <= 80) {
          auto u = store_->GetUser(std::string("u-") + name);
          starts.push_back({1'000'000, "origin", u->id, u->org_id, "webserver/2.4.1/webserver.tar.gz", Sha256Hex("x")});
        }
      }
    }
    auto began = store_->BeginDownloads(starts);
    ASSERT_TRUE(began.ok());
    std::vector<DownloadFinish> fin;
    for (int64_t id : *began) fin.push_back({id, 2'000'000, 4096, DownloadOutcome::kComplete});
    ASSERT_TRUE(store_->FinishDownloads(fin).ok());
  }

  std::string NewAdvisoryWithWorkaround() {
    NewAdvisory n;
    n.product = "webserver";
    n.title = "Remote code execution in the WebDAV module";
    n.summary = "An exploited flaw: a crafted PROPFIND request runs code as the server user.";
    n.cve = "CVE-2026-31337";
    n.cvss_vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    n.severity = "critical";
    auto id = Create(*store_, n, clock_);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_TRUE(SetWorkaround(*store_, *id, "Set dav=off in webserver.conf and restart the service.", clock_).ok());
    return *id;
  }
  Status ScheduleNow(const std::string& id, const std::string& audience = "tier:premier") {
    Schedule s{clock_.NowMicros(), clock_.NowMicros(), kT * 1'000'000, audience};
    return SetSchedule(*store_, id, s, clock_);
  }
  Result<RunReport> Run() {
    auto t = notify::NewCurlTransport("smtp://127.0.0.1:" + std::to_string(port_));
    return RunDue(*store_, *t, o_, clock_);
  }
  void PublishFixTarget() {
    TargetRecord t;
    t.path = "webserver/2.4.2/webserver.tar.gz";
    t.product = "webserver";
    t.version = "2.4.2";
    t.length = 4100;
    t.sha256 = Sha256Hex("fixed");
    t.published_at = clock_.NowMicros();
    t.scan_verdict = "clean";
    ASSERT_TRUE(store_->UpsertTarget(t).ok());
  }

  std::string dir_, url_, home_;
  std::unique_ptr<Store> store_;
  std::map<std::string, std::string> tier_;
  std::map<std::string, int64_t> ids_;
  std::set<std::string> entitled_;
  OpenPgpKey key_;
  int port_ = 0;
  RunOptions o_;
  FakeClock clock_;
};

TEST_P(ScenarioTest, PreNoticeWithWorkaroundToPremierOnlyThenPublicReleaseWithTheFixAtT) {
  SmtpSink sink(dir_ + "/mail", port_);
  ASSERT_TRUE(sink.ready());
  std::string id = NewAdvisoryWithWorkaround();
  // Publishing now without a fix is refused; pre-notifying after publishing too.
  EXPECT_EQ(SetSchedule(*store_, id, {clock_.NowMicros(), std::nullopt, clock_.NowMicros(), "tier:premier"}, clock_).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SetSchedule(*store_, id, {kT * 1'000'000 + 1, std::nullopt, kT * 1'000'000, "tier:premier"}, clock_).code(),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(ScheduleNow(id).ok());

  // Within one minute (the first pass, 30 s later): every premier organisation, and no other, has ONE message with the workaround.
  clock_.Advance(30);
  auto r = Run();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto msgs = Messages(dir_ + "/mail");
  ASSERT_EQ(msgs.size(), 50u);
  std::set<std::string> told;
  for (const auto& m : msgs) {
    std::string org = OrgOf(m);
    EXPECT_EQ(tier_[org], "premier") << org;
    EXPECT_TRUE(told.insert(org).second) << org << " twice";
    EXPECT_NE(m.find("Set dav=off in webserver.conf"), std::string::npos);
    EXPECT_NE(m.find("TLP:AMBER"), std::string::npos);
    EXPECT_NE(m.find("/.well-known/csaf/amber/" + std::to_string(1970 + kT / 31557600).substr(0, 4)), std::string::npos);
    EXPECT_NE(m.find("X-Envelope-To: security@" + org + ".example"), std::string::npos);
  }
  EXPECT_EQ(told.size(), 50u);
  // A second pass sends nothing more.
  clock_.Advance(60);
  ASSERT_TRUE(Run().ok());
  EXPECT_EQ(Messages(dir_ + "/mail").size(), 50u);

  // 20 acknowledge through their links; the call list has the other 30, premier only.
  int acked = 0;
  for (const auto& m : msgs) {
    if (acked == 20) break;
    std::smatch link;
    ASSERT_TRUE(std::regex_search(m, link, std::regex("/ack/([0-9a-f]{40})")));
    ASSERT_TRUE(store_->Acknowledge(Sha256Hex(link[1].str()), clock_.NowMicros()).ok());
    ++acked;
  }
  auto a = Load(*store_, id);
  ASSERT_TRUE(a.ok());
  auto calls = CallList(*store_, *a, clock_.NowMicros());
  ASSERT_TRUE(calls.ok());
  EXPECT_EQ(calls->size(), 30u);
  for (const auto& c : *calls) EXPECT_EQ(c.org.tier, "premier");
  EXPECT_TRUE(CallList(*store_, *a, clock_.NowMicros() - 3600'000'000)->empty());  // nobody notified over an hour ago

  // Before T: the embargoed document only for audience tokens.
  Provider provider(store_.get(), o_.publisher, home_, &clock_, 0);
  std::string doc_path = "/.well-known/csaf/amber/" + a->Year() + "/" + a->FileName();
  EXPECT_EQ(provider.Handle("GET", doc_path, 0)->status, 404);
  EXPECT_EQ(provider.Handle("GET", doc_path, ids_["org-060"])->status, 404);   // gold: not in the audience
  EXPECT_EQ(provider.Handle("GET", doc_path, ids_["org-007"])->status, 200);   // premier
  for (const char* path : {"/.well-known/csaf/white/index.txt", "/.well-known/csaf/feed-tlp-white.json",
                           "/.well-known/csaf/feed-tlp-amber.json", "/.well-known/csaf/"}) {
    auto resp = provider.Handle("GET", path, 0);
    EXPECT_EQ(resp->body.find(a->FileName()), std::string::npos) << path;
    EXPECT_EQ(resp->body.find(a->id), std::string::npos) << path;
  }

  // The fix is published and referenced a day before T; at T the run publishes.
  clock_.SetUnix(kT - 86400);
  PublishFixTarget();
  ASSERT_TRUE(SetFix(*store_, id, "webserver/2.4.2/webserver.tar.gz", clock_).ok());
  clock_.SetUnix(kT - 1);
  ASSERT_TRUE(Run().ok());
  EXPECT_EQ(Messages(dir_ + "/mail").size(), 50u);  // nothing before T
  EXPECT_EQ(provider.Handle("GET", "/.well-known/csaf/white/" + a->Year() + "/" + a->FileName(), 0)->status, 404);
  clock_.SetUnix(kT);
  auto pub = Run();
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  auto all = Messages(dir_ + "/mail");
  std::set<std::string> final_to;
  for (size_t i = 50; i < all.size(); ++i) {
    EXPECT_NE(all[i].find("published"), std::string::npos);
    EXPECT_TRUE(final_to.insert(OrgOf(all[i])).second);
  }
  std::set<std::string> expected = entitled_;
  for (const auto& [name, tier] : tier_)
    if (tier == "premier") expected.insert(name);
  EXPECT_EQ(final_to, expected);  // the audience and every entitled organisation, once each

  // Public now: valid CSAF with the fix, its hashes and a signature that GnuPG verifies.
  auto doc = provider.Handle("GET", "/.well-known/csaf/white/" + a->Year() + "/" + a->FileName(), 0);
  ASSERT_EQ(doc->status, 200);
  EXPECT_NE(doc->body.find("\"vendor_fix\""), std::string::npos);
  EXPECT_NE(doc->body.find("\"status\": \"final\""), std::string::npos);
  EXPECT_NE(doc->body.find(Sha256Hex("fixed")), std::string::npos);
  EXPECT_EQ(provider.Handle("GET", doc_path, ids_["org-007"])->status, 404);  // the AMBER one is superseded
  auto sha = provider.Handle("GET", "/.well-known/csaf/white/" + a->Year() + "/" + a->FileName() + ".sha256", 0);
  EXPECT_EQ(sha->body.substr(0, 64), Sha256Hex(doc->body));
  auto asc = provider.Handle("GET", "/.well-known/csaf/white/" + a->Year() + "/" + a->FileName() + ".asc", 0);
  auto pubkey = provider.Handle("GET", "/.well-known/csaf/openpgp/" + key_.fingerprint + ".asc", 0);
  ASSERT_EQ(pubkey->status, 200);
  std::string v = dir_ + "/verify";
  ::mkdir(v.c_str(), 0700);
  std::ofstream(v + "/doc.json") << doc->body;
  std::ofstream(v + "/doc.json.asc") << asc->body;
  std::ofstream(v + "/key.asc") << pubkey->body;
  std::string gpg = "gpg --batch --quiet --homedir '" + v + "' ";
  EXPECT_EQ(std::system((gpg + "--import '" + v + "/key.asc' 2>/dev/null").c_str()), 0);
  EXPECT_EQ(std::system((gpg + "--verify '" + v + "/doc.json.asc' '" + v + "/doc.json' 2>/dev/null").c_str()), 0);
  std::ofstream(v + "/doc.json", std::ios::app) << " ";  // one byte more: the signature no longer holds
  EXPECT_NE(std::system((gpg + "--verify '" + v + "/doc.json.asc' '" + v + "/doc.json' 2>/dev/null").c_str()), 0);
  std::system(("gpgconf --homedir '" + v + "' --kill gpg-agent 2>/dev/null").c_str());
  std::string validator = std::string(PATCHGATE_SOURCE_DIR) + "/tests/advise";
  if (std::ifstream(validator + "/node_modules/@secvisogram/csaf-validator-lib/package.json").good()) {
    std::ofstream(dir_ + "/final.json") << doc->body;
    EXPECT_EQ(std::system(("cd '" + validator + "' && node validate.mjs '" + dir_ + "/final.json' >/dev/null").c_str()), 0);
  }
  // A later pass changes nothing.
  clock_.Advance(3600);
  ASSERT_TRUE(Run().ok());
  EXPECT_EQ(Messages(dir_ + "/mail").size(), all.size());
}

TEST_P(ScenarioTest, AnSmtpOutageMidwayResumesWithExactlyTheRest) {
  std::string id = NewAdvisoryWithWorkaround();
  ASSERT_TRUE(ScheduleNow(id).ok());
  o_.delivery.parallel = 1;
  {
    SmtpSink sink(dir_ + "/mail", port_, /*max_messages=*/20);
    ASSERT_TRUE(sink.ready());
    auto r = Run();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->sent, 20u);
    EXPECT_EQ(r->failed, 30u);
  }
  auto a = Load(*store_, id);
  EXPECT_EQ(a->steps_done.count("prenotice"), 0u);  // not done until everyone has it
  SmtpSink back(dir_ + "/mail", port_);
  ASSERT_TRUE(back.ready());
  auto r = Run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sent, 30u);
  EXPECT_EQ(r->already_sent, 20u);
  auto msgs = Messages(dir_ + "/mail");
  ASSERT_EQ(msgs.size(), 50u);
  std::set<std::string> orgs;
  for (const auto& m : msgs) orgs.insert(OrgOf(m));
  EXPECT_EQ(orgs.size(), 50u);  // each premier organisation exactly once
  EXPECT_EQ(Load(*store_, id)->steps_done.count("prenotice"), 1u);
}

TEST_P(ScenarioTest, TwoRunnersAtOnceNeverSendTwice) {
  SmtpSink sink(dir_ + "/mail", port_);
  ASSERT_TRUE(sink.ready());
  std::string id = NewAdvisoryWithWorkaround();
  ASSERT_TRUE(ScheduleNow(id, "product:webserver").ok());
  // Issued beforehand, so both runners go straight to delivering the same 120 messages.
  ASSERT_TRUE(Issue(*store_, id, "AMBER", "interim", o_, clock_).ok());
  auto second = Store::Open(url_);  // another process's connection
  ASSERT_TRUE(second.ok());
  Result<RunReport> r1 = Internal("not run"), r2 = Internal("not run");
  std::thread a([&] {
    auto t = notify::NewCurlTransport("smtp://127.0.0.1:" + std::to_string(port_));
    r1 = RunDue(*store_, *t, o_, clock_);
  });
  std::thread b([&] {
    auto t = notify::NewCurlTransport("smtp://127.0.0.1:" + std::to_string(port_));
    r2 = RunDue(**second, *t, o_, clock_);
  });
  a.join();
  b.join();
  // A runner may lose the race to issue the document (a conflict, retried next pass); none sends twice.
  size_t sent = (r1.ok() ? r1->sent : 0) + (r2.ok() ? r2->sent : 0);
  ASSERT_TRUE(Run().ok());  // a third pass completes whatever a conflict left
  auto msgs = Messages(dir_ + "/mail");
  std::map<std::string, int> per_org;
  for (const auto& m : msgs) ++per_org[OrgOf(m)];
  EXPECT_EQ(per_org.size(), 120u);
  for (const auto& [org, n] : per_org) EXPECT_EQ(n, 1) << org;
  EXPECT_LE(sent, 120u);
}

TEST_P(ScenarioTest, AudiencesByTierEntitlementAndDownload) {
  auto count = [&](const std::string& text) {
    auto a = ParseAudience(text);
    EXPECT_TRUE(a.ok()) << text;
    return ResolveAudience(*store_, *a)->size();
  };
  EXPECT_EQ(count("tier:premier"), 50u);
  EXPECT_EQ(count("tier:premier,gold"), 110u);
  EXPECT_EQ(count("product:webserver"), 120u);
  EXPECT_EQ(count("downloaded:webserver"), 80u);
  EXPECT_FALSE(ParseAudience("tier:platinum").ok());
  EXPECT_FALSE(ParseAudience("everyone").ok());
}

INSTANTIATE_TEST_SUITE_P(Engines, ScenarioTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace patchgate::advisory
