// HTTP/1.1 request heads parsed from a buffer (fuzzable), with every limit named, and
// request-target normalisation that refuses traversal in any encoding. Pure functions;
// thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace patchgate::server {

struct HttpLimits {
  size_t max_request_line = 8 * 1024;
  size_t max_header_bytes = 64 * 1024;  // the whole head, request line included
  size_t max_headers = 100;
};

struct RequestHead {
  std::string method;
  std::string target;  // as sent
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  size_t head_length = 0;  // bytes consumed, final CRLF included

  // First value of a header (name lower-case), if present.
  std::optional<std::string_view> Header(std::string_view name) const;
  bool KeepAlive() const;
};

struct ParseError {
  int http_status;  // 400, 414, 431, 501, 505
  std::string reason;
};

// Parses one request head from the start of `buf`.
//   - complete: returns the head;
//   - incomplete (no final CRLF yet, and within limits): returns std::nullopt;
//   - invalid or over a limit: returns ParseError.
// Refuses request smuggling (Content-Length with Transfer-Encoding, several differing
// Content-Length values), obsolete line folding, bodies on GET/HEAD, and bare CR/LF misuse.
struct ParseOutcome {
  std::optional<RequestHead> head;
  std::optional<ParseError> error;
};
ParseOutcome ParseRequestHead(std::string_view buf, const HttpLimits& limits);

// Where a request goes after normalisation.
enum class Area { kMetadata, kTargets, kHealth, kMetrics, kAck, kOther };
struct NormalizedPath {
  Area area = Area::kOther;
  // kMetadata: the flat file name under metadata/ (role '/' kept percent-encoded, e.g.
  // "3.products%2Foffice.json"); kTargets: the relative path under targets/
  // ("office/<sha256>.setup.exe"); kAck: the token.
  std::string rel;
};
// Percent-decodes once and refuses '..' or '.' segments, backslashes, NUL and control
// bytes, empty segments, double encoding (a '%' left after decoding), and anything that
// is not under a known prefix. Query strings are ignored.
Result<NormalizedPath> NormalizeTarget(std::string_view target);

// The request target in origin form ("/path?query"). An absolute-form target
// ("http://host:port/path", RFC 9112 §3.2.2) is accepted only for our own host: its
// authority must equal the Host header (case-insensitive); kInvalidArgument otherwise.
Result<std::string> OriginForm(const RequestHead& req);

// The property NormalizeTarget guarantees of `rel`: no path segment (split at '/' and at a
// metadata name's encoded "%2F") is "." or "..". A segment that only starts with dots
// ("..r") is a legal file name.
bool HasNoDotSegment(std::string_view rel);

// If-None-Match (RFC 9110 §13.1.2): whether the header's list names `etag` (a strong tag
// in quotes), by weak comparison (a W/ prefix is ignored), or is "*". A malformed list
// matches nothing (the full response is sent).
bool IfNoneMatchHits(std::string_view header, std::string_view etag);

}  // namespace patchgate::server
