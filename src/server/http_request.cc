#include "server/http_request.h"

#include <algorithm>
#include <cctype>

#include "core/text.h"

namespace patchgate::server {

std::optional<std::string_view> RequestHead::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return std::string_view(v);
  return std::nullopt;
}

bool RequestHead::KeepAlive() const {
  auto c = Header("connection");
  std::string v = c ? std::string(*c) : "";
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (version_minor == 0) return v.find("keep-alive") != std::string::npos;
  return v.find("close") == std::string::npos;
}

namespace {

bool IsTchar(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

ParseOutcome Error(int status, std::string reason) { return ParseOutcome{std::nullopt, ParseError{status, std::move(reason)}}; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

ParseOutcome ParseRequestHead(std::string_view buf, const HttpLimits& limits) {
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (buf.size() > limits.max_header_bytes) return Error(431, "request head over " + std::to_string(limits.max_header_bytes) + " bytes");
    size_t line_end = buf.find("\r\n");
    if ((line_end == std::string_view::npos ? buf.size() : line_end) > limits.max_request_line)
      return Error(414, "request line too long");
    return {};
  }
  if (end + 4 > limits.max_header_bytes) return Error(431, "request head over " + std::to_string(limits.max_header_bytes) + " bytes");
  std::string_view head = buf.substr(0, end + 2);  // each line ends with CRLF
  RequestHead r;
  r.head_length = end + 4;

  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  if (line.size() > limits.max_request_line) return Error(414, "request line too long");
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return Error(400, "malformed request line");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), [](unsigned char c) { return IsTchar(c); }))
    return Error(400, "malformed method");
  if (target.empty()) return Error(400, "empty request target");
  for (unsigned char c : target)
    if (c <= 0x20 || c >= 0x7f) return Error(400, "invalid byte in request target");
  if (version == "HTTP/1.1") r.version_minor = 1;
  else if (version == "HTTP/1.0") r.version_minor = 0;
  else if (version.substr(0, 5) == "HTTP/") return Error(505, "HTTP version not supported");
  else return Error(400, "malformed HTTP version");
  r.method = std::string(method);
  r.target = std::string(target);

  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    std::string_view h = head.substr(pos, e - pos);
    pos = e + 2;
    if (h.empty()) break;
    if (h.front() == ' ' || h.front() == '\t') return Error(400, "obsolete header line folding");
    if (h.find('\n') != std::string_view::npos || h.find('\r') != std::string_view::npos)
      return Error(400, "bare CR or LF in a header");
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return Error(400, "malformed header");
    std::string name(h.substr(0, colon));
    if (!std::all_of(name.begin(), name.end(), [](unsigned char c) { return IsTchar(c); }))
      return Error(400, "malformed header name");  // also refuses "Name :" (space before colon)
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string_view value = Trim(h.substr(colon + 1));
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return Error(400, "control byte in header value");
    if (r.headers.size() >= limits.max_headers) return Error(431, "more than " + std::to_string(limits.max_headers) + " headers");
    r.headers.emplace_back(std::move(name), std::string(value));
  }
  if (pos < head.size()) return Error(400, "malformed header block");
  if (head.find('\n') != std::string_view::npos) {
    // Every LF must be part of a CRLF.
    for (size_t i = 0; i < head.size(); ++i)
      if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) return Error(400, "bare LF");
  }

  // Smuggling and bodies.
  std::optional<std::string> cl;
  bool te = false;
  for (const auto& [k, v] : r.headers) {
    if (k == "transfer-encoding") te = true;
    if (k == "content-length") {
      if (v.empty() || !std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); }))
        return Error(400, "invalid Content-Length");
      if (cl && *cl != v) return Error(400, "conflicting Content-Length headers");
      cl = v;
    }
  }
  if (cl && te) return Error(400, "Content-Length together with Transfer-Encoding (request smuggling)");
  if (te) return Error(501, "Transfer-Encoding on a request is not supported");
  if (cl && cl->find_first_not_of('0') != std::string::npos) return Error(400, "this server takes no request bodies");
  if (r.version_minor == 1 && !r.Header("host")) return Error(400, "HTTP/1.1 request without Host");
  if (std::count_if(r.headers.begin(), r.headers.end(), [](const auto& h) { return h.first == "host"; }) > 1)
    return Error(400, "more than one Host header");
  return ParseOutcome{std::move(r), std::nullopt};
}

namespace {

Status CheckSegments(const std::string& rel) {
  if (rel.empty()) return InvalidArgument("empty path");
  for (unsigned char c : rel)
    if (c < 0x20 || c == 0x7f || c == '\\' || c == '%') return InvalidArgument("forbidden byte in path");
  size_t start = 0;
  for (;;) {
    size_t pos = rel.find('/', start);
    std::string_view seg(rel.data() + start, (pos == std::string::npos ? rel.size() : pos) - start);
    if (seg.empty() || seg == "." || seg == "..") return InvalidArgument("path traversal or empty segment");
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return Status::OK();
}

}  // namespace

Result<std::string> OriginForm(const RequestHead& req) {
  std::string_view t = req.target;
  if (!t.empty() && t.front() == '/') return std::string(t);
  std::string_view rest;
  auto lower_starts = [&](std::string_view p) {
    if (t.size() < p.size()) return false;
    for (size_t i = 0; i < p.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(t[i])) != p[i]) return false;
    return true;
  };
  if (lower_starts("http://")) rest = t.substr(7);
  else if (lower_starts("https://")) rest = t.substr(8);
  else return InvalidArgument("request target must be an absolute path or an absolute URL");
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos)
    return InvalidArgument("malformed authority in the request target");
  auto host = req.Header("host");
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  };
  if (!host || !same(*host, authority)) return InvalidArgument("absolute-form request target for another host");
  return std::string(path);
}

bool HasNoDotSegment(std::string_view rel) {
  size_t start = 0;
  for (;;) {
    size_t slash = rel.find('/', start), enc = rel.find("%2F", start);
    size_t end = std::min(slash, enc);
    std::string_view seg = rel.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (seg == "." || seg == "..") return false;
    if (end == std::string_view::npos) return true;
    start = end + (end == slash ? 1 : 3);
  }
}

Result<NormalizedPath> NormalizeTarget(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.empty() || path.front() != '/') return InvalidArgument("request target must be an absolute path");
  PG_ASSIGN_OR_RETURN(std::string decoded, patchgate::PercentDecode(path));
  NormalizedPath n;
  if (decoded == "/healthz") {
    n.area = Area::kHealth;
    return n;
  }
  if (decoded == "/metrics") {
    n.area = Area::kMetrics;
    return n;
  }
  auto starts = [&](std::string_view p) { return decoded.compare(0, p.size(), p) == 0; };
  if (starts("/ack/")) {
    n.area = Area::kAck;
    n.rel = decoded.substr(5);
    if (n.rel.empty() || n.rel.size() > 128 ||
        !std::all_of(n.rel.begin(), n.rel.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-'; }))
      return InvalidArgument("malformed acknowledgement token");
    return n;
  }
  if (starts("/metadata/")) {
    std::string rel = decoded.substr(10);
    PG_RETURN_IF_ERROR(CheckSegments(rel));
    // Metadata files are flat; a role name's '/' is percent-encoded in the file name.
    std::string flat;
    for (char c : rel) flat += c == '/' ? std::string("%2F") : std::string(1, c);
    n.area = Area::kMetadata;
    n.rel = flat;
    return n;
  }
  if (starts("/targets/")) {
    n.rel = decoded.substr(9);
    PG_RETURN_IF_ERROR(CheckSegments(n.rel));
    n.area = Area::kTargets;
    return n;
  }
  return NotFound("no such resource");
}

bool IfNoneMatchHits(std::string_view h, std::string_view etag) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  if (etag.size() < 2 || h.size() > 8192) return false;
  h = trim(h);
  if (h == "*") return true;
  while (!h.empty()) {
    size_t comma = h.find(',');
    std::string_view tag = trim(h.substr(0, comma));
    h = comma == std::string_view::npos ? std::string_view() : h.substr(comma + 1);
    if (tag.size() >= 2 && (tag[0] == 'W' || tag[0] == 'w') && tag[1] == '/') tag.remove_prefix(2);
    if (tag.size() < 2 || tag.front() != '"' || tag.back() != '"') return false;  // malformed list
    if (tag == etag) return true;
  }
  return false;
}

}  // namespace patchgate::server
