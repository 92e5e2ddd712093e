// Network seam of the client: fetch a URL, streaming the body to a sink, never reading
// more than a stated maximum. CurlFetcher is the real implementation (libcurl, bearer
// token, connect and slow-retrieval timeouts); NewFetcher adds the client's own plain-HTTP
// fetcher in front of it (http_fetcher.h); MemoryFetcher serves from a map for tests
// and can inject faults. A Fetcher may be used from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate::client {

using Sink = std::function<Status(std::string_view chunk)>;

class Fetcher {
 public:
  virtual ~Fetcher() = default;
  // Streams the body of `url` into `sink`. Errors: kNotFound (HTTP 404), kForbidden (403:
  // "not entitled"), kUnauthorized (401: "token refused"), kTooLarge
  // (the server sent more than max_bytes: reading stops at the cap — endless-data attack),
  // kTimeout (slow retrieval), kNetwork; or the sink's own error.
  virtual Status Fetch(const std::string& url, uint64_t max_bytes, const Sink& sink) = 0;

  // Like Fetch, but asks for the body from byte `offset` on (HTTP Range) and streams only
  // those bytes; max_bytes counts from offset. kUnsupported when the server ignores the
  // range (the caller then starts over from 0). The default supports only offset 0.
  virtual Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink);

  // Convenience: the whole body as a string. Virtual so that a fetcher holding the body
  // already (the mirror's metadata prefetch) hands it over without a copy.
  virtual Result<std::string> FetchAll(const std::string& url, uint64_t max_bytes);
  // Inside a sink call: the length the response being received announced for its body
  // (Content-Length), or 0 when this fetcher does not know it. A hint for sizing buffers
  // (FetchAll), never trusted as a limit: max_bytes stays the cap.
  virtual uint64_t AnnouncedBodyLength() const { return 0; }
};

struct HttpOptions {
  std::string bearer_token;            // sent as "Authorization: Bearer <token>" when set
  long connect_timeout_seconds = 10;
  // Slow-retrieval defence: abort when fewer than low_speed_bytes per second arrive for
  // low_speed_seconds.
  long low_speed_bytes = 1024;
  long low_speed_seconds = 20;
  std::string user_agent = "patchgate-client/0.1";
};

// libcurl for every URL (loaded with dlopen on the first request: kUnavailable, naming the
// package, when it cannot be).
std::unique_ptr<Fetcher> NewCurlFetcher(const HttpOptions& options);

// The client's fetcher: its own HTTP/1.1 fetcher (http_fetcher.h) for plain http:// URLs
// when no proxy variable applies; libcurl for https://, proxies and any other URL.
std::unique_ptr<Fetcher> NewFetcher(const HttpOptions& options);

// The Status for an HTTP response code: OK for 2xx, kNotFound for 404, kForbidden ("not
// entitled") for 403, kUnauthorized ("token refused") for 401, kNetwork otherwise.
Status HttpStatusToStatus(long code, const std::string& url);

// Test double: serves bodies from memory.
class MemoryFetcher : public Fetcher {
 public:
  std::map<std::string, std::string> files;  // url -> body
  std::map<std::string, Status> errors;      // url -> injected error
  std::map<std::string, int> requests;       // url -> number of requests
  Status Fetch(const std::string& url, uint64_t max_bytes, const Sink& sink) override;
  Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink) override;
};

}  // namespace patchgate::client
