// Notification against a real SMTP server (Debian's python3-aiosmtpd, tests/respond/smtp_sink.py).
#include "notify/notify.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <map>
#include <optional>
#include <regex>
#include <thread>

#include "core/fs.h"
#include "core/scratch_dir.h"
#include "crypto/hash.h"
#include "incident/world.h"
#include "notify/smtp_sink.h"

namespace patchgate::notify {
namespace {

using testing::Messages;
// The project's SMTP sink (src/notify/smtp_sink.h) with this source tree's script.
struct SmtpSink : testing::SmtpSink {
  SmtpSink(const std::string& dir, int port, int max_messages = -1)
      : testing::SmtpSink(PATCHGATE_SOURCE_DIR, dir, port, max_messages) {}
};

std::string Header(const std::string& msg, const std::string& name) {
  std::smatch m;
  std::regex re("(^|\\n)" + name + ": ([^\\r\\n]*)");
  return std::regex_search(msg, m, re) ? m[2].str() : "";
}

class NotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Debian's python3-aiosmtpd lives with the system interpreter, not a pyenv one.
    if (!testing::SmtpSinkAvailable()) {
      if (std::getenv("CI")) FAIL() << "python3-aiosmtpd is not installed (scripts/deps.sh installs it)";
      GTEST_SKIP() << "python3-aiosmtpd is not installed (scripts/deps.sh installs it)";
    }
    scratch_.emplace("notify");
    dir_ = scratch_->path();
    auto s = Store::Open("sqlite://" + dir_ + "/store.db");
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    incident::testing::WorldSpec spec;
    spec.organisations = 40;
    spec.affected_organisations = 9;
    spec.downloads_in_window = 30;
    spec.noise = 80;
    world_ = incident::testing::MakeWorld(*store_, spec);
    incident::testing::RecordServed(*store_, world_);
    Incident inc{0, spec.node, spec.window_start, spec.window_end, "file infector on the mirror", spec.window_end, {}};
    id_ = *store_->CreateIncident(inc);
    port_ = testing::FreeLoopbackPort();
    opts_.from = "Vendor PSIRT <psirt@vendor.example>";
    opts_.ack_base_url = "https://downloads.vendor.example";
    opts_.backoff_ms = 10;
  }
  Result<NotifyReport> Run() {
    auto t = NewCurlTransport("smtp://127.0.0.1:" + std::to_string(port_));
    return NotifyIncident(*store_, id_, *t, opts_, SystemClock::Get());
  }

  std::optional<ScratchDir> scratch_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  incident::testing::World world_;
  int64_t id_ = 0;
  int port_ = 0;
  NotifyOptions opts_;
};

TEST_F(NotifyTest, ExactlyOneMessagePerAffectedOrganisationWithExactlyItsDownloads) {
  SmtpSink sink(dir_ + "/mail", port_);
  ASSERT_TRUE(sink.ready());
  auto r = Run();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sent, 9u);
  EXPECT_EQ(r->failed, 0u);
  auto msgs = Messages(dir_ + "/mail");
  ASSERT_EQ(msgs.size(), 9u);
  std::map<std::string, int> per_org;
  for (const auto& m : msgs) {
    std::smatch org;
    ASSERT_TRUE(std::regex_search(m, org, std::regex("Dear (org-[^ ]+) security team")));
    ++per_org[org[1]];
    EXPECT_TRUE(world_.affected_orgs.count(org[1]));
    EXPECT_NE(Header(m, "Subject").find("#" + std::to_string(id_)), std::string::npos);
    EXPECT_NE(Header(m, "Cc").find("@vendor.example"), std::string::npos);  // the account manager
    // Exactly this organisation's downloads: every truth row of this org is listed, no other org's.
    for (const auto& [o, user, target, t] : world_.truth) {
      bool listed = m.find("by user " + user + "\r\n") != std::string::npos;
      EXPECT_EQ(listed, o == org[1].str()) << o << " " << user;
    }
  }
  EXPECT_EQ(per_org.size(), 9u);
  // Running again sends nothing.
  auto again = Run();
  EXPECT_EQ(again->sent, 0u);
  EXPECT_EQ(again->already_sent, 9u);
  EXPECT_EQ(Messages(dir_ + "/mail").size(), 9u);
  // Acknowledgement links work once.
  std::smatch link;
  ASSERT_TRUE(std::regex_search(msgs[0], link, std::regex("/ack/([0-9a-f]+)")));
  ASSERT_TRUE(store_->Acknowledge(Sha256Hex(link[1].str()), 123).ok());
  ASSERT_TRUE(store_->Acknowledge(Sha256Hex(link[1].str()), 456).ok());
  int acked = 0;
  auto listed = store_->ListNotifications(id_);
  for (const auto& n : *listed)
    if (n.acked_at) {
      ++acked;
      EXPECT_EQ(*n.acked_at, 123);
    }
  EXPECT_EQ(acked, 1);
}

TEST_F(NotifyTest, AnOutageMidwaySendsExactlyTheRestAfterwards) {
  {
    SmtpSink sink(dir_ + "/mail", port_, /*max_messages=*/4);  // accepts 4, then goes away
    ASSERT_TRUE(sink.ready());
    auto r = Run();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->sent, 4u);
    EXPECT_EQ(r->failed, 5u);
  }
  size_t failed = 0;
  auto after = store_->ListNotifications(id_);
  for (const auto& n : *after) failed += n.state == "failed";
  EXPECT_EQ(failed, 5u);
  SmtpSink back(dir_ + "/mail", port_);
  ASSERT_TRUE(back.ready());
  auto r = Run();
  EXPECT_EQ(r->sent, 5u);
  EXPECT_EQ(r->already_sent, 4u);
  auto msgs = Messages(dir_ + "/mail");
  ASSERT_EQ(msgs.size(), 9u);
  std::set<std::string> orgs;
  for (const auto& m : msgs) {
    std::smatch org;
    std::regex_search(m, org, std::regex("Dear (org-[^ ]+) security team"));
    orgs.insert(org[1]);
  }
  EXPECT_EQ(orgs, world_.affected_orgs);  // each exactly once
}

// A one-shot HTTP endpoint on 127.0.0.1 that records the request it receives.
class WebhookEndpoint {
 public:
  WebhookEndpoint() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      for (;;) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        auto he = req.find("\r\n\r\n");
        if (he == std::string::npos) continue;
        std::smatch m;
        std::string head = req.substr(0, he);
        size_t want = std::regex_search(head, m, std::regex("Content-Length: (\\d+)", std::regex::icase)) ? std::stoul(m[1]) : 0;
        if (req.size() >= he + 4 + want) break;
      }
      request_ = req;
      std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::send(c, ok.data(), ok.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~WebhookEndpoint() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  std::string Take() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  int fd_ = -1, port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST_F(NotifyTest, WebhookCarriesAnHmacSignatureOverItsBody) {
  WebhookEndpoint hook;
  Organisation org;
  org.name = "HookCorp";
  org.tier = "premier";
  org.webhook_url = "http://127.0.0.1:" + std::to_string(hook.port()) + "/patchgate";
  ASSERT_TRUE(store_->AddOrganisation(org).ok());
  ASSERT_TRUE(store_->AddUser("HookCorp", "hooky", Sha256Hex("hooky")).ok());
  auto u = store_->GetUser("hooky");
  DownloadStart d{world_.spec.window_start + 5'000'000, world_.spec.node, u->id, u->org_id, "p/hook.bin", "abc"};
  auto ids = store_->BeginDownloads({d});
  ASSERT_TRUE(store_->FinishDownloads({{(*ids)[0], d.started_at + 1, 9, DownloadOutcome::kComplete}}).ok());
  opts_.webhook_secret = "s3cret";
  SmtpSink sink(dir_ + "/mail", port_);
  ASSERT_TRUE(sink.ready());
  auto r = Run();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string req = hook.Take();
  auto he = req.find("\r\n\r\n");
  ASSERT_NE(he, std::string::npos) << req;
  std::string body = req.substr(he + 4);
  EXPECT_NE(body.find("\"p/hook.bin\""), std::string::npos);
  EXPECT_NE(req.find("X-Patchgate-Signature: sha256=" + HmacSha256Hex("s3cret", body)), std::string::npos) << req;
  bool recorded = false;
  auto ns = store_->ListNotifications(id_);
  for (const auto& n : *ns) recorded |= n.org_name == "HookCorp" && n.channel == "webhook" && n.state == "sent";
  EXPECT_TRUE(recorded);
}

TEST_F(NotifyTest, DryRunSendsAndRecordsNothing) {
  opts_.dry_run = true;
  auto r = Run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sent, 0u);
  EXPECT_TRUE(store_->ListNotifications(id_)->empty());
}

TEST(ComposeMail, LongListsGoIntoACsvAttachmentAndTheBodyStaysBounded) {
  incident::Scope s;
  s.query.node = "mirror-2";
  s.query.incident_id = 7;
  s.query.from = 1'700'000'000'000'000;
  s.query.to = s.query.from + 3'600'000'000;
  incident::OrgScope g;
  g.org_id = 1;
  g.name = "BigCorp";
  g.contacts = {"sec@bigcorp.example"};
  for (int i = 0; i < 5000; ++i) {
    Download d;
    d.target_path = "office/2.1/file-" + std::to_string(i) + ".msi";
    d.username = i == 3 ? "=cmd|' /C calc'!A0" : "user" + std::to_string(i % 7);
    d.sha256 = std::string(64, 'a');
    d.node = "mirror-2";
    d.started_at = s.query.from + i;
    g.downloads.push_back(s.Keep(d));
  }
  Mail m = ComposeMail(s, g, "PSIRT <psirt@vendor.example>", "https://x.example/ack/abc");
  EXPECT_LT(m.body.size(), kMaxBodyBytes);
  EXPECT_NE(m.body.find("file-24.msi"), std::string::npos);
  EXPECT_EQ(m.body.find("file-25.msi"), std::string::npos);
  EXPECT_NE(m.body.find("4975 more"), std::string::npos);
  ASSERT_EQ(m.attachments.size(), 1u);
  const std::string& csv = m.attachments[0].data;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5001);
  EXPECT_NE(csv.find("file-4999.msi"), std::string::npos);
  EXPECT_NE(csv.find(",'=cmd|' /C calc'!A0,"), std::string::npos);  // a formula is neutralised
  std::string wire = RenderMessage(m, "Mon, 01 Jan 2024 00:00:00 +0000", "abc@patchgate");
  EXPECT_NE(wire.find("Content-Type: multipart/mixed"), std::string::npos);
  EXPECT_NE(wire.find("filename=\"downloads.csv\""), std::string::npos);
  // A short list stays in the body, without attachment.
  g.downloads.resize(3);
  EXPECT_TRUE(ComposeMail(s, g, "p@x", "u").attachments.empty());
}

TEST(RenderMessage, HeaderValuesCannotInjectHeaders) {
  Mail m;
  m.from = "a@x.example";
  m.to = {"b@x.example"};
  m.subject = "hello\r\nBcc: evil@x.example";
  m.body = "hi";
  std::string wire = RenderMessage(m, "d", "id@x");
  EXPECT_EQ(wire.find("\r\nBcc:"), std::string::npos);
}

}  // namespace
}  // namespace patchgate::notify
