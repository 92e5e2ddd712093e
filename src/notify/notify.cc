#include "notify/notify.h"

#include <curl/curl.h>

#include <cstring>
#include <map>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/json_output.h"
#include "core/log.h"
#include "crypto/hash.h"

namespace patchgate::notify {

namespace {

std::string T(int64_t us) { return FormatRfc3339(us / 1'000'000); }

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(std::string url) : url_(std::move(url)) { curl_global_init(CURL_GLOBAL_DEFAULT); }

  Status SendMail(const Mail& m) override {
    std::string msg = "From: " + m.from + "\r\nTo: " + Join(m.to) + "\r\n";
    if (!m.cc.empty()) msg += "Cc: " + Join(m.cc) + "\r\n";
    msg += "Subject: " + m.subject + "\r\nDate: " + RfcDate() + "\r\nMessage-ID: <" + HexEncode(RandomBytes(12)) +
           "@patchgate>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n";
    for (size_t i = 0; i < m.body.size(); ++i) {  // CRLF line ends; dot-stuffing is curl's
      if (m.body[i] == '\n' && (i == 0 || m.body[i - 1] != '\r')) msg += '\r';
      msg += m.body[i];
    }
    CURL* c = curl_easy_init();
    if (!c) return Internal("libcurl unavailable");
    std::string url = url_;
    bool require_tls = false;
    if (auto q = url.find("?starttls=required"); q != std::string::npos) {
      require_tls = true;
      url.erase(q);
    }
    curl_slist* rcpt = nullptr;
    for (const auto& r : m.to) rcpt = curl_slist_append(rcpt, ("<" + r + ">").c_str());
    for (const auto& r : m.cc) rcpt = curl_slist_append(rcpt, ("<" + r + ">").c_str());
    struct Src {
      const std::string* s;
      size_t off = 0;
    } src{&msg};
    auto read = +[](char* buf, size_t size, size_t n, void* p) -> size_t {
      auto* s = static_cast<Src*>(p);
      size_t k = std::min(size * n, s->s->size() - s->off);
      std::memcpy(buf, s->s->data() + s->off, k);
      s->off += k;
      return k;
    };
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, ("<" + AddressOf(m.from) + ">").c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_USE_SSL, require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) return Unavailable(std::string("SMTP: ") + curl_easy_strerror(rc));
    return Status::OK();
  }

  Status PostWebhook(const std::string& url, const std::string& body, const std::string& signature) override {
    CURL* c = curl_easy_init();
    if (!c) return Internal("libcurl unavailable");
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
    h = curl_slist_append(h, ("X-Patchgate-Signature: sha256=" + signature).c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) return Unavailable(std::string("webhook: ") + curl_easy_strerror(rc));
    return Status::OK();
  }

 private:
  static std::string Join(const std::vector<std::string>& v) {
    std::string o;
    for (const auto& s : v) o += (o.empty() ? "" : ", ") + s;
    return o;
  }
  static std::string AddressOf(const std::string& from) {
    auto l = from.find('<'), r = from.find('>');
    return l != std::string::npos && r != std::string::npos && r > l ? from.substr(l + 1, r - l - 1) : from;
  }
  static std::string RfcDate() {
    char buf[64];
    time_t t = time(nullptr);
    tm g{};
    gmtime_r(&t, &g);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &g);
    return buf;
  }
  std::string url_;
};

}  // namespace

std::unique_ptr<Transport> NewCurlTransport(const std::string& smtp_url) { return std::make_unique<CurlTransport>(smtp_url); }

Mail ComposeMail(const incident::Scope& s, const incident::OrgScope& g, const std::string& from, const std::string& ack_url) {
  Mail m;
  m.from = from;
  m.to = g.contacts;
  if (!g.account_manager_email.empty()) m.cc.push_back(g.account_manager_email);
  std::string id = s.query.incident_id ? "#" + std::to_string(s.query.incident_id) : "";
  m.subject = "[patchgate] Security incident " + id + ": files your organisation downloaded from " + s.query.node +
              " may be compromised";
  std::string b = "Dear " + g.name + " security team,\n\n";
  b += "Between " + T(s.query.from) + " and " + T(s.query.to) + " our download node \"" + s.query.node +
       "\" served files that may have been altered";
  b += s.query.cause.empty() ? ".\n" : " (" + s.query.cause + ").\n";
  b += "According to our download records, your organisation received the following " +
       std::to_string(g.downloads.size()) + " file(s) from that node in that window:\n\n";
  for (const auto& d : g.downloads)
    b += "  - " + d.target_path + "\n      downloaded " + T(d.started_at) + " by user " + d.username +
         "\n      sha256 served: " + (d.sha256.empty() ? "(not recorded)" : d.sha256) + "\n      node: " + d.node + "\n";
  b += "\nWhat to do:\n"
       "  1. Do not install these files. Remove any copies, and check every machine they reached.\n"
       "  2. Compare the sha256 of any copy you kept with the signed value our repository publishes;\n"
       "     patchgate-client refuses any file that does not match its signed hash.\n"
       "  3. Download the files again from a verified node.\n"
       "  4. Tell us you have received this message: " + ack_url + "\n";
  if (!g.account_manager.empty())
    b += "\nYour account manager, " + g.account_manager + (g.phone.empty() ? "" : " (" + g.phone + ")") +
         ", is copied and will call you if we do not hear from you.\n";
  b += "\nThis message lists only your organisation's downloads.\n";
  m.body = b;
  return m;
}

Result<NotifyReport> NotifyIncident(Store& store, int64_t incident_id, Transport& t, const NotifyOptions& o,
                                    const Clock& clock) {
  if (o.from.empty() && !o.dry_run) return InvalidArgument("give the sender address (--from)");
  PG_ASSIGN_OR_RETURN(incident::ScopeQuery q, incident::QueryForIncident(store, incident_id));
  PG_ASSIGN_OR_RETURN(incident::Scope scope, incident::ComputeScope(store, q));
  NotifyReport rep;
  for (const auto& g : scope.orgs) {
    if (g.org_id == 0) {
      rep.log.push_back(g.name + ": " + std::to_string(g.downloads.size()) +
                        " download(s) by unknown users; no organisation to notify (see the scope report)");
      continue;
    }
    ++rep.organisations;
    Organisation org;  // as the scope looked it up
    org.id = g.org_id;
    org.name = g.name;
    org.security_contacts = g.contacts;
    org.account_manager_email = g.account_manager_email;
    org.webhook_url = g.webhook_url;
    std::vector<std::pair<std::string, std::string>> channels;
    if (!org.security_contacts.empty() || !org.account_manager_email.empty()) channels.emplace_back("smtp", "");
    if (!org.webhook_url.empty()) channels.emplace_back("webhook", org.webhook_url);
    if (channels.empty()) {
      ++rep.failed;
      rep.log.push_back(org.name + ": no security contact, account manager e-mail or webhook; call them");
      continue;
    }
    for (const auto& [channel, url] : channels) {
      std::string recipients;
      for (const auto& c : org.security_contacts) recipients += (recipients.empty() ? "" : ",") + c;
      if (channel == "smtp" && !org.account_manager_email.empty())
        recipients += (recipients.empty() ? "cc:" : ",cc:") + org.account_manager_email;
      if (channel == "webhook") recipients = url;
      std::string token = HexEncode(RandomBytes(20));
      std::string ack_url = o.ack_base_url + "/ack/" + token;
      Mail mail = ComposeMail(scope, g, o.from, ack_url);
      if (o.dry_run) {
        rep.log.push_back("[dry run] " + org.name + " via " + channel + " to " + recipients + "\n  Subject: " + mail.subject);
        continue;
      }
      PG_ASSIGN_OR_RETURN(Notification n, store.EnsureNotification(incident_id, org.id, channel, recipients, Sha256Hex(token)));
      if (n.state == "sent") {
        ++rep.already_sent;
        rep.log.push_back(org.name + " via " + channel + ": already sent; nothing to do");
        continue;
      }
      if (n.attempts > 0 || n.state == "failed") PG_RETURN_IF_ERROR(store.ResetAckToken(n.id, Sha256Hex(token)));
      Status st;
      for (int attempt = 1; attempt <= o.max_attempts; ++attempt) {
        if (channel == "smtp") {
          st = t.SendMail(mail);
        } else {
          nlohmann::json body = {{"incident", incident_id}, {"organisation", org.name}, {"node", scope.query.node},
                                 {"from", T(scope.query.from)}, {"to", T(scope.query.to)}, {"ack_url", ack_url},
                                 {"downloads", nlohmann::json::array()}};
          for (const auto& d : g.downloads)
            body["downloads"].push_back({{"file", d.target_path}, {"time", T(d.started_at)}, {"user", d.username},
                                         {"sha256", d.sha256}, {"node", d.node}});
          std::string text = JsonText(body, -1);
          st = t.PostWebhook(url, text, HmacSha256Hex(o.webhook_secret, text));
        }
        if (st.ok()) break;
        log::Warn("notification attempt failed", {{"organisation", org.name}, {"channel", channel},
                                                  {"attempt", std::to_string(attempt)}, {"error", st.message()}});
        if (attempt < o.max_attempts) std::this_thread::sleep_for(std::chrono::milliseconds(o.backoff_ms << (attempt - 1)));
      }
      PG_RETURN_IF_ERROR(store.RecordNotificationAttempt(n.id, st.ok(), st.ok() ? "" : st.message(), clock.NowMicros()));
      if (st.ok()) {
        ++rep.sent;
        rep.log.push_back(org.name + " via " + channel + ": sent to " + recipients + " (" +
                          std::to_string(g.downloads.size()) + " download(s))");
      } else {
        ++rep.failed;
        rep.log.push_back(org.name + " via " + channel + ": FAILED: " + st.message() + " (run again to retry)");
      }
    }
  }
  return rep;
}

}  // namespace patchgate::notify
