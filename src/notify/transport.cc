#include "notify/transport.h"

#include <curl/curl.h>

#include <cstring>
#include <ctime>
#include <mutex>

#include "crypto/hash.h"

namespace patchgate::notify {

namespace {

std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\r' || c == '\n') c = ' ';
  return s;
}

std::string Join(const std::vector<std::string>& v) {
  std::string o;
  for (const auto& s : v) o += (o.empty() ? "" : ", ") + OneLine(s);
  return o;
}

std::string AddressOf(const std::string& from) {
  auto l = from.find('<'), r = from.find('>');
  return l != std::string::npos && r != std::string::npos && r > l ? from.substr(l + 1, r - l - 1) : from;
}

std::string RfcDate() {
  char buf[64];
  time_t t = time(nullptr);
  tm g{};
  gmtime_r(&t, &g);
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &g);
  return buf;
}

void AppendCrlf(std::string* out, const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {  // CRLF line ends; dot-stuffing is curl's
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) *out += '\r';
    *out += text[i];
  }
}

void AppendBase64Lines(std::string* out, const std::string& data) {
  std::string b = Base64Encode(data);
  for (size_t i = 0; i < b.size(); i += 76) *out += b.substr(i, 76) + "\r\n";
}

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(std::string url) : url_(std::move(url)) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (auto q = url_.find("?starttls=required"); q != std::string::npos) {
      require_tls_ = true;
      url_.erase(q);
    }
  }
  ~CurlTransport() override {
    for (CURL* c : idle_) curl_easy_cleanup(c);
  }

  Status SendMail(const Mail& m) override {
    std::string msg = RenderMessage(m, RfcDate(), HexEncode(RandomBytes(12)) + "@patchgate");
    CURL* c = Take();
    if (!c) return Internal("libcurl unavailable");
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
    std::string from = "<" + AddressOf(m.from) + ">";
    curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_USE_SSL, require_tls_ ? CURLUSESSL_ALL : CURLUSESSL_TRY);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, nullptr);
    curl_slist_free_all(rcpt);
    if (rc != CURLE_OK) {
      curl_easy_cleanup(c);  // a failed connection is not reused
      return Unavailable(std::string("SMTP: ") + curl_easy_strerror(rc));
    }
    Give(c);
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
  CURL* Take() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!idle_.empty()) {
        CURL* c = idle_.back();
        idle_.pop_back();
        return c;
      }
    }
    return curl_easy_init();
  }
  void Give(CURL* c) {
    std::lock_guard<std::mutex> l(mu_);
    idle_.push_back(c);
  }

  std::string url_;
  bool require_tls_ = false;
  std::mutex mu_;
  std::vector<CURL*> idle_;  // handles with a live connection, ready for the next message
};

}  // namespace

std::string RenderMessage(const Mail& m, const std::string& date, const std::string& message_id) {
  std::string msg = "From: " + OneLine(m.from) + "\r\nTo: " + Join(m.to) + "\r\n";
  if (!m.cc.empty()) msg += "Cc: " + Join(m.cc) + "\r\n";
  msg += "Subject: " + OneLine(m.subject) + "\r\nDate: " + date + "\r\nMessage-ID: <" + message_id +
         ">\r\nMIME-Version: 1.0\r\n";
  if (m.attachments.empty()) {
    msg += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";
    AppendCrlf(&msg, m.body);
    return msg;
  }
  std::string boundary = "=_patchgate_" + message_id.substr(0, message_id.find('@'));
  msg += "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n";
  msg += "--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";
  AppendCrlf(&msg, m.body);
  if (msg.back() != '\n') msg += "\r\n";
  for (const auto& a : m.attachments) {
    std::string name = OneLine(a.filename);
    for (char& c : name)
      if (c == '"' || c == '\\') c = '_';
    msg += "--" + boundary + "\r\nContent-Type: " + OneLine(a.content_type) + "; name=\"" + name +
           "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    AppendBase64Lines(&msg, a.data);
  }
  msg += "--" + boundary + "--\r\n";
  return msg;
}

std::unique_ptr<Transport> NewCurlTransport(const std::string& smtp_url) { return std::make_unique<CurlTransport>(smtp_url); }

}  // namespace patchgate::notify
