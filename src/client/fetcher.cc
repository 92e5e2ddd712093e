#include "client/fetcher.h"

// libcurl is loaded when a request first needs it (dlopen), not at process start: the
// client's plain-HTTP requests never do (http_fetcher.h), and loading libcurl maps about
// 35 libraries. Only the declarations of curl.h are used here, no symbol of libcurl.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>

#include <algorithm>
#include <mutex>

#include "client/http_fetcher.h"
#include "core/memory_advice.h"

namespace patchgate::client {
namespace {
constexpr uint64_t kMaxReserveBytes = uint64_t{64} << 20;
}  // namespace

Result<std::string> Fetcher::FetchAll(const std::string& url, uint64_t max_bytes) {
  // Room for the whole body at once, reserved at its first bytes: the length the response
  // announced when the fetcher knows it, else max_bytes (the signed length when the
  // metadata states one); never more than max_bytes. Growing by doubling copies a 5 MB role
  // about twice over and touches twice the pages, which is most of a cold refresh's time;
  // untouched reserved pages cost no RSS, but a 64 MiB reservation for a 1 KiB role is a
  // mapping made and unmapped (a TLB flush on every core running the process's threads).
  std::string body;
  bool reserved = false;
  Status st = Fetch(url, max_bytes, [&](std::string_view chunk) {
    if (!reserved) {
      reserved = true;
      uint64_t announced = AnnouncedBodyLength();
      uint64_t room = announced > 0 ? std::min(announced, max_bytes) : std::min(max_bytes, kMaxReserveBytes);
      body.reserve(static_cast<size_t>(std::min(room, kMaxReserveBytes)));
      AdviseHugePages(body.data(), body.capacity());  // a multi-MB role: a few faults, not one per 4 KiB
    }
    body.append(chunk);
    return Status::OK();
  });
  if (!st.ok()) return st;
  if (body.capacity() - body.size() > (64u << 10)) body.shrink_to_fit();  // a short body under a large cap
  return body;
}

Status HttpStatusToStatus(long code, const std::string& url) {
  if (code >= 200 && code < 300) return Status::OK();
  if (code == 404) return NotFound("HTTP 404 for " + url);
  if (code == 403)
    return Forbidden("not entitled: the server refused " + url + " (HTTP 403) for this token; its organisation has "
                     "no entitlement to this product: ask the vendor to grant it");
  if (code == 401)
    return Unauthorized("token refused: the server did not accept the token for " + url +
                        " (HTTP 401); give a valid --token (or PATCHGATE_TOKEN)");
  return NetworkError("HTTP " + std::to_string(code) + " for " + url);
}

Status Fetcher::FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink) {
  if (offset != 0) return Unsupported("this fetcher cannot resume " + url);
  return Fetch(url, max_bytes, sink);
}

Status MemoryFetcher::FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink) {
  if (offset == 0) return Fetch(url, max_bytes, sink);
  ++requests[url];
  auto e = errors.find(url);
  if (e != errors.end()) return e->second;
  auto it = files.find(url);
  if (it == files.end()) return NotFound("404 for " + url);
  if (offset > it->second.size()) return Unsupported("range past the end of " + url);
  std::string_view body = std::string_view(it->second).substr(offset);
  if (body.size() > max_bytes) {
    PG_RETURN_IF_ERROR(sink(body.substr(0, max_bytes)));
    return TooLarge(url + " sent more than the maximum of " + std::to_string(max_bytes) + " bytes; stopped reading");
  }
  return sink(body);
}

Status MemoryFetcher::Fetch(const std::string& url, uint64_t max_bytes, const Sink& sink) {
  ++requests[url];
  auto e = errors.find(url);
  if (e != errors.end()) return e->second;
  auto it = files.find(url);
  if (it == files.end()) return NotFound("404 for " + url);
  std::string_view body = it->second;
  if (body.size() > max_bytes) {
    PG_RETURN_IF_ERROR(sink(body.substr(0, max_bytes)));
    return TooLarge(url + " sent more than the maximum of " + std::to_string(max_bytes) + " bytes; stopped reading");
  }
  return sink(body);
}

namespace {

// The libcurl functions the fetcher calls, looked up once in libcurl.so.4.
struct CurlApi {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  CURLcode (*easy_perform)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

Result<const CurlApi*> LoadCurl() {
  static const Result<const CurlApi*> loaded = []() -> Result<const CurlApi*> {
    void* h = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      return Unavailable(std::string("cannot load libcurl.so.4 (needed for https:// URLs and proxies): ") +
                         (e ? e : "unknown error") + "; install the package libcurl4");
    }
    static CurlApi api;
    std::string missing;
    auto get = [&](auto& fn, const char* name) {
      void* p = ::dlsym(h, name);
      if (!p) missing += std::string(missing.empty() ? "" : ", ") + name;
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    };
    get(api.global_init, "curl_global_init");
    get(api.easy_init, "curl_easy_init");
    get(api.easy_cleanup, "curl_easy_cleanup");
    get(api.easy_reset, "curl_easy_reset");
    get(api.easy_perform, "curl_easy_perform");
    get(api.easy_strerror, "curl_easy_strerror");
    get(api.easy_setopt, "curl_easy_setopt");
    get(api.easy_getinfo, "curl_easy_getinfo");
    get(api.slist_append, "curl_slist_append");
    get(api.slist_free_all, "curl_slist_free_all");
    if (!missing.empty())
      return Unavailable("libcurl.so.4 lacks " + missing + "; install a current libcurl4 package");
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return Internal("libcurl could not be initialised");
    return &api;
  }();
  return loaded;
}

class CurlFetcher : public Fetcher {
 public:
  explicit CurlFetcher(HttpOptions o) : o_(std::move(o)) {}
  ~CurlFetcher() override {
    if (headers_) api_->slist_free_all(headers_);
    if (curl_) api_->easy_cleanup(curl_);
  }

  Status Fetch(const std::string& url, uint64_t max_bytes, const Sink& sink) override {
    return FetchFrom(url, 0, max_bytes, sink);
  }

  Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink) override {
    if (!api_) {
      PG_ASSIGN_OR_RETURN(api_, LoadCurl());
    }
    if (!curl_) curl_ = api_->easy_init();
    if (!curl_) return Internal("libcurl could not be initialised");
    struct Ctx {
      const Sink* sink;
      uint64_t max, received = 0;
      Status error;
      bool too_large = false;
    } ctx{&sink, max_bytes, 0, Status::OK(), false};
    auto write = +[](char* data, size_t, size_t n, void* p) -> size_t {
      auto* c = static_cast<Ctx*>(p);
      uint64_t room = c->max - c->received;
      size_t take = n;
      if (n > room) {
        take = static_cast<size_t>(room);
        c->too_large = true;
      }
      if (take > 0) {
        Status st = (*c->sink)(std::string_view(data, take));
        if (!st.ok()) {
          c->error = st;
          return 0;
        }
        c->received += take;
      }
      return c->too_large ? 0 : n;  // returning less than n aborts the transfer
    };
    api_->easy_reset(curl_);
    api_->easy_setopt(curl_, CURLOPT_URL, url.c_str());
    api_->easy_setopt(curl_, CURLOPT_WRITEFUNCTION, write);
    api_->easy_setopt(curl_, CURLOPT_WRITEDATA, &ctx);
    api_->easy_setopt(curl_, CURLOPT_BUFFERSIZE, 256L << 10);  // fewer reads and callbacks for large roles
    api_->easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    api_->easy_setopt(curl_, CURLOPT_FAILONERROR, 1L);  // no error-page bodies into the sink
    api_->easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
    api_->easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    api_->easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, o_.connect_timeout_seconds);
    api_->easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, o_.low_speed_bytes);
    api_->easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, o_.low_speed_seconds);
    api_->easy_setopt(curl_, CURLOPT_USERAGENT, o_.user_agent.c_str());
    api_->easy_setopt(curl_, CURLOPT_ACCEPT_ENCODING, nullptr);  // no decompression bombs
    if (offset > 0) api_->easy_setopt(curl_, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(offset));
    if (!o_.bearer_token.empty()) {
      if (!headers_) headers_ = api_->slist_append(nullptr, ("Authorization: Bearer " + o_.bearer_token).c_str());
      api_->easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    }
    CURLcode rc = api_->easy_perform(curl_);
    long code = 0;
    api_->easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &code);
    if (!ctx.error.ok()) return ctx.error;
    if (offset > 0 && (rc == CURLE_RANGE_ERROR || (rc == CURLE_OK && code != 206)))
      return Unsupported(url + ": the server did not resume at byte " + std::to_string(offset));
    if (ctx.too_large)
      return TooLarge(url + " sent more than the maximum of " + std::to_string(max_bytes) + " bytes; stopped reading");
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return Status(ErrorCode::kTimeout, url + ": too slow (under " + std::to_string(o_.low_speed_bytes) + " B/s for " +
                                             std::to_string(o_.low_speed_seconds) + " s) or timed out");
    if (rc != CURLE_OK && rc != CURLE_HTTP_RETURNED_ERROR) return NetworkError(url + ": " + api_->easy_strerror(rc));
    return HttpStatusToStatus(code, url);
  }

 private:
  HttpOptions o_;
  const CurlApi* api_ = nullptr;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
};

// Each request to the fetcher that can take it: the plain one for http:// without a
// proxy, libcurl otherwise. Both are made on first use.
class RoutingFetcher : public Fetcher {
 public:
  explicit RoutingFetcher(HttpOptions o) : o_(std::move(o)) {}
  Status Fetch(const std::string& url, uint64_t max_bytes, const Sink& sink) override {
    current_ = For(url);
    return current_->Fetch(url, max_bytes, sink);
  }
  Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink) override {
    current_ = For(url);
    return current_->FetchFrom(url, offset, max_bytes, sink);
  }
  uint64_t AnnouncedBodyLength() const override { return current_ ? current_->AnnouncedBodyLength() : 0; }

 private:
  Fetcher* For(const std::string& url) {
    if (!ProxyVariableSet() && ParseHttpUrl(url).ok()) {
      if (!plain_) plain_ = NewPlainHttpFetcher(o_);
      return plain_.get();
    }
    if (!curl_) curl_ = NewCurlFetcher(o_);
    return curl_.get();
  }
  HttpOptions o_;
  std::unique_ptr<Fetcher> plain_, curl_;
  Fetcher* current_ = nullptr;  // the one the request being made went to
};

}  // namespace

std::unique_ptr<Fetcher> NewCurlFetcher(const HttpOptions& options) { return std::make_unique<CurlFetcher>(options); }

std::unique_ptr<Fetcher> NewFetcher(const HttpOptions& options) { return std::make_unique<RoutingFetcher>(options); }

}  // namespace patchgate::client
