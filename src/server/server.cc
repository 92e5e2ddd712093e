#include "server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "server/audit_log.h"
#include "server/catalogue.h"
#include "server/metrics.h"

namespace patchgate::server {

namespace {

// ---- connections: plain TCP or TLS over a blocking socket with timeouts -------------

class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  virtual ~Conn() { ::close(fd_); }
  // Like read(2): >0 bytes, 0 on EOF, -1 on error or timeout (errno EAGAIN).
  virtual ssize_t Read(char* buf, size_t n) = 0;
  // more_follows: a SendFile() of at least one byte comes next, so the data may wait to
  // leave in the same TCP segment as the body (MSG_MORE) instead of a packet of its own.
  virtual bool Write(std::string_view data, bool more_follows) = 0;
  bool WriteAll(std::string_view data) { return Write(data, false); }
  // Sends [offset, offset+len) of `file_fd`; returns bytes sent (short on error).
  virtual uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len) = 0;
  int fd() const { return fd_; }

 protected:
  int fd_;
};

class PlainConn : public Conn {
 public:
  using Conn::Conn;
  ssize_t Read(char* buf, size_t n) override {
    for (;;) {
      ssize_t r = ::recv(fd_, buf, n, 0);
      if (r < 0 && errno == EINTR) continue;
      return r;
    }
  }
  bool Write(std::string_view d, bool more_follows) override {
    int flags = MSG_NOSIGNAL | (more_follows ? MSG_MORE : 0);
    while (!d.empty()) {
      ssize_t w = ::send(fd_, d.data(), d.size(), flags);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      d.remove_prefix(static_cast<size_t>(w));
    }
    return true;
  }
  uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len) override {
    uint64_t sent = 0;
    off_t off = static_cast<off_t>(offset);
    while (sent < len) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(len - sent, 1 << 30));
      ssize_t w = ::sendfile(fd_, file_fd, &off, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      sent += static_cast<uint64_t>(w);
    }
    return sent;
  }
};

class TlsConn : public Conn {
 public:
  TlsConn(int fd, SSL* ssl) : Conn(fd), ssl_(ssl) {}
  ~TlsConn() override {
    SSL_shutdown(ssl_);
    SSL_free(ssl_);
  }
  ssize_t Read(char* buf, size_t n) override {
    int r = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (r > 0) return r;
    int e = SSL_get_error(ssl_, r);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_SYSCALL) errno = EAGAIN;
    return -1;
  }
  bool Write(std::string_view d, bool /*more_follows*/) override {
    while (!d.empty()) {
      int w = SSL_write(ssl_, d.data(), static_cast<int>(std::min<size_t>(d.size(), 1 << 30)));
      if (w <= 0) {
        ERR_clear_error();
        return false;
      }
      d.remove_prefix(static_cast<size_t>(w));
    }
    return true;
  }
  uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len) override {
    std::string buf(256 * 1024, '\0');
    uint64_t sent = 0;
    while (sent < len) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(len - sent, buf.size()));
      ssize_t r = ::pread(file_fd, buf.data(), want, static_cast<off_t>(offset + sent));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (!WriteAll(std::string_view(buf.data(), static_cast<size_t>(r)))) break;
      sent += static_cast<uint64_t>(r);
    }
    return sent;
  }

 private:
  SSL* ssl_;
};

// ---- serve-time verification cache ------------------------------------------------

struct FileKey {
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns, ctime_ns;
  bool operator<(const FileKey& o) const {
    return std::tie(dev, ino, size, mtime_ns, ctime_ns) < std::tie(o.dev, o.ino, o.size, o.mtime_ns, o.ctime_ns);
  }
  bool operator==(const FileKey& o) const { return !(*this < o) && !(o < *this); }
};

FileKey KeyOf(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_size, int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
          int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
}

class VerifyCache {
 public:
  // The sha256 of the file behind `fd` as of `key`, hashed through that fd on a miss.
  Result<std::string> Sha256(int fd, const FileKey& key, Metrics* m) {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = cache_.find(key);
      if (it != cache_.end()) {
        ++m->verify_cache_hits;
        return it->second;
      }
    }
    ++m->verify_cache_misses;
    auto h = Hasher::Create("sha256");
    std::string buf(1 << 20, '\0');
    off_t off = 0;
    for (;;) {
      ssize_t r = ::pread(fd, buf.data(), buf.size(), off);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return IOError(std::string("cannot read target: ") + std::strerror(errno));
      if (r == 0) break;
      h->Update(std::string_view(buf.data(), static_cast<size_t>(r)));
      off += r;
    }
    std::string digest = h->FinalHex();
    struct stat after {};
    if (::fstat(fd, &after) != 0 || !(KeyOf(after) == key))
      return Unavailable("target changed while it was being verified");
    std::lock_guard<std::mutex> l(mu_);
    if (cache_.size() > 100000) cache_.clear();
    cache_[key] = digest;
    return digest;
  }

 private:
  std::mutex mu_;
  std::map<FileKey, std::string> cache_;
};

// A small map whose entries expire after a fixed time. Thread-safe.
template <typename V>
class TtlCache {
 public:
  explicit TtlCache(int ttl_ms) : ttl_(std::chrono::milliseconds(ttl_ms)) {}
  bool Get(const std::string& k, V* out) {
    if (ttl_.count() <= 0) return false;
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(k);
    if (it == map_.end() || std::chrono::steady_clock::now() > it->second.second) return false;
    *out = it->second.first;
    return true;
  }
  void Put(const std::string& k, const V& v) {
    if (ttl_.count() <= 0) return;
    std::lock_guard<std::mutex> l(mu_);
    if (map_.size() > 100000) map_.clear();
    map_[k] = {v, std::chrono::steady_clock::now() + ttl_};
  }

 private:
  std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::map<std::string, std::pair<V, std::chrono::steady_clock::time_point>> map_;
};

// ---- responses -----------------------------------------------------------------------

const char* Reason(int s) {
  switch (s) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "Error";
}

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

std::string Head(int status, const std::vector<std::pair<std::string, std::string>>& headers, uint64_t length,
                 bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  h += "Server: patchgate\r\n";
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += "Content-Length: " + std::to_string(length) + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  h += "\r\n";
  return h;
}

// Single byte range. Returns false for "serve the whole file" (absent, malformed or
// several ranges: ignored per RFC 9110), sets unsatisfiable for 416.
bool ParseRange(std::string_view v, uint64_t len, uint64_t* first, uint64_t* last, bool* unsatisfiable) {
  *unsatisfiable = false;
  if (v.substr(0, 6) != "bytes=") return false;
  v.remove_prefix(6);
  if (v.find(',') != std::string_view::npos) return false;
  size_t dash = v.find('-');
  if (dash == std::string_view::npos) return false;
  auto num = [](std::string_view s, uint64_t* out) {
    if (s.empty() || s.size() > 19) return false;
    uint64_t x = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      x = x * 10 + static_cast<uint64_t>(c - '0');
    }
    *out = x;
    return true;
  };
  std::string_view a = v.substr(0, dash), b = v.substr(dash + 1);
  uint64_t x = 0, y = 0;
  if (a.empty()) {  // suffix: last y bytes
    if (!num(b, &y)) return false;
    if (y == 0 || len == 0) {
      *unsatisfiable = true;
      return true;
    }
    *first = y >= len ? 0 : len - y;
    *last = len - 1;
    return true;
  }
  if (!num(a, &x)) return false;
  if (!b.empty()) {
    if (!num(b, &y) || y < x) return false;
  } else {
    y = UINT64_MAX;
  }
  if (x >= len) {
    *unsatisfiable = true;
    return true;
  }
  *first = x;
  *last = std::min(y, len - 1);
  return true;
}

bool ParseListen(const std::string& listen, sockaddr_in* addr) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  std::memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  if (inet_pton(AF_INET, host.c_str(), &addr->sin_addr) != 1) return false;
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) return false;
  int p = std::stoi(port);
  if (p > 65535) return false;
  addr->sin_port = htons(static_cast<uint16_t>(p));
  return true;
}

std::string Base64Decode(std::string_view in) {
  static const std::string kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    if (c == '=') break;
    auto p = kChars.find(c);
    if (p == std::string::npos) return "";
    val = (val << 6) + static_cast<int>(p);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

// ---- the server ------------------------------------------------------------------------

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions o, Store* store, Store* read_store)
      : o_(std::move(o)), store_(store), reads_(read_store ? read_store : store), catalogue_(o_.repo_dir),
        audit_(store, &metrics_, std::chrono::milliseconds(o_.audit_finish_ms)),
        auth_cache_(o_.auth_cache_ms), entitlement_cache_(o_.auth_cache_ms) {}
  ~ServerImpl() override {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
  }

  Status Init() {
    if (o_.tls_cert.empty() != o_.tls_key.empty()) return InvalidArgument("give both --tls-cert and --tls-key, or neither");
    if (!o_.tls_cert.empty()) {
      ssl_ctx_ = SSL_CTX_new(TLS_server_method());
      SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
      if (SSL_CTX_use_certificate_chain_file(ssl_ctx_, o_.tls_cert.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ssl_ctx_, o_.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(ssl_ctx_) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        return InvalidArgument(std::string("cannot use the TLS certificate/key: ") + buf);
      }
    }
    return catalogue_.Refresh();
  }

  Status Start() override {
    sockaddr_in addr{};
    if (!ParseListen(o_.listen, &addr)) return InvalidArgument("--listen must be IPv4:PORT, e.g. 127.0.0.1:8443");
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return Unavailable("cannot listen on " + o_.listen + ": " + std::strerror(errno));
    if (::listen(listen_fd_, 1024) != 0) return Unavailable(std::string("listen: ") + std::strerror(errno));
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    log::Info("serving", {{"listen", o_.listen}, {"port", std::to_string(port_)}, {"node", o_.node_name},
                          {"tls", ssl_ctx_ ? "on" : "off"}, {"targets", std::to_string(catalogue_.size())}});
    return Status::OK();
  }

  int port() const override { return port_; }

  void Run() override {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      int r = ::poll(&p, 1, 200);
      if (r <= 0) continue;
      sockaddr_in peer{};
      socklen_t plen = sizeof peer;
      int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (active_ >= o_.max_connections) {
          ::close(fd);
          continue;
        }
        ++active_;
      }
      char ip[INET_ADDRSTRLEN] = "";
      inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
      ++metrics_.connections_open;
      std::thread([this, fd, addr = std::string(ip)] {
        Serve(fd, addr);
        --metrics_.connections_open;
        std::lock_guard<std::mutex> l(mu_);
        --active_;
        drained_.notify_all();
      }).detach();
    }
    // Drain: in-flight responses finish; idle keep-alive connections close at their next read.
    std::unique_lock<std::mutex> l(mu_);
    drained_.wait_for(l, std::chrono::seconds(o_.drain_seconds), [&] { return active_ == 0; });
    l.unlock();
    if (!audit_.Flush()) log::Error("some download records could not be completed before the drain ended", {});
    log::Info("stopped", {{"node", o_.node_name}});
  }

  void Stop() override { stopping_ = true; }

 private:
  void SetTimeouts(int fd, int recv_seconds) {
    timeval rcv{recv_seconds, 0}, snd{o_.send_timeout_seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
  }

  void Serve(int fd, const std::string& remote) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SetTimeouts(fd, 1);
    std::unique_ptr<Conn> conn;
    if (ssl_ctx_) {
      SSL* ssl = SSL_new(ssl_ctx_);
      SSL_set_fd(ssl, fd);
      timeval hs{o_.header_timeout_seconds, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &hs, sizeof hs);
      if (SSL_accept(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        ::close(fd);
        return;
      }
      SetTimeouts(fd, 1);
      conn = std::make_unique<TlsConn>(fd, ssl);
    } else {
      conn = std::make_unique<PlainConn>(fd);
    }
    std::string buf;
    char chunk[16384];
    bool first = true;
    for (;;) {
      // Read one request head within the deadline (a slow client is dropped).
      auto start = std::chrono::steady_clock::now();
      int limit = (buf.empty() && !first) ? o_.idle_timeout_seconds : o_.header_timeout_seconds;
      ParseOutcome out;
      for (;;) {
        out = ParseRequestHead(buf, o_.limits);
        if (out.head || out.error) break;
        if (stopping_ && buf.empty()) return;  // draining: idle connections close
        if (std::chrono::steady_clock::now() - start > std::chrono::seconds(limit)) {
          if (!buf.empty()) Send(*conn, 408, "request head not received in time\n", false);
          return;
        }
        ssize_t n = conn->Read(chunk, sizeof chunk);
        if (n == 0) return;
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
          return;
        }
        buf.append(chunk, static_cast<size_t>(n));
        if (!buf.empty()) limit = o_.header_timeout_seconds;
      }
      first = false;
      if (out.error) {
        Send(*conn, out.error->http_status, out.error->reason + "\n", false);
        return;
      }
      bool keep = out.head->KeepAlive() && !stopping_;
      bool ok = Handle(*conn, *out.head, remote, &keep);
      buf.erase(0, out.head->head_length);
      if (!ok || !keep) return;
    }
  }

  bool Send(Conn& c, int status, const std::string& body, bool keep,
            std::vector<std::pair<std::string, std::string>> headers = {}, bool head_only = false) {
    metrics_.CountStatus(status);
    headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    if (status == 401) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"patchgate\"");
    std::string h = Head(status, headers, body.size(), keep);
    if (!head_only) h += body;
    return c.WriteAll(h);
  }

  // Returns false when the connection must close.
  bool Handle(Conn& c, const RequestHead& req, const std::string& remote, bool* keep) {
    bool head_only = req.method == "HEAD";
    if (req.method != "GET" && req.method != "HEAD") {
      Send(c, 405, "only GET and HEAD\n", false, {{"Allow", "GET, HEAD"}});
      return false;
    }
    if (o_.extra_route && req.target.rfind("/.well-known/", 0) == 0) {
      int64_t org = 0;
      if (req.Header("authorization")) {
        auto u = Authenticate(req);
        if (u.ok()) org = u->org_id;
      }
      if (auto r = o_.extra_route(req.method, req.target, org)) {
        metrics_.CountStatus(r->status);
        return c.WriteAll(Head(r->status, r->headers, r->body.size(), *keep) + (head_only ? "" : r->body));
      }
    }
    auto path = NormalizeTarget(req.target);
    if (!path.ok()) {
      int status = path.status().code() == ErrorCode::kNotFound ? 404 : 400;
      return Send(c, status, status == 404 ? "not found\n" : "bad request path\n", *keep && status == 404, {}, head_only);
    }
    switch (path->area) {
      case Area::kHealth: return Send(c, 200, "ok\n", *keep, {}, head_only);
      case Area::kMetrics: {
        std::string body = metrics_.Render();
        metrics_.CountStatus(200);
        return c.WriteAll(Head(200, {{"Content-Type", "text/plain; version=0.0.4"}}, body.size(), *keep) +
                          (head_only ? "" : body));
      }
      case Area::kAck: return HandleAck(c, path->rel, *keep, head_only);
      case Area::kMetadata:
      case Area::kTargets: break;
      case Area::kOther: return Send(c, 404, "not found\n", *keep, {}, head_only);
    }
    // Authentication.
    auto user = Authenticate(req);
    if (!user.ok()) {
      if (user.status().code() == ErrorCode::kUnavailable)
        return Send(c, 503, "the audit store is unavailable; try again later\n", false);
      return Send(c, 401, "a valid token is required (Authorization: Bearer <token>)\n", *keep, {}, head_only);
    }
    if (path->area == Area::kMetadata) return ServeMetadata(c, path->rel, *keep, head_only);
    return ServeTarget(c, req, path->rel, *user, remote, keep, head_only);
  }

  Result<User> Authenticate(const RequestHead& req) {
    auto h = req.Header("authorization");
    if (!h) return Unauthorized("no credentials");
    std::string_view v = *h;
    std::string token, basic_user;
    if (v.size() > 7 && strncasecmp(v.data(), "Bearer ", 7) == 0) {
      token = std::string(v.substr(7));
    } else if (v.size() > 6 && strncasecmp(v.data(), "Basic ", 6) == 0) {
      std::string dec = Base64Decode(v.substr(6));
      auto colon = dec.find(':');
      if (colon == std::string::npos) return Unauthorized("malformed basic credentials");
      basic_user = dec.substr(0, colon);
      token = dec.substr(colon + 1);
    } else {
      return Unauthorized("unsupported authorization scheme");
    }
    if (token.empty() || token.size() > 512) return Unauthorized("malformed token");
    // Only the SHA-256 of the token is stored; the lookup is by that hash, so no secret is
    // ever compared byte by byte.
    std::string hash = Sha256Hex(token);
    User u;
    if (!auth_cache_.Get(hash, &u)) {
      PG_ASSIGN_OR_RETURN(u, reads_->AuthenticateTokenHash(hash));
      auth_cache_.Put(hash, u);
    }
    if (!basic_user.empty() && !ConstantTimeEquals(basic_user, u.username)) return Unauthorized("user/token mismatch");
    return u;
  }

  bool HandleAck(Conn& c, const std::string& token, bool keep, bool head_only) {
    Status st = store_->Acknowledge(Sha256Hex(token), SystemClock::Get().NowMicros());
    if (st.code() == ErrorCode::kNotFound) return Send(c, 404, "not found\n", keep, {}, head_only);
    if (!st.ok()) return Send(c, 503, "try again later\n", false);
    std::string body =
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acknowledged</title></head><body>"
        "<h1>Thank you</h1><p>Your acknowledgement has been recorded.</p></body></html>\n";
    metrics_.CountStatus(200);
    return c.WriteAll(Head(200, {{"Content-Type", "text/html; charset=utf-8"}}, body.size(), keep) +
                      (head_only ? "" : body));
  }

  bool ServeMetadata(Conn& c, const std::string& name, bool keep, bool head_only) {
    std::string file = o_.repo_dir + "/metadata/" + name;
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) ::close(fd);
      return Send(c, 404, "not found\n", keep, {}, head_only);
    }
    uint64_t len = static_cast<uint64_t>(st.st_size);
    metrics_.CountStatus(200);
    bool ok = c.Write(Head(200, {{"Content-Type", "application/json"},
                                 {"Cache-Control", name == "timestamp.json" ? "no-cache" : "max-age=31536000, immutable"}},
                           len, keep),
                      !head_only && len > 0);
    if (ok && !head_only) {
      uint64_t sent = c.SendFile(fd, 0, len);
      metrics_.bytes_sent += sent;
      ok = sent == len;
    }
    ::close(fd);
    return ok;
  }

  bool ServeTarget(Conn& c, const RequestHead& req, const std::string& rel, const User& user,
                   const std::string& remote, bool* keep, bool head_only) {
    Status cs = catalogue_.Refresh();
    if (!cs.ok()) log::Warn("catalogue reload failed; serving the last good one", {{"error", cs.ToString()}});
    auto entry = catalogue_.Find(rel);
    if (!entry) return Send(c, 404, "not found\n", *keep, {}, head_only);
    std::string ekey = std::to_string(user.org_id) + "\n" + entry->product;
    bool is_entitled = false;
    if (!entitlement_cache_.Get(ekey, &is_entitled)) {
      auto entitled = reads_->IsEntitled(user.org_id, entry->product);
      if (!entitled.ok()) return Send(c, 503, "the audit store is unavailable; try again later\n", false);
      is_entitled = *entitled;
      entitlement_cache_.Put(ekey, is_entitled);
    }
    if (!is_entitled) return Send(c, 403, "your organisation is not entitled to " + entry->product + "\n", *keep, {}, head_only);

    int fd = ::open(entry->file.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      if (fd >= 0) ::close(fd);
      log::Error("published target missing on disk", {{"target", entry->path}, {"file", entry->file}});
      return Send(c, 503, "this file is temporarily unavailable\n", *keep, {}, head_only);
    }
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    auto digest = verify_.Sha256(fd, KeyOf(st), &metrics_);
    if (!digest.ok() || !ConstantTimeEquals(*digest, entry->sha256) ||
        static_cast<uint64_t>(st.st_size) != entry->length) {
      ++metrics_.verify_mismatches;
      std::string actual = digest.ok() ? *digest : "unreadable";
      log::Error("target does not match its signed hash; refusing to serve it",
                 {{"target", entry->path}, {"expected", entry->sha256}, {"actual", actual}, {"node", o_.node_name}});
      (void)store_->QuarantineTargetOnNode(o_.node_name, entry->path, entry->sha256, actual,
                                           SystemClock::Get().NowMicros());
      return Send(c, 503, "this file failed integrity verification and is not served\n", false);
    }

    uint64_t len = entry->length, first = 0, last = len ? len - 1 : 0;
    bool unsatisfiable = false, ranged = false;
    std::string range_header;
    if (auto r = req.Header("range")) {
      range_header = std::string(r->substr(0, 200));
      ranged = ParseRange(*r, len, &first, &last, &unsatisfiable);
    }
    std::string etag = "\"" + entry->sha256 + "\"";
    if (auto inm = req.Header("if-none-match"); inm && *inm == etag)
      return Send(c, 304, "", *keep, {{"ETag", etag}}, true);
    if (ranged && unsatisfiable)
      return Send(c, 416, "range not satisfiable\n", *keep, {{"Content-Range", "bytes */" + std::to_string(len)}}, head_only);
    uint64_t body_len = (len == 0) ? 0 : last - first + 1;
    int status = ranged ? 206 : 200;
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/octet-stream"}, {"ETag", etag}, {"Accept-Ranges", "bytes"},
        {"Cache-Control", "private, max-age=31536000, immutable"}};
    if (ranged)
      headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                                std::to_string(len));
    if (head_only) {
      metrics_.CountStatus(status);
      return c.WriteAll(Head(status, headers, body_len, *keep));
    }
    // The record is durable before the first byte.
    DownloadStart start;
    start.started_at = SystemClock::Get().NowMicros();
    start.node = o_.node_name;
    start.user_id = user.id;
    start.org_id = user.org_id;
    start.target_path = entry->path;
    start.sha256 = entry->sha256;
    start.range = range_header;
    start.remote_addr = remote;
    if (auto ua = req.Header("user-agent")) start.user_agent = std::string(ua->substr(0, 256));
    auto id = audit_.Begin(start);
    if (!id.ok()) return Send(c, 503, "the audit store is unavailable; nothing was served\n", false);

    metrics_.CountStatus(status);
    uint64_t sent = 0;
    if (c.Write(Head(status, headers, body_len, *keep), body_len > 0)) sent = c.SendFile(fd, first, body_len);
    metrics_.bytes_sent += sent;
    DownloadOutcome outcome = sent < body_len ? DownloadOutcome::kAborted
                                              : (ranged ? DownloadOutcome::kPartial : DownloadOutcome::kComplete);
    if (outcome == DownloadOutcome::kComplete) ++metrics_.downloads_complete;
    else if (outcome == DownloadOutcome::kPartial) ++metrics_.downloads_partial;
    else ++metrics_.downloads_aborted;
    audit_.Finish({*id, SystemClock::Get().NowMicros(), sent, outcome});
    return sent == body_len;
  }

  ServerOptions o_;
  Store* store_;  // writes: audit, quarantine, acknowledgements
  Store* reads_;  // token and entitlement look-ups (store_ unless a read connection was given)
  Metrics metrics_;
  Catalogue catalogue_;
  VerifyCache verify_;
  AuditLog audit_;
  TtlCache<User> auth_cache_;
  TtlCache<bool> entitlement_cache_;
  SSL_CTX* ssl_ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable drained_;
  int active_ = 0;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options, Store* store, Store* read_store) {
  auto s = std::make_unique<ServerImpl>(options, store, read_store);
  PG_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace patchgate::server
