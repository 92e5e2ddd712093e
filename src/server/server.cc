#include "server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>


#include <cerrno>
#include <ctime>
#include <condition_variable>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <mutex>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "server/ack_pages.h"
#include "server/audit_log.h"
#include "server/audit_text.h"
#include "server/auth_header.h"
#include "server/catalogue.h"
#include "server/connection.h"
#include "server/download_service.h"
#include "server/event_loop.h"
#include "server/http_response.h"
#include "server/metadata_service.h"
#include "server/metrics.h"
#include "server/replies.h"
#include "server/routes.h"
#include "server/served_files.h"
#include "server/status_pages.h"
#include "server/ttl_cache.h"
#include "server/verified_file.h"

namespace patchgate::server {

namespace {

// Each connection is a descriptor: raise the soft limit to the hard one (10,000 idle
// connections need more than the usual 1,024).
void RaiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
}

// Whether this kernel offers kernel TLS (the "tls" upper-layer protocol of TCP): probed on
// a loopback connection, as OpenSSL needs it per socket.
bool KernelTlsAvailable() {
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (l >= 0 && c >= 0 && ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l, 1) == 0 &&
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
      ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    ok = ::setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", 3) == 0;
  }
  if (l >= 0) ::close(l);
  if (c >= 0) ::close(c);
  return ok;
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

class ServerImpl final : public Server, public ConnectionHandler {
 public:
  ServerImpl(ServerOptions o, Store* store, AuthDirectory* read_store)
      : o_(std::move(o)), targets_(store), acks_(store), reads_(read_store ? read_store : store),
        catalogue_(o_.repo_dir),
        verify_(VerifyCache::kChunkSize, o_.verified_memory_max_file, o_.verified_memory_bytes),
        audit_(store, &metrics_, std::chrono::milliseconds(o_.audit_finish_ms)),
        auth_cache_(o_.auth_cache_ms), entitlement_cache_(o_.auth_cache_ms) {}
  ~ServerImpl() override {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (repo_fd_ >= 0) ::close(repo_fd_);
    if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
  }

  Status Init() {
    if (o_.tls_cert.empty() != o_.tls_key.empty()) return InvalidArgument("give both --tls-cert and --tls-key, or neither");
    if (o_.loops < 0 || o_.loops > 256) return InvalidArgument("--loops must be between 0 (one per core) and 256");
    if (o_.max_workers < 1) return InvalidArgument("--max-workers must be at least 1");
    if (o_.max_connections < 1 || o_.max_connections_per_address < 1)
      return InvalidArgument("--max-connections and --max-connections-per-address must be at least 1");
    if (!o_.tls_cert.empty()) {
      ssl_ctx_ = SSL_CTX_new(TLS_server_method());
      SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
#ifdef SSL_OP_ENABLE_KTLS
      // Kernel TLS where the kernel has it (the TLS records are then framed by the kernel);
      // OpenSSL falls back to user-space records where it does not.
      SSL_CTX_set_options(ssl_ctx_, SSL_OP_ENABLE_KTLS);
#endif
      ktls_ = KernelTlsAvailable();
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
    downloads_ = std::make_unique<DownloadService>(DownloadService::Deps{
        &o_, &catalogue_, &verify_, &audit_, &metrics_, targets_, reads_, &entitlement_cache_, repo_fd_});
    metadata_service_ = std::make_unique<MetadataService>(MetadataService::Deps{
        &o_, &catalogue_, &metadata_, &metrics_, [this] { downloads_->CheckGeneration(); }, repo_fd_});
    // The catalogue reloads off the request path: requests are answered from the current
    // one (and its timestamp.json) until the next is loaded.
    return catalogue_.StartBackground();
  }

  Status Start() override {
    sockaddr_in addr{};
    if (!ParseListen(o_.listen, &addr)) return InvalidArgument("--listen must be IPv4:PORT, e.g. 127.0.0.1:8443");
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return Unavailable("cannot listen on " + o_.listen + ": " + std::strerror(errno));
    RaiseFileLimit();
    if (::listen(listen_fd_, 4096) != 0) return Unavailable(std::string("listen: ") + std::strerror(errno));
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    log::Info("serving", {{"listen", o_.listen}, {"port", std::to_string(port_)}, {"node", o_.node_name},
                          {"tls", ssl_ctx_ ? (ktls_ ? "on (kernel TLS available)" : "on (kernel TLS not in this kernel: user-space records)") : "off"},
                          {"targets", std::to_string(catalogue_.size())}});
    return Status::OK();
  }

  int port() const override { return port_; }

  void Run() override {
    LoopOptions lo;
    lo.loops = o_.loops;
    lo.header_timeout_seconds = o_.header_timeout_seconds;
    lo.idle_timeout_seconds = o_.idle_timeout_seconds;
    lo.send_timeout_seconds = o_.send_timeout_seconds;
    lo.max_connections = o_.max_connections;
    lo.max_per_address = o_.max_connections_per_address;
    lo.max_workers = o_.max_workers;
    lo.limits = o_.limits;
    lo.tls = ssl_ctx_;
    {
      std::lock_guard<std::mutex> l(mu_);
      loops_ = std::make_unique<ConnectionLoops>(lo, listen_fd_, this);
      if (stopping_) loops_->Stop();
    }
    loops_->Run(std::chrono::seconds(o_.drain_seconds));  // closes listen_fd_
    listen_fd_ = -1;
    if (!audit_.Flush()) log::Error("some download records could not be completed before the drain ended", {});
    log::Info("stopped", {{"node", o_.node_name}});
    // A Stop() from another thread (the signal thread) may still be inside ConnectionLoops::Stop
    // when the loops end: the caller destroys this server once Run returns, so wait it out.
    std::lock_guard<std::mutex> l(mu_);
  }

  void Stop() override {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    if (loops_) loops_->Stop();
  }

  // ---- ConnectionHandler ----
  bool Handle(Conn& c, const RequestHead& req, const std::string& remote, bool keep, PendingSend* later) override {
    bool k = keep && !stopping_;
    // Handle() answers "may this connection go on": false after any response that said
    // "Connection: close" (then nothing more is read from it, pipelined or not).
    bool go_on = Handle(c, req, remote, &k, later);
    return go_on && k;
  }

  bool OnLoop(const RequestHead& req, const std::string& remote, bool keep, PendingSend* out, bool* go_on) override {
    if (req.method != "GET" && req.method != "HEAD") return false;
    RouteMatch m = MatchRoute(req, static_cast<bool>(o_.extra_route));
    if (m.extra_first) return false;
    if (m.route == Route::kHealth) {
      *go_on = HealthPage(out, &metrics_, keep, req.method == "HEAD");
      return true;
    }
    // Downloads whose every answer is cached: the token, the entitlement, the catalogue
    // and the verified bytes. Anything else (a miss, an error status) goes to a worker,
    // which asks the store, hashes, and answers every refusal.
    if (!NeedsToken(m.route) || req.method == "HEAD" || (o_.chain.fenced && o_.chain.fenced->load())) return false;
    auto user = CachedUser(req);
    if (!user) return false;
    if (m.route == Route::kMetadata) {
      if (!metadata_service_->ServeFromLoop(req, m.rel, keep, out)) return false;
      *go_on = keep;
      return true;
    }
    if (!downloads_->ServeFromLoop(req, m.rel, *user, remote, keep, out)) return false;
    *go_on = keep;
    return true;
  }

  // The user of a token already verified within auth_cache_ms (no store look-up), else none.
  std::optional<User> CachedUser(const RequestHead& req) {
    auto h = req.Header("authorization");
    if (!h) return std::nullopt;
    auto cred = ParseAuthorization(*h);
    if (!cred.ok()) return std::nullopt;
    User u;
    if (!auth_cache_.Get(Sha256Hex(cred->token), &u)) return std::nullopt;
    if (!cred->basic_user.empty() && !ConstantTimeEquals(cred->basic_user, u.username)) return std::nullopt;
    return u;
  }

  std::string Refusal(int status, const std::string& reason) override {
    metrics_.CountStatus(status);
    std::string body = reason + "\n";
    return ResponseHead(status, {{"Content-Type", "text/plain; charset=utf-8"}}, body.size(), false) + body;
  }

 private:
  // Routes a request (routes.h) to its handler. Returns false when the connection must close.
  bool Handle(Conn& c, const RequestHead& req, const std::string& remote, bool* keep, PendingSend* later) {
    const bool head_only = req.method == "HEAD";
    RouteMatch m = MatchRoute(req, static_cast<bool>(o_.extra_route));
    if (m.extra_first) {
      int64_t org = 0;
      if (req.Header("authorization")) {
        auto u = Authenticate(req);
        if (u.ok()) org = u->org_id;
      }
      if (auto r = o_.extra_route(req.method, req.target, org)) {
        metrics_.CountStatus(r->status);
        return Queue(later, ResponseHead(r->status, r->headers, r->body.size(), *keep) + (head_only ? "" : r->body)) && *keep;
      }
    }
    switch (m.route) {
      case Route::kMethodNotAllowed:
        SendSmall(later, &metrics_, 405, "only GET and HEAD\n", false, {{"Allow", "GET, HEAD"}});
        return false;
      case Route::kAckConfirm: return AckConfirm(later, &metrics_, acks_, m.rel, *keep);
      case Route::kAckPage: return AckPage(later, &metrics_, m.rel, *keep, head_only);
      case Route::kNotFound: return SendSmall(later, &metrics_, 404, "not found\n", *keep, {}, head_only);
      case Route::kBadPath: return SendSmall(later, &metrics_, 400, "bad request path\n", false, {}, head_only);
      case Route::kHealth: return HealthPage(later, &metrics_, *keep, head_only);
      case Route::kMetrics: {
        {
          std::lock_guard<std::mutex> l(mu_);
          if (loops_) metrics_.connections_open = static_cast<uint64_t>(loops_->open_connections());
        }
        return MetricsPage(later, &metrics_, o_.chain.extra_metrics, *keep, head_only);
      }
      case Route::kMetadata:
      case Route::kTarget: break;
    }
    // Authentication.
    auto user = Authenticate(req);
    if (!user.ok() && user.status().code() == ErrorCode::kUnauthorized && o_.chain.authenticate_node) {
      // Not a customer: perhaps a downstream node of the chain pulling a sync.
      auto node = AuthenticateNode(req);
      if (node.ok()) {
        if (m.route == Route::kMetadata) return metadata_service_->Serve(req, m.rel, *keep, head_only, later, &*node);
        return downloads_->Serve(c, req, m.rel, User{}, remote, keep, head_only, later, &*node);
      }
      if (node.status().code() == ErrorCode::kUnavailable)
        return SendSmall(later, &metrics_, 503, "the store is unavailable; try again later\n", false);
    }
    if (user.ok() && o_.chain.fenced && o_.chain.fenced->load()) {
      if (m.route == Route::kTarget) {
        if (auto e = catalogue_.Find(m.rel))
          downloads_->Refused(*user, e->path, "fenced: this node is off the compliance policy");
      }
      return SendSmall(later, &metrics_, 503, "this node is fenced off by the compliance policy; use another mirror\n", false);
    }
    if (!user.ok()) {
      if (user.status().code() == ErrorCode::kUnavailable)
        return SendSmall(later, &metrics_, 503, "the audit store is unavailable; try again later\n", false);
      return SendSmall(later, &metrics_, 401, "a valid token is required (Authorization: Bearer <token>)\n", *keep, {}, head_only);
    }
    if (m.route == Route::kMetadata) return metadata_service_->Serve(req, m.rel, *keep, head_only, later);
    return downloads_->Serve(c, req, m.rel, *user, remote, keep, head_only, later);
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

  ServerOptions o_;
  // The store's roles the server uses (the audit record goes through audit_'s AuditSink).
  TargetCatalogue* targets_;  // node quarantine records
  NotificationLedger* acks_;  // acknowledgements of notifications
  AuthDirectory* reads_;      // token and entitlement look-ups (a read connection when given)
  Metrics metrics_;
  Catalogue catalogue_;
  VerifyCache verify_;
  AuditLog audit_;
  TtlCache<User> auth_cache_;
  TtlCache<bool> entitlement_cache_;
  SSL_CTX* ssl_ctx_ = nullptr;
  bool ktls_ = false;
  int listen_fd_ = -1;
  int repo_fd_ = -1;  // the served tree: every file is opened beneath it, links refused
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  MetadataFiles metadata_;
  std::unique_ptr<DownloadService> downloads_;  // targets/: entitlement, verified bytes, the record (Init)
  std::unique_ptr<MetadataService> metadata_service_;  // metadata/ (Init)
  std::mutex mu_;  // guards loops_ (Stop may come before Run)
  std::unique_ptr<ConnectionLoops> loops_;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options, Store* store, AuthDirectory* read_store) {
  auto s = std::make_unique<ServerImpl>(options, store, read_store);
  PG_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace patchgate::server
