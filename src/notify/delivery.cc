#include "notify/delivery.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "core/csv.h"
#include "core/log.h"
#include "crypto/hash.h"

namespace patchgate::notify {

std::string CsvCell(const std::string& s) { return patchgate::CsvCell(s); }  // the one CSV writer

namespace {

struct Job {
  const Outgoing* out;
  std::string channel, url;
};

}  // namespace

Result<DeliveryReport> Deliver(NotificationLedger& store, const std::string& subject, int64_t incident_id,
                               const std::vector<Outgoing>& outgoing, Transport& t, const DeliveryOptions& o,
                               const Clock& clock) {
  if (o.from.empty() && !o.dry_run) return InvalidArgument("give the sender address (--from)");
  DeliveryReport rep;
  std::vector<Job> jobs;
  for (const auto& g : outgoing) {
    ++rep.organisations;
    if (!g.contacts.empty() || !g.account_manager_email.empty()) jobs.push_back({&g, "smtp", ""});
    if (!g.webhook_url.empty()) jobs.push_back({&g, "webhook", g.webhook_url});
    if (g.contacts.empty() && g.account_manager_email.empty() && g.webhook_url.empty()) {
      ++rep.failed;
      rep.log.push_back(g.org_name + ": no security contact, account manager e-mail or webhook; call them");
    }
  }
  std::mutex mu;  // guards rep and the first error
  Status first_error;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (;;) {
      size_t i = next++;
      if (i >= jobs.size() || !first_error.ok()) return;
      const Job& j = jobs[i];
      const Outgoing& g = *j.out;
      std::string recipients;
      for (const auto& c : g.contacts) recipients += (recipients.empty() ? "" : ",") + c;
      if (j.channel == "smtp" && !g.account_manager_email.empty())
        recipients += (recipients.empty() ? "cc:" : ",cc:") + g.account_manager_email;
      if (j.channel == "webhook") recipients = j.url;
      std::string token = HexEncode(RandomBytes(20));
      std::string ack_url = o.ack_base_url + "/ack/" + token;
      auto add = [&](size_t DeliveryReport::*field, std::string line) {
        std::lock_guard<std::mutex> l(mu);
        if (field) ++(rep.*field);
        rep.log.push_back(std::move(line));
      };
      if (o.dry_run) {
        add(nullptr, "[dry run] " + g.org_name + " via " + j.channel + " to " + recipients +
                         (g.mail && j.channel == "smtp" ? "\n  Subject: " + g.mail(ack_url).subject : ""));
        continue;
      }
      auto n = incident_id ? store.EnsureNotification(incident_id, g.org_id, j.channel, recipients, Sha256Hex(token))
                           : store.EnsureSubjectNotification(subject, g.org_id, j.channel, recipients, Sha256Hex(token));
      if (!n.ok()) {
        std::lock_guard<std::mutex> l(mu);
        first_error = n.status();
        return;
      }
      if (n->state == "sent") {
        add(&DeliveryReport::already_sent, g.org_name + " via " + j.channel + ": already sent; nothing to do");
        continue;
      }
      int64_t now = clock.NowMicros();
      auto claimed = store.ClaimNotification(n->id, now, now + int64_t{o.lease_seconds} * 1'000'000);
      if (!claimed.ok()) {
        std::lock_guard<std::mutex> l(mu);
        first_error = claimed.status();
        return;
      }
      if (!*claimed) {
        add(&DeliveryReport::busy, g.org_name + " via " + j.channel + ": being sent by another runner; skipped");
        continue;
      }
      if (n->attempts > 0 || n->state == "failed") {
        Status rs = store.ResetAckToken(n->id, Sha256Hex(token));
        if (rs.code() == ErrorCode::kConflict) {  // sent meanwhile by a runner whose lease we outlived
          add(&DeliveryReport::already_sent, g.org_name + " via " + j.channel + ": already sent; nothing to do");
          continue;
        }
        if (!rs.ok()) {
          std::lock_guard<std::mutex> l(mu);
          first_error = rs;
          return;
        }
      }
      Status st;
      for (int attempt = 1; attempt <= o.max_attempts; ++attempt) {
        if (j.channel == "smtp") {
          st = g.mail ? t.SendMail(g.mail(ack_url)) : InvalidArgument("no mail composer");
        } else {
          std::string text = g.webhook_json ? g.webhook_json(ack_url) : "{}";
          st = t.PostWebhook(j.url, text, HmacSha256Hex(o.webhook_secret, text));
        }
        if (st.ok()) break;
        log::Warn("notification attempt failed", {{"subject", subject}, {"organisation", g.org_name},
                                                  {"channel", j.channel}, {"attempt", std::to_string(attempt)},
                                                  {"error", st.message()}});
        if (attempt < o.max_attempts) std::this_thread::sleep_for(std::chrono::milliseconds(o.backoff_ms << (attempt - 1)));
      }
      Status rec = store.RecordNotificationAttempt(n->id, st.ok(), st.ok() ? "" : st.message(), clock.NowMicros());
      if (!rec.ok()) {
        std::lock_guard<std::mutex> l(mu);
        first_error = rec;
        return;
      }
      if (st.ok())
        add(&DeliveryReport::sent, g.org_name + " via " + j.channel + ": sent to " + recipients);
      else
        add(&DeliveryReport::failed, g.org_name + " via " + j.channel + ": FAILED: " + st.message() + " (run again to retry)");
    }
  };
  int threads = std::max(1, std::min<int>(o.parallel, 64));
  if (threads == 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(work);
    for (auto& th : pool) th.join();
  }
  if (!first_error.ok()) return first_error;
  return rep;
}

}  // namespace patchgate::notify
