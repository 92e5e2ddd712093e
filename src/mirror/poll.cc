#include "mirror/poll.h"

#include <curl/curl.h>
#include <strings.h>

#include <mutex>

#include "client/fetcher.h"

namespace patchgate::mirror {

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

struct TimestampPoller::Impl {
  PollOptions o;
  CURL* curl = nullptr;
  ~Impl() {
    if (curl) curl_easy_cleanup(curl);
  }
};

TimestampPoller::TimestampPoller(PollOptions options) : impl_(std::make_unique<Impl>()) {
  GlobalInit();
  impl_->o = std::move(options);
  impl_->curl = curl_easy_init();
}

TimestampPoller::~TimestampPoller() = default;

bool TimestampPoller::UsableETag(const std::string& e) {
  std::string_view v = e;
  if (v.size() > 256) return false;
  if (v.substr(0, 2) == "W/") v.remove_prefix(2);
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return false;
  for (char c : v.substr(1, v.size() - 2))
    if (c < 0x21 || c > 0x7e || c == '"') return false;
  return true;
}

Result<PollResult> TimestampPoller::Poll(const std::string& if_none_match) {
  CURL* c = impl_->curl;
  if (!c) return Internal("libcurl could not be initialised");
  const PollOptions& o = impl_->o;
  struct Ctx {
    PollResult r;
    uint64_t max;
    bool too_large = false;
  } ctx{{}, o.max_bytes, false};
  auto write = +[](char* data, size_t, size_t n, void* p) -> size_t {
    auto* x = static_cast<Ctx*>(p);
    if (x->r.body.size() + n > x->max) {
      x->too_large = true;
      return 0;
    }
    x->r.body.append(data, n);
    return n;
  };
  auto header = +[](char* data, size_t, size_t n, void* p) -> size_t {
    auto* x = static_cast<Ctx*>(p);
    std::string line(data, n);
    if (line.size() > 5 && strncasecmp(line.c_str(), "etag:", 5) == 0) x->r.etag = Trim(line.substr(5));
    // A new response (e.g. after a 100 Continue) starts over.
    if (line.rfind("HTTP/", 0) == 0) x->r.etag.clear();
    return n;
  };
  curl_easy_reset(c);  // keeps the connection cache: the poll stays on one connection
  curl_easy_setopt(c, CURLOPT_URL, o.url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_seconds);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, o.timeout_seconds);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "patchgate-mirror/0.1");
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, nullptr);
  curl_slist* headers = nullptr;
  if (!o.node_token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + o.node_token).c_str());
  if (!if_none_match.empty() && UsableETag(if_none_match))
    headers = curl_slist_append(headers, ("If-None-Match: " + if_none_match).c_str());
  if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  if (headers) curl_slist_free_all(headers);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (ctx.too_large)
    return TooLarge(o.url + " sent more than the maximum of " + std::to_string(o.max_bytes) + " bytes; stopped reading");
  if (rc == CURLE_OPERATION_TIMEDOUT) return Status(ErrorCode::kTimeout, o.url + ": timed out");
  if (rc != CURLE_OK && rc != CURLE_HTTP_RETURNED_ERROR) return NetworkError(o.url + ": " + curl_easy_strerror(rc));
  if (code == 304) {
    // Only an answer to the question asked: a 304 without an If-None-Match means nothing.
    if (if_none_match.empty() || !UsableETag(if_none_match))
      return NetworkError(o.url + ": HTTP 304 to an unconditional request");
    ctx.r.not_modified = true;
    ctx.r.body.clear();
    return std::move(ctx.r);
  }
  PG_RETURN_IF_ERROR(client::HttpStatusToStatus(code, o.url));
  if (!UsableETag(ctx.r.etag)) ctx.r.etag.clear();
  return std::move(ctx.r);
}

}  // namespace patchgate::mirror
