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

#include <linux/openat2.h>
#include <sys/syscall.h>

#include <cerrno>
#include <ctime>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "server/audit_log.h"
#include "server/audit_text.h"
#include "server/auth_header.h"
#include "server/catalogue.h"
#include "server/metrics.h"
#include "server/range.h"
#include "server/verified_file.h"

namespace patchgate::server {

namespace {

// ---- connections: plain TCP or TLS over a blocking socket with timeouts -------------

class Conn {
 public:
  Conn(int fd, int send_timeout_seconds) : fd_(fd), send_timeout_ms_(send_timeout_seconds * 1000) {}
  virtual ~Conn() { ::close(fd_); }
  // Like read(2): >0 bytes, 0 on EOF, -1 on error or timeout (errno EAGAIN).
  virtual ssize_t Read(char* buf, size_t n) = 0;
  // more_follows: more body bytes come next, so the data may wait to leave in the same TCP
  // segment (MSG_MORE) instead of a packet of its own. False when the peer took nothing
  // for the send timeout (a client that does not read is dropped then) or on error.
  // `written` (if given) counts the bytes the kernel took, also when it returns false.
  virtual bool Write(std::string_view data, bool more_follows, uint64_t* written = nullptr) = 0;
  bool WriteAll(std::string_view data) { return Write(data, false); }
  // Sends [offset, offset+len) of `file_fd` without looking at the bytes (only for files
  // the kernel verifies on read: fs-verity); returns bytes sent (short on error).
  virtual uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len) = 0;
  // Closes after a response that said "Connection: close": stops sending, then reads and
  // discards what the client still sends (briefly), so a pipelined request left unread
  // does not turn the close into a reset that could destroy the response in flight.
  virtual void LingeringClose() {}
  int fd() const { return fd_; }

 protected:
  // Waits until the socket is writable; false after send_timeout without progress.
  bool WaitWritable() {
    pollfd p{fd_, POLLOUT, 0};
    for (;;) {
      int r = ::poll(&p, 1, send_timeout_ms_ > 0 ? send_timeout_ms_ : -1);
      if (r < 0 && errno == EINTR) continue;
      return r > 0 && !(p.revents & (POLLERR | POLLNVAL));
    }
  }
  int fd_;
  int send_timeout_ms_;
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
  bool Write(std::string_view d, bool more_follows, uint64_t* written) override {
    int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more_follows ? MSG_MORE : 0);
    while (!d.empty()) {
      ssize_t w = ::send(fd_, d.data(), d.size(), flags);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitWritable()) return false;  // nothing taken for send_timeout: drop the client
        continue;
      }
      if (w <= 0) return false;
      d.remove_prefix(static_cast<size_t>(w));
      if (written) *written += static_cast<uint64_t>(w);
    }
    return true;
  }
  uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len) override {
    uint64_t sent = 0;
    off_t off = static_cast<off_t>(offset);
    while (sent < len) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(len - sent, 1 << 20));
      ssize_t w = ::sendfile(fd_, file_fd, &off, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitWritable()) break;
        continue;
      }
      if (w <= 0) break;
      sent += static_cast<uint64_t>(w);
    }
    return sent;
  }
  void LingeringClose() override {
    ::shutdown(fd_, SHUT_WR);
    char sink[4096];
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    size_t total = 0;
    while (std::chrono::steady_clock::now() < until && total < (256u << 10)) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t r = ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT);
      if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) break;
      if (r > 0) total += static_cast<size_t>(r);
    }
  }
};

class TlsConn : public Conn {
 public:
  TlsConn(int fd, SSL* ssl, int send_timeout_seconds) : Conn(fd, send_timeout_seconds), ssl_(ssl) {}
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
  bool Write(std::string_view d, bool /*more_follows*/, uint64_t* written) override {
    while (!d.empty()) {
      int w = SSL_write(ssl_, d.data(), static_cast<int>(std::min<size_t>(d.size(), 1 << 30)));
      if (w <= 0) {
        ERR_clear_error();
        return false;
      }
      d.remove_prefix(static_cast<size_t>(w));
      if (written) *written += static_cast<uint64_t>(w);
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

// The current time as an IMF-fixdate (RFC 9110 §5.6.7), formatted at most once a second.
std::string HttpDate() {
  static std::mutex mu;
  static time_t last = 0;
  static std::string text;
  time_t now = ::time(nullptr);
  std::lock_guard<std::mutex> l(mu);
  if (now != last) {
    struct tm tm {};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    text = buf;
    last = now;
  }
  return text;
}

std::string Head(int status, const std::vector<std::pair<std::string, std::string>>& headers, uint64_t length,
                 bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  h += "Server: patchgate\r\n";
  h += "Date: " + HttpDate() + "\r\n";
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += "Content-Length: " + std::to_string(length) + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  h += "\r\n";
  return h;
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

// ---- the server ------------------------------------------------------------------------

// Opens `rel` (relative, no "..") beneath the directory `dir_fd` without following any
// symbolic link (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a link planted in the
// served tree (metadata/tk.json -> ../keys/timestamp.key.json) is never served.
int OpenBeneath(int dir_fd, const std::string& rel) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof how));
  if (fd >= 0 || errno != ENOSYS) return fd;
  // Kernels before 5.6: refuse a link anywhere on the (short, already normalised) path.
  std::string sofar;
  size_t start = 0;
  for (;;) {
    size_t slash = rel.find('/', start);
    sofar = rel.substr(0, slash);
    struct stat st {};
    if (::fstatat(dir_fd, sofar.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -1;
    if (S_ISLNK(st.st_mode)) {
      errno = ELOOP;
      return -1;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return ::openat(dir_fd, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions o, Store* store, Store* read_store)
      : o_(std::move(o)), store_(store), reads_(read_store ? read_store : store), catalogue_(o_.repo_dir),
        audit_(store, &metrics_, std::chrono::milliseconds(o_.audit_finish_ms)),
        auth_cache_(o_.auth_cache_ms), entitlement_cache_(o_.auth_cache_ms) {}
  ~ServerImpl() override {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (repo_fd_ >= 0) ::close(repo_fd_);
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
    repo_fd_ = ::open(o_.repo_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (repo_fd_ < 0) return InvalidArgument("cannot open the repository directory " + o_.repo_dir + ": " + std::strerror(errno));
    return catalogue_.Refresh();
  }

  Status Start() override {
    sockaddr_in addr{};
    if (!ParseListen(o_.listen, &addr)) return InvalidArgument("--listen must be IPv4:PORT, e.g. 127.0.0.1:8443");
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
    for (;;) {
      bool stop = stopping_;
      if (!stop) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
      }
      sockaddr_in peer{};
      socklen_t plen = sizeof peer;
      // Once stopping, what the kernel already accepted (the backlog) is still served;
      // then the listening socket closes.
      // (The listening socket is non-blocking; accepted ones are blocking.)
      int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stop) break;
        continue;
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        if (active_ >= o_.max_connections) {
          ::close(fd);
          continue;
        }
        ++active_;
        conn_fds_.insert(fd);
      }
      char ip[INET_ADDRSTRLEN] = "";
      inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
      ++metrics_.connections_open;
      std::thread([this, fd, addr = CaptureText(ip, kMaxRemoteAddrBytes)] {
        Serve(fd, addr);
        --metrics_.connections_open;
        std::lock_guard<std::mutex> l(mu_);
        --active_;
        drained_.notify_all();
      }).detach();
    }
    // Drain. New connections are refused at once: the listening socket closes now.
    ::close(listen_fd_);
    listen_fd_ = -1;
    // In-flight responses may finish within drain_seconds; idle keep-alive connections
    // close at their next read.
    std::unique_lock<std::mutex> l(mu_);
    bool drained = drained_.wait_for(l, std::chrono::seconds(o_.drain_seconds), [&] { return active_ == 0; });
    if (!drained) {
      // Cut what is left: their sends fail, and each completes its record with the bytes
      // really sent and outcome aborted before its thread ends.
      log::Warn("drain time is up; cutting the downloads still in flight", {{"connections", std::to_string(active_)}});
      for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
      drained_.wait_for(l, std::chrono::seconds(10), [&] { return active_ == 0; });
    }
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
        Forget(fd);
        ::close(fd);
        return;
      }
      SetTimeouts(fd, 1);
      conn = std::make_unique<TlsConn>(fd, ssl, o_.send_timeout_seconds);
    } else {
      conn = std::make_unique<PlainConn>(fd, o_.send_timeout_seconds);
    }
    // Declared after conn, so it runs first: the drain never shuts down a reused fd.
    struct Forgetter {
      ServerImpl* s;
      int fd;
      ~Forgetter() { s->Forget(fd); }
    } forget{this, fd};
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
        if (stopping_ && buf.empty() && !first) return;  // draining: idle keep-alive connections close
        if (std::chrono::steady_clock::now() - start > std::chrono::seconds(limit)) {
          if (!buf.empty()) {
            Send(*conn, 408, "request head not received in time\n", false);
            conn->LingeringClose();
          }
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
        conn->LingeringClose();
        return;
      }
      bool keep = out.head->KeepAlive() && !stopping_;
      // Handle() answers "may this connection go on": false after any response that said
      // "Connection: close" (then nothing more is read from it, pipelined or not).
      bool go_on = Handle(*conn, *out.head, remote, &keep);
      buf.erase(0, out.head->head_length);
      if (!go_on || !keep) {
        conn->LingeringClose();
        return;
      }
    }
  }

  void Forget(int fd) {
    std::lock_guard<std::mutex> l(mu_);
    conn_fds_.erase(fd);
  }

  // Writes a whole small response. Returns whether the connection may go on: false if the
  // write failed or the response said "Connection: close".
  bool Send(Conn& c, int status, const std::string& body, bool keep,
            std::vector<std::pair<std::string, std::string>> headers = {}, bool head_only = false,
            const char* content_type = "text/plain; charset=utf-8") {
    metrics_.CountStatus(status);
    headers.emplace_back("Content-Type", content_type);
    if (status == 401) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"patchgate\"");
    std::string h = Head(status, headers, body.size(), keep);
    if (!head_only) h += body;
    return c.WriteAll(h) && keep;
  }

  // Returns false when the connection must close.
  bool Handle(Conn& c, const RequestHead& req, const std::string& remote, bool* keep) {
    bool head_only = req.method == "HEAD";
    auto origin = OriginForm(req);
    auto path = origin.ok() ? NormalizeTarget(*origin) : Result<NormalizedPath>(origin.status());
    if (req.method == "POST" && path.ok() && path->area == Area::kAck)
      return HandleAck(c, path->rel, *keep, /*confirm=*/true, false);
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
        return c.WriteAll(Head(r->status, r->headers, r->body.size(), *keep) + (head_only ? "" : r->body)) && *keep;
      }
    }
    if (!path.ok()) {
      int status = path.status().code() == ErrorCode::kNotFound ? 404 : 400;
      return Send(c, status, status == 404 ? "not found\n" : "bad request path\n", *keep && status == 404, {}, head_only);
    }
    switch (path->area) {
      case Area::kHealth: return Send(c, 200, "ok\n", *keep, {}, head_only);
      case Area::kMetrics: {
        std::string body = metrics_.Render();
        if (o_.chain.extra_metrics) body += o_.chain.extra_metrics();
        return Send(c, 200, body, *keep, {}, head_only, "text/plain; version=0.0.4");
      }
      case Area::kAck: return HandleAck(c, path->rel, *keep, /*confirm=*/false, head_only);
      case Area::kMetadata:
      case Area::kTargets: break;
      case Area::kOther: return Send(c, 404, "not found\n", *keep, {}, head_only);
    }
    // Authentication.
    auto user = Authenticate(req);
    if (!user.ok() && user.status().code() == ErrorCode::kUnauthorized && o_.chain.authenticate_node) {
      // Not a customer: perhaps a downstream node of the chain pulling a sync.
      auto node = AuthenticateNode(req);
      if (node.ok()) {
        if (path->area == Area::kMetadata) return ServeMetadata(c, path->rel, *keep, head_only, &*node);
        return ServeTarget(c, req, path->rel, User{}, remote, keep, head_only, &*node);
      }
      if (node.status().code() == ErrorCode::kUnavailable)
        return Send(c, 503, "the store is unavailable; try again later\n", false);
    }
    if (user.ok() && o_.chain.fenced && o_.chain.fenced->load())
      return Send(c, 503, "this node is fenced off by the compliance policy; use another mirror\n", false);
    if (!user.ok()) {
      if (user.status().code() == ErrorCode::kUnavailable)
        return Send(c, 503, "the audit store is unavailable; try again later\n", false);
      return Send(c, 401, "a valid token is required (Authorization: Bearer <token>)\n", *keep, {}, head_only);
    }
    if (path->area == Area::kMetadata) return ServeMetadata(c, path->rel, *keep, head_only);
    return ServeTarget(c, req, path->rel, *user, remote, keep, head_only);
  }

  // A look-up that finds the store unavailable is asked once more: a connection that died
  // while idle (the database restarted) is only found out by its next statement, and the
  // store reconnects on the one after.
  template <typename F>
  static auto AskOnceMore(F ask) {
    auto r = ask();
    if (!r.ok() && r.status().code() == ErrorCode::kUnavailable) r = ask();
    return r;
  }

  Result<User> Authenticate(const RequestHead& req) {
    auto h = req.Header("authorization");
    if (!h) return Unauthorized("no credentials");
    PG_ASSIGN_OR_RETURN(Credentials cred, ParseAuthorization(*h));
    // Only the SHA-256 of the token is stored; the lookup is by that whole hash, so no
    // secret is ever compared byte by byte.
    std::string hash = Sha256Hex(cred.token);
    User u;
    if (!auth_cache_.Get(hash, &u)) {
      PG_ASSIGN_OR_RETURN(u, AskOnceMore([&] { return reads_->AuthenticateTokenHash(hash); }));
      auth_cache_.Put(hash, u);
    }
    if (!cred.basic_user.empty() && !ConstantTimeEquals(cred.basic_user, u.username))
      return Unauthorized("user/token mismatch");
    return u;
  }

  Result<std::string> AuthenticateNode(const RequestHead& req) {
    auto h = req.Header("authorization");
    if (!h || h->size() <= 7 || strncasecmp(h->data(), "Bearer ", 7) != 0) return Unauthorized("no bearer token");
    std::string_view token = h->substr(7);
    if (token.empty() || token.size() > 512) return Unauthorized("malformed token");
    return o_.chain.authenticate_node(Sha256Hex(token));
  }

  void RecordSync(const std::string* node, const std::string& what, uint64_t bytes) {
    if (node && o_.chain.record_sync) o_.chain.record_sync(*node, what, bytes);
  }

  void CheckGeneration() {
    if (!o_.chain.content_generation) return;
    uint64_t g = o_.chain.content_generation->load();
    if (g != seen_generation_.exchange(g)) catalogue_.Expire();
  }

  // GET/HEAD /ack/<token> only shows a page whose button POSTs back (mail link scanners
  // fetch links, and must not acknowledge); the POST records the acknowledgement.
  bool HandleAck(Conn& c, const std::string& token, bool keep, bool confirm, bool head_only) {
    if (!confirm) {
      std::string page =
          "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">"
          "<title>Acknowledge the security notice</title></head><body><h1>Acknowledge the security notice</h1>"
          "<p>Press the button to confirm that your organisation has received this notice.</p>"
          "<form method=\"post\" action=\"/ack/" + token + "\"><button type=\"submit\">Confirm receipt</button></form>"
          "</body></html>\n";
      return Send(c, 200, page, keep, {{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}}, head_only,
                  "text/html; charset=utf-8");
    }
    Status st = store_->Acknowledge(Sha256Hex(token), SystemClock::Get().NowMicros());
    if (st.code() == ErrorCode::kNotFound) return Send(c, 404, "not found\n", keep);
    if (!st.ok()) return Send(c, 503, "try again later\n", false);
    std::string body =
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acknowledged</title></head><body>"
        "<h1>Thank you</h1><p>Your acknowledgement has been recorded.</p></body></html>\n";
    return Send(c, 200, body, keep, {{"Cache-Control", "no-store"}}, false, "text/html; charset=utf-8");
  }

  bool ServeMetadata(Conn& c, const std::string& name, bool keep, bool head_only, const std::string* node = nullptr) {
    int fd = OpenBeneath(repo_fd_, "metadata/" + name);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd < 0 && errno == ELOOP)
        log::Warn("refusing to serve a symbolic link in the repository", {{"file", "metadata/" + name}});
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
      RecordSync(node, "metadata/" + name, sent);
    }
    ::close(fd);
    return ok && keep;
  }

  void Quarantine(const tuf::CatalogueEntry& entry, const std::string& actual, const std::string& why) {
    log::Error("target does not match its signed hash; refusing to serve it",
               {{"target", entry.path}, {"expected", entry.sha256}, {"actual", actual}, {"why", why},
                {"node", o_.node_name}});
    Status q = store_->QuarantineTargetOnNode(o_.node_name, entry.path, entry.sha256, actual,
                                              SystemClock::Get().NowMicros());
    if (!q.ok()) log::Error("could not record the quarantine", {{"target", entry.path}, {"error", q.ToString()}});
  }

  // Sends body_len bytes from `first`: through sendfile when the kernel verifies the reads
  // (fs-verity), otherwise chunk by chunk, each checked before any of its bytes leave; a
  // chunk that no longer matches cuts the transfer there (*integrity_error says why).
  // `slice` is the first chunk, already read and checked. Returns the bytes sent.
  uint64_t SendChecked(Conn& c, int fd, uint64_t first, uint64_t body_len, bool kernel_verified,
                       CheckedReader& reader, std::string_view slice, std::string* integrity_error) {
    if (kernel_verified) return c.SendFile(fd, first, body_len);
    uint64_t sent = 0;
    while (!slice.empty()) {
      // Counts what the kernel took, also of a slice cut short.
      if (!c.Write(slice, sent + slice.size() < body_len, &sent)) break;
      if (reader.done()) break;
      auto s = reader.Next();
      if (!s.ok()) {
        *integrity_error = s.status().message();
        break;
      }
      slice = *s;
    }
    return sent;
  }

  bool ServeTarget(Conn& c, const RequestHead& req, const std::string& rel, const User& user,
                   const std::string& remote, bool* keep, bool head_only, const std::string* node = nullptr) {
    CheckGeneration();
    Status cs = catalogue_.Refresh();
    if (!cs.ok()) log::Warn("catalogue reload failed; serving the last good one", {{"error", cs.ToString()}});
    auto entry = catalogue_.Find(rel);
    if (!entry) return Send(c, 404, "not found\n", *keep, {}, head_only);
    std::string ekey = std::to_string(user.org_id) + "\n" + entry->product;
    bool is_entitled = node != nullptr;  // a node of the chain mirrors every product
    if (!is_entitled && !entitlement_cache_.Get(ekey, &is_entitled)) {
      auto entitled = AskOnceMore([&] { return reads_->IsEntitled(user.org_id, entry->product); });
      if (!entitled.ok()) return Send(c, 503, "the audit store is unavailable; try again later\n", false);
      is_entitled = *entitled;
      entitlement_cache_.Put(ekey, is_entitled);
    }
    if (!is_entitled) return Send(c, 403, "your organisation is not entitled to " + entry->product + "\n", *keep, {}, head_only);

    int fd = OpenBeneath(repo_fd_, "targets/" + rel);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      log::Error(fd < 0 && errno == ELOOP ? "published target is a symbolic link; not served"
                                          : "published target missing on disk",
                 {{"target", entry->path}, {"file", "targets/" + rel}});
      if (fd >= 0) ::close(fd);
      return Send(c, 503, "this file is temporarily unavailable\n", *keep, {}, head_only);
    }
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    auto v = verify_.Verify(fd, st, &metrics_);
    if (!v.ok() || !ConstantTimeEquals((*v)->sha256, entry->sha256) || (*v)->length != entry->length) {
      ++metrics_.verify_mismatches;
      Quarantine(*entry, v.ok() ? (*v)->sha256 : "unreadable", v.ok() ? "whole-file hash" : v.status().ToString());
      return Send(c, 503, "this file failed integrity verification and is not served\n", false);
    }
    std::shared_ptr<const FileVerification> verified = *v;

    uint64_t len = entry->length, first = 0, last = len ? len - 1 : 0;
    bool ranged = false;
    std::string range_header;
    if (auto r = req.Header("range")) {
      range_header = CaptureText(*r, kMaxRangeBytes);
      ByteRange br = ParseRange(*r, len);
      if (br.kind == ByteRange::Kind::kUnsatisfiable)
        return Send(c, 416, "range not satisfiable\n", *keep, {{"Content-Range", "bytes */" + std::to_string(len)}}, head_only);
      if (br.kind == ByteRange::Kind::kRange) {
        ranged = true;
        first = br.first;
        last = br.last;
      }
    }
    std::string etag = "\"" + entry->sha256 + "\"";
    if (auto inm = req.Header("if-none-match"); inm && *inm == etag)
      return Send(c, 304, "", *keep, {{"ETag", etag}}, true);
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
      return c.WriteAll(Head(status, headers, body_len, *keep)) && *keep;
    }
    // Hash-while-send: the first chunk is read and checked before anything is recorded or
    // sent, so a file changed since its verification is refused whole (503, quarantined).
    const bool kernel_verified = verified->mode == ServeMode::kFsVerity;
    CheckedReader reader(fd, verified, first, last);
    std::string_view slice;
    if (!kernel_verified && body_len > 0) {
      auto s = reader.Next();
      if (!s.ok()) {
        ++metrics_.verify_mismatches;
        Quarantine(*entry, "changed on disk after verification", s.status().message());
        return Send(c, 503, "this file failed integrity verification and is not served\n", false);
      }
      slice = *s;
    }
    if (node) {
      // A sync, not a customer download: no audit record; reported to the chain instead.
      // The bytes are checked exactly as for a customer: a mirror never receives a changed byte.
      metrics_.CountStatus(status);
      std::string integrity_error;
      uint64_t sent = 0;
      if (c.Write(Head(status, headers, body_len, *keep), body_len > 0))
        sent = SendChecked(c, fd, first, body_len, kernel_verified, reader, slice, &integrity_error);
      metrics_.bytes_sent += sent;
      if (!integrity_error.empty()) {
        ++metrics_.integrity_aborts;
        ++metrics_.verify_mismatches;
        Quarantine(*entry, "changed on disk while being synced", integrity_error);
      }
      RecordSync(node, "targets/" + rel, sent);
      return sent == body_len && *keep;
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
    if (auto ua = req.Header("user-agent")) start.user_agent = CaptureText(*ua, kMaxUserAgentBytes);
    auto id = audit_.Begin(start);
    if (!id.ok()) return Send(c, 503, "the audit store is unavailable; nothing was served\n", false);

    metrics_.CountStatus(status);
    uint64_t sent = 0;
    std::string integrity_error;
    if (c.Write(Head(status, headers, body_len, *keep), body_len > 0))
      sent = SendChecked(c, fd, first, body_len, kernel_verified, reader, slice, &integrity_error);
    metrics_.bytes_sent += sent;
    DownloadOutcome outcome = sent < body_len ? DownloadOutcome::kAborted
                                              : (ranged ? DownloadOutcome::kPartial : DownloadOutcome::kComplete);
    if (outcome == DownloadOutcome::kComplete) ++metrics_.downloads_complete;
    else if (outcome == DownloadOutcome::kPartial) ++metrics_.downloads_partial;
    else ++metrics_.downloads_aborted;
    if (!integrity_error.empty()) {
      // Cut mid-stream: the record says aborted with the bytes really sent (all of them
      // verified), and the file is quarantined on this node.
      ++metrics_.integrity_aborts;
      ++metrics_.verify_mismatches;
      log::Error("download cut: the file changed while it was being served",
                 {{"target", entry->path}, {"download", std::to_string(*id)}, {"bytes_sent", std::to_string(sent)},
                  {"reason", integrity_error}});
      Quarantine(*entry, "changed on disk while being served", integrity_error);
    }
    audit_.Finish({*id, SystemClock::Get().NowMicros(), sent, outcome,
                   integrity_error.empty() ? "" : "integrity: " + integrity_error});
    return sent == body_len && *keep;
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
  int repo_fd_ = -1;  // the served tree: every file is opened beneath it, links refused
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> seen_generation_{0};
  std::mutex mu_;
  std::condition_variable drained_;
  int active_ = 0;
  std::set<int> conn_fds_;  // open connections, so the drain can cut them
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options, Store* store, Store* read_store) {
  auto s = std::make_unique<ServerImpl>(options, store, read_store);
  PG_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace patchgate::server
