#include "client/http_fetcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace patchgate::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

// An error response's body is read and dropped (so the connection can carry the next
// request: each refresh ends with a 404 for the next root) only up to this size.
constexpr uint64_t kMaxDiscardBytes = 64 * 1024;
constexpr size_t kReadBufferBytes = 256 * 1024;  // fewer reads for a multi-MB role
// How long a blocking send or recv waits before the slow-retrieval rule is checked again.
constexpr long kWaitTickMs = 200;

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

bool HasDotSegment(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg == "." || seg == "..") return true;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return false;
}

// A bearer token goes into a header line: visible ASCII only (RFC 6750 b64token is
// narrower still), never CR or LF.
bool TokenIsSendable(std::string_view token) {
  for (char c : token)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  return true;
}

// Curl's low-speed rule: fail when fewer than `bytes` per second arrived on average over
// a window of `seconds`. Off when either is 0 or less.
class SpeedWatch {
 public:
  SpeedWatch(long bytes, long seconds) : bytes_(bytes), seconds_(seconds) { Restart(); }
  void Restart() {
    start_ = SteadyClock::now();
    got_ = 0;
  }
  void Got(size_t n) { got_ += n; }
  // False once a whole window has passed with too few bytes.
  bool Check() {
    if (bytes_ <= 0 || seconds_ <= 0) return true;
    if (SteadyClock::now() < start_ + std::chrono::seconds(seconds_)) return true;
    if (got_ < static_cast<uint64_t>(bytes_) * static_cast<uint64_t>(seconds_)) return false;
    Restart();
    return true;
  }

 private:
  long bytes_, seconds_;
  SteadyClock::time_point start_;
  uint64_t got_ = 0;
};

class PlainHttpFetcher : public Fetcher {
 public:
  PlainHttpFetcher(HttpOptions o, HttpResponseLimits limits) : o_(std::move(o)), limits_(limits) {}
  ~PlainHttpFetcher() override { Close(); }

  Status Fetch(const std::string& url, uint64_t max_bytes, const Sink& sink) override {
    return FetchFrom(url, 0, max_bytes, sink);
  }

  uint64_t AnnouncedBodyLength() const override { return announced_; }

  Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const Sink& sink) override {
    PG_ASSIGN_OR_RETURN(HttpUrl u, ParseHttpUrl(url));
    if (!TokenIsSendable(o_.bearer_token))
      return InvalidArgument("the token has a space or control character; give the token exactly as issued");
    std::string request = "GET " + u.target + " HTTP/1.1\r\nHost: " + u.host_header + "\r\nUser-Agent: " +
                          o_.user_agent + "\r\nAccept: */*\r\n";
    if (!o_.bearer_token.empty()) request += "Authorization: Bearer " + o_.bearer_token + "\r\n";
    if (offset > 0) request += "Range: bytes=" + std::to_string(offset) + "-\r\n";
    request += "\r\n";
    std::string key = u.host + " " + std::to_string(u.port);
    for (int attempt = 0;; ++attempt) {
      bool reused = fd_ >= 0 && key_ == key;
      if (!reused) {
        Close();
        PG_ASSIGN_OR_RETURN(fd_, Connect(url, u));
        key_ = key;
      }
      bool answered = false;
      Status st = Exchange(url, request, offset, max_bytes, sink, &answered);
      // A kept-alive connection the server closed in the meantime: one new connection.
      if (!st.ok() && reused && !answered && attempt == 0 && st.code() == ErrorCode::kNetwork) {
        Close();
        continue;
      }
      return st;
    }
  }

 private:
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    key_.clear();
  }

  Status TimedOut(const std::string& url) const {
    return Status(ErrorCode::kTimeout, url + ": too slow (under " + std::to_string(o_.low_speed_bytes) + " B/s for " +
                                           std::to_string(o_.low_speed_seconds) + " s) or timed out");
  }

  Result<int> Connect(const std::string& url, const HttpUrl& u) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(u.port);
    int rc = ::getaddrinfo(u.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return NetworkError(url + ": cannot resolve host " + u.host + ": " + ::gai_strerror(rc));
    // 0 means libcurl's default connect timeout (300 s), as for the libcurl fetcher.
    long connect_seconds = o_.connect_timeout_seconds > 0 ? o_.connect_timeout_seconds : 300;
    auto deadline = SteadyClock::now() + std::chrono::seconds(connect_seconds);
    std::string last = "no address";
    int fd = -1;
    for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
      int s = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (s < 0) {
        last = std::strerror(errno);
        continue;
      }
      if (::connect(s, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = std::strerror(errno);
        ::close(s);
        continue;
      }
      pollfd p{s, POLLOUT, 0};
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count());
      int n = left > 0 ? ::poll(&p, 1, left) : 0;
      while (n < 0 && errno == EINTR) n = ::poll(&p, 1, std::max(1, left));
      int err = 0;
      socklen_t len = sizeof err;
      if (n <= 0) {
        last = n == 0 ? "timed out after " + std::to_string(connect_seconds) + " s" : std::strerror(errno);
        ::close(s);
        if (n == 0) break;
        continue;
      }
      if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        last = std::strerror(err ? err : errno);
        ::close(s);
        continue;
      }
      int one = 1;
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // Connected: from here the socket blocks, so a read that must wait sleeps in recv
      // itself (no EAGAIN, poll and second recv per wait: a mirror's sync makes tens of
      // thousands of requests). With the slow-retrieval rule on, a send or recv gives up
      // waiting every kWaitTickMs so the rule is checked while the server is silent.
      int flags = ::fcntl(s, F_GETFL);
      if (flags < 0 || ::fcntl(s, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        last = std::strerror(errno);
        ::close(s);
        continue;
      }
      if (o_.low_speed_bytes > 0 && o_.low_speed_seconds > 0) {
        timeval tick{0, kWaitTickMs * 1000};
        ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
        ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tick, sizeof tick);
      }
      fd = s;
    }
    ::freeaddrinfo(res);
    if (fd < 0) {
      std::string what = url + ": cannot connect to " + u.host_header + ": " + last;
      if (last.rfind("timed out", 0) == 0) return Status(ErrorCode::kTimeout, what);
      return NetworkError(what);
    }
    return fd;
  }

  Status Exchange(const std::string& url, const std::string& request, uint64_t offset, uint64_t max_bytes,
                  const Sink& sink, bool* answered) {
    SpeedWatch speed(o_.low_speed_bytes, o_.low_speed_seconds);
    for (size_t sent = 0; sent < request.size();) {
      ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {  // a wait tick passed
        if (!speed.Check()) return Drop(TimedOut(url));
        continue;
      }
      if (n < 0) return Drop(NetworkError(url + ": cannot send the request: " + std::strerror(errno)));
      sent += static_cast<size_t>(n);
    }

    HttpResponseParser parser(limits_);
    uint64_t received = 0, discarded = 0;
    bool head_checked = false, discarding = false, too_large = false;
    Status verdict = Status::OK();     // the answer once the head is known
    Status sink_error = Status::OK();  // the sink's own error, returned as it is
    const Status kStopDiscarding = Internal("stop");
    auto on_body = [&](std::string_view chunk) -> Status {
      if (discarding) {
        discarded += chunk.size();
        return discarded > kMaxDiscardBytes ? kStopDiscarding : Status::OK();
      }
      if (received == 0)
        announced_ = parser.head().framing == HttpResponseHead::Framing::kLength ? parser.head().content_length : 0;
      uint64_t room = max_bytes - received;
      if (chunk.size() > room) {
        too_large = true;
        if (room > 0) sink_error = sink(chunk.substr(0, static_cast<size_t>(room)));
        received = max_bytes;
        return sink_error.ok() ? TooLarge("over the cap") : sink_error;
      }
      received += chunk.size();
      sink_error = sink(chunk);
      return sink_error;
    };
    if (!buf_) buf_.reset(new char[kReadBufferBytes]);  // not zeroed: only what recv writes is touched
    for (;;) {
      // Once the head framed the body by its length, a read waits for the rest of the body
      // (up to the buffer; never past the body, which would wait for bytes that no
      // request of ours asked for): one return from recv per buffer instead of one per
      // segment the kernel received. A wait tick still ends it with what arrived.
      size_t want = kReadBufferBytes;
      int flags = 0;
      if (parser.head_done() && parser.head().framing == HttpResponseHead::Framing::kLength && !parser.done()) {
        uint64_t left = parser.head().content_length - parser.body_bytes();
        if (left > 0 && left < want) want = static_cast<size_t>(left);
        flags = MSG_WAITALL;
      }
      ssize_t n = ::recv(fd_, buf_.get(), want, flags);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {  // a wait tick passed
        if (!speed.Check()) return Drop(TimedOut(url));
        continue;
      }
      if (n < 0) return Drop(NetworkError(url + ": " + std::strerror(errno)));
      if (n == 0) {
        Status st = parser.Eof();
        if (!st.ok()) return Drop(discarding ? verdict : NetworkError(url + ": " + st.message()));
        Close();  // the server closed it: nothing to reuse
        return verdict;
      }
      *answered = true;
      speed.Got(static_cast<size_t>(n));
      if (!speed.Check()) return Drop(TimedOut(url));  // a trickle under the rule
      std::string_view data(buf_.get(), static_cast<size_t>(n));
      while (!data.empty()) {
        auto used = parser.Feed(data, on_body);
        if (!used.ok()) {
          if (!sink_error.ok()) return Drop(sink_error);
          if (too_large)
            return Drop(TooLarge(url + " sent more than the maximum of " + std::to_string(max_bytes) +
                                 " bytes; stopped reading"));
          if (discarding) return Drop(verdict);
          return Drop(Status(used.status().code(), url + ": " + used.status().message()));
        }
        data.remove_prefix(*used);
        if (parser.head_done() && !head_checked) {
          head_checked = true;
          verdict = CheckHead(url, parser.head(), offset);
          if (!verdict.ok()) {
            const auto& h = parser.head();
            bool small = (h.framing == HttpResponseHead::Framing::kLength && h.content_length <= kMaxDiscardBytes) ||
                         h.framing == HttpResponseHead::Framing::kChunked ||
                         h.framing == HttpResponseHead::Framing::kNone;
            if (!small || !h.keep_alive) return Drop(verdict);
            discarding = true;
          }
        }
        if (parser.done()) {
          // Bytes after the response answer no request of ours: the connection is not reused.
          if (!data.empty() || !parser.head().keep_alive) Close();
          return verdict;
        }
      }
    }
  }

  // The status of a response head: OK when its body is what was asked for.
  static Status CheckHead(const std::string& url, const HttpResponseHead& h, uint64_t offset) {
    if (offset > 0) {
      if (h.status == 206 && h.range_first == offset) return Status::OK();
      if (h.status == 200 || h.status == 206 || h.status == 416)
        return Unsupported(url + ": the server did not resume at byte " + std::to_string(offset));
    }
    return HttpStatusToStatus(h.status, url);
  }

  Status Drop(Status st) {
    Close();
    return st;
  }

  HttpOptions o_;
  HttpResponseLimits limits_;
  int fd_ = -1;
  std::string key_;  // "host port" of fd_
  std::unique_ptr<char[]> buf_;
  uint64_t announced_ = 0;  // Content-Length of the body being delivered (0: not framed by length)
};

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url) {
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return InvalidArgument("the URL has a space or control character: percent-encode it");
  if (url.size() < 7 || (url.substr(0, 7) != "http://" && url.substr(0, 7) != "HTTP://"))
    return Unsupported("not an http:// URL");
  std::string_view rest = url.substr(7);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) return Unsupported("a URL with a user name");
  HttpUrl u;
  std::string_view host, port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return Unsupported("an unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Unsupported("junk after an IPv6 address");
      port = after.substr(1);
      if (port.empty()) return Unsupported("an empty port");
    }
    in6_addr a6;
    if (host.empty() || ::inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1)
      return Unsupported("not an IPv6 address");
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return Unsupported("an empty port");
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), IsHostChar)) return Unsupported("an unusual host name");
  }
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return Unsupported("a port that is not a number");
    unsigned long p = std::strtoul(std::string(port).c_str(), nullptr, 10);
    if (p == 0 || p > 65535) return Unsupported("a port out of range");
    u.port = static_cast<uint16_t>(p);
  }
  u.host = std::string(host);
  u.host_header = std::string(authority);
  path = path.substr(0, path.find('#'));
  if (path.empty() || path[0] == '?') u.target = "/" + std::string(path);
  else u.target = std::string(path);
  for (char c : u.target)
    if (static_cast<unsigned char>(c) >= 0x7f) return Unsupported("a path with non-ASCII bytes");
  if (HasDotSegment(u.target.substr(0, u.target.find('?')))) return Unsupported("a path with a dot segment");
  return u;
}

bool ProxyVariableSet() {
  return std::getenv("http_proxy") || std::getenv("all_proxy") || std::getenv("ALL_PROXY");
}

std::unique_ptr<Fetcher> NewPlainHttpFetcher(const HttpOptions& options, const HttpResponseLimits& limits) {
  return std::make_unique<PlainHttpFetcher>(options, limits);
}

}  // namespace patchgate::client
