// The client's own HTTP/1.1 fetcher for plain `http://` URLs, so that a refresh does not
// start by loading libcurl and the ~35 libraries it pulls in (most of a short client run
// was the dynamic loader mapping them). It speaks only what the client needs: GET, Range
// for a resumed download, bodies framed by Content-Length, chunked or the end of the
// connection, and one kept-alive connection reused for the next request to the same host.
// It follows no redirects (as the libcurl fetcher), sends no Accept-Encoding, and reads
// the response with the strict parser of http_response.h under named caps, with the same
// connect and slow-retrieval timeouts as the libcurl fetcher (HttpOptions).
//
// NewFetcher (fetcher.h) routes: this fetcher for `http://` URLs it can parse when no
// proxy variable applies; libcurl, loaded on first use, for `https://`, proxies and any
// URL this one does not take. One thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "client/fetcher.h"
#include "client/http_response.h"

namespace patchgate::client {

// An `http://` URL split for a request. Only the shapes this fetcher sends as they are:
// a host name or IPv4 address of letters, digits, '-', '.' and '_', or a bracketed IPv6
// address; an optional port 1-65535; a path and query of visible ASCII with no "." or
// ".." segment (libcurl would rewrite those) and no user name or password.
struct HttpUrl {
  std::string host;         // for name resolution (IPv6 without brackets)
  std::string host_header;  // the Host field: host as written, ":port" when given
  uint16_t port = 80;
  std::string target;       // origin form: "/path?query" (fragment dropped)
};
// kUnsupported for a URL of another scheme or shape (libcurl takes it); kInvalidArgument
// for an http:// URL with a control byte or space (never sent: header injection).
Result<HttpUrl> ParseHttpUrl(std::string_view url);

// Whether libcurl would look for a proxy for an http:// URL in the environment: it reads
// http_proxy (lower case only), then all_proxy and ALL_PROXY (libcurl-env(3)). When any
// is set, the request goes to libcurl, which applies it and no_proxy/NO_PROXY as before.
bool ProxyVariableSet();

std::unique_ptr<Fetcher> NewPlainHttpFetcher(const HttpOptions& options, const HttpResponseLimits& limits = {});

}  // namespace patchgate::client
