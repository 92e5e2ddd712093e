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
#include "server/audit_log.h"
#include "server/audit_text.h"
#include "server/auth_header.h"
#include "server/catalogue.h"
#include "server/connection.h"
#include "server/event_loop.h"
#include "server/http_response.h"
#include "server/metrics.h"
#include "server/range.h"
#include "server/served_files.h"
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
  }

  void Stop() override {
    stopping_ = true;
    std::lock_guard<std::mutex> l(mu_);
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
    const bool head_only = req.method == "HEAD";
    if (req.target == "/healthz") {
      metrics_.CountStatus(200);
      out->head = ResponseHead(200, {{"Content-Type", "text/plain; charset=utf-8"}}, 3, keep);
      if (!head_only) out->head += "ok\n";
      *go_on = keep;
      return true;
    }
    // Downloads whose every answer is cached: the token, the entitlement, the catalogue
    // and the verified bytes. Anything else (a miss, an error status) goes to a worker,
    // which asks the store, hashes, and answers every refusal.
    if (head_only || (o_.chain.fenced && o_.chain.fenced->load())) return false;
    if (req.target.rfind("/.well-known/", 0) == 0) return false;
    auto origin = OriginForm(req);
    if (!origin.ok()) return false;
    auto path = NormalizeTarget(*origin);
    if (!path.ok() || (path->area != Area::kMetadata && path->area != Area::kTargets)) return false;
    auto user = CachedUser(req);
    if (!user) return false;
    if (path->area == Area::kMetadata) {
      if (auto ts = CatalogueTimestamp(path->rel)) {
        *go_on = keep;
        ++metrics_.loop_answers;
        MetadataResponse(req, path->rel, ts, keep, out, nullptr);
        return true;
      }
      // Served from memory only while the file at the path is still the one read (one
      // stat, no open); anything else goes to a worker, which opens it beneath the tree.
      struct stat st {};
      if (!StatForCacheCheck(repo_fd_, "metadata/" + path->rel, &st)) return false;
      auto m = metadata_.Cached(st, path->rel);
      if (!m) return false;
      *go_on = keep;
      ++metrics_.loop_answers;
      MetadataResponse(req, path->rel, m, keep, out, nullptr);
      return true;
    }
    if (o_.chain.content_generation && o_.chain.content_generation->load() != seen_generation_.load()) return false;
    if (!catalogue_.CurrentWithoutLoading()) return false;
    auto entry = catalogue_.Find(path->rel);
    if (!entry) return false;
    bool entitled = false;
    if (!entitlement_cache_.Get(std::to_string(user->org_id) + "\n" + entry->product, &entitled) || !entitled)
      return false;
    // The verified bytes are sent only while the file at the path is still the one they
    // were read and verified from (a changed file goes to a worker: verified again, and a
    // mismatch quarantined).
    struct stat st {};
    if (!StatForCacheCheck(repo_fd_, "targets/" + path->rel, &st)) return false;
    auto v = verify_.CachedContent(st, &metrics_);
    if (!v || v->v->mode != ServeMode::kChunkDigests || !ConstantTimeEquals(v->v->sha256, entry->sha256) ||
        v->v->length != entry->length)
      return false;
    if (req.Header("if-none-match")) return false;
    uint64_t len = entry->length, first = 0, last = len ? len - 1 : 0;
    bool ranged = false;
    std::string range_header;
    if (auto r = req.Header("range")) {
      range_header = CaptureText(*r, kMaxRangeBytes);
      ByteRange br = ParseRange(*r, len);
      if (br.kind == ByteRange::Kind::kUnsatisfiable) return false;
      if (br.kind == ByteRange::Kind::kRange) {
        ranged = true;
        first = br.first;
        last = br.last;
      }
    }
    *go_on = keep;
    ++metrics_.loop_answers;
    DownloadFromMemory(req, *user, *entry, v->content, first, last, ranged, range_header, remote, keep, out);
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

  static constexpr uint64_t kSendfileFromMemfdMin = 64 << 10;

  // A download served from verified memory: the response waits for the audit record's
  // group commit without holding a thread (PendingSend::wait), then the loop sends it.
  void DownloadFromMemory(const RequestHead& req, const User& user, const tuf::CatalogueEntry& entry,
                          std::shared_ptr<const VerifiedBytes> content, uint64_t first, uint64_t last, bool ranged,
                          const std::string& range_header, const std::string& remote, bool keep, PendingSend* out) {
    uint64_t len = entry.length;
    uint64_t body_len = len == 0 ? 0 : last - first + 1;
    int status = ranged ? 206 : 200;
    HeaderList headers = {{"Content-Type", "application/octet-stream"}, {"ETag", "\"" + entry.sha256 + "\""},
                          {"Accept-Ranges", "bytes"}, {"Cache-Control", "private, max-age=31536000, immutable"}};
    if (ranged)
      headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                                std::to_string(len));
    out->head = ResponseHead(status, headers, body_len, keep);
    out->body = content->view().substr(static_cast<size_t>(first), static_cast<size_t>(body_len));
    // Plain connections send a larger body from the sealed memfd without a copy through
    // user space; a small one goes out with the head in one write.
    out->body_fd = body_len >= kSendfileFromMemfdMin ? content->sealed_fd() : -1;
    out->body_fd_offset = first;
    out->owner = std::move(content);
    auto id = std::make_shared<int64_t>(0);
    out->done = [this, id, body_len, ranged](uint64_t sent, bool) { Finished(*id, sent, body_len, ranged); };
    std::string why = "the audit store is unavailable; nothing was served\n";
    out->refusal = ResponseHead(503, {{"Content-Type", "text/plain; charset=utf-8"}}, why.size(), false) + why;
    // The record is durable before the first byte.
    out->wait = [this, id, status, start = MakeStart(req, user, entry, range_header, remote)](
                    std::function<void(bool)> ready) mutable {
      audit_.BeginAsync(std::move(start), [this, id, status, ready = std::move(ready)](Result<int64_t> r) {
        if (r.ok()) *id = *r;
        metrics_.CountStatus(r.ok() ? status : 503);
        ready(r.ok());
      });
    };
  }

  std::string Refusal(int status, const std::string& reason) override {
    metrics_.CountStatus(status);
    std::string body = reason + "\n";
    return ResponseHead(status, {{"Content-Type", "text/plain; charset=utf-8"}}, body.size(), false) + body;
  }

 private:
  // A whole small response (an error page, a HEAD answer, a 304), left in *later: the
  // event loop writes it as the client reads (a client that reads nothing is dropped at
  // the send timeout), so no worker waits on a slow reader for it. Returns whether the
  // connection may go on after it: false when it says "Connection: close".
  bool Send(PendingSend* later, int status, const std::string& body, bool keep,
            std::vector<std::pair<std::string, std::string>> headers = {}, bool head_only = false,
            const char* content_type = "text/plain; charset=utf-8") {
    metrics_.CountStatus(status);
    headers.emplace_back("Content-Type", content_type);
    if (status == 401) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"patchgate\"");
    std::string h = ResponseHead(status, headers, body.size(), keep);
    if (!head_only) h += body;
    return Queue(later, std::move(h)) && keep;
  }
  static bool Queue(PendingSend* later, std::string bytes) {
    later->head = std::move(bytes);
    return true;
  }

  // Returns false when the connection must close.
  bool Handle(Conn& c, const RequestHead& req, const std::string& remote, bool* keep, PendingSend* later) {
    bool head_only = req.method == "HEAD";
    auto origin = OriginForm(req);
    auto path = origin.ok() ? NormalizeTarget(*origin) : Result<NormalizedPath>(origin.status());
    if (req.method == "POST" && path.ok() && path->area == Area::kAck)
      return HandleAck(later, path->rel, *keep, /*confirm=*/true, false);
    if (req.method != "GET" && req.method != "HEAD") {
      Send(later, 405, "only GET and HEAD\n", false, {{"Allow", "GET, HEAD"}});
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
        return Queue(later, ResponseHead(r->status, r->headers, r->body.size(), *keep) + (head_only ? "" : r->body)) && *keep;
      }
    }
    if (!path.ok()) {
      int status = path.status().code() == ErrorCode::kNotFound ? 404 : 400;
      return Send(later, status, status == 404 ? "not found\n" : "bad request path\n", *keep && status == 404, {}, head_only);
    }
    switch (path->area) {
      case Area::kHealth: return Send(later, 200, "ok\n", *keep, {}, head_only);
      case Area::kMetrics: {
        {
          std::lock_guard<std::mutex> l(mu_);
          if (loops_) metrics_.connections_open = static_cast<uint64_t>(loops_->open_connections());
        }
        std::string body = metrics_.Render();
        if (o_.chain.extra_metrics) body += o_.chain.extra_metrics();
        return Send(later, 200, body, *keep, {}, head_only, "text/plain; version=0.0.4");
      }
      case Area::kAck: return HandleAck(later, path->rel, *keep, /*confirm=*/false, head_only);
      case Area::kMetadata:
      case Area::kTargets: break;
      case Area::kOther: return Send(later, 404, "not found\n", *keep, {}, head_only);
    }
    // Authentication.
    auto user = Authenticate(req);
    if (!user.ok() && user.status().code() == ErrorCode::kUnauthorized && o_.chain.authenticate_node) {
      // Not a customer: perhaps a downstream node of the chain pulling a sync.
      auto node = AuthenticateNode(req);
      if (node.ok()) {
        if (path->area == Area::kMetadata) return ServeMetadata(c, req, path->rel, *keep, head_only, later, &*node);
        return ServeTarget(c, req, path->rel, User{}, remote, keep, head_only, later, &*node);
      }
      if (node.status().code() == ErrorCode::kUnavailable)
        return Send(later, 503, "the store is unavailable; try again later\n", false);
    }
    if (user.ok() && o_.chain.fenced && o_.chain.fenced->load()) {
      if (path->area == Area::kTargets) {
        if (auto e = catalogue_.Find(path->rel)) Refused(*user, e->path, "fenced: this node is off the compliance policy");
      }
      return Send(later, 503, "this node is fenced off by the compliance policy; use another mirror\n", false);
    }
    if (!user.ok()) {
      if (user.status().code() == ErrorCode::kUnavailable)
        return Send(later, 503, "the audit store is unavailable; try again later\n", false);
      return Send(later, 401, "a valid token is required (Authorization: Bearer <token>)\n", *keep, {}, head_only);
    }
    if (path->area == Area::kMetadata) return ServeMetadata(c, req, path->rel, *keep, head_only, later);
    return ServeTarget(c, req, path->rel, *user, remote, keep, head_only, later);
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
  bool HandleAck(PendingSend* later, const std::string& token, bool keep, bool confirm, bool head_only) {
    if (!confirm) {
      std::string page =
          "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">"
          "<title>Acknowledge the security notice</title></head><body><h1>Acknowledge the security notice</h1>"
          "<p>Press the button to confirm that your organisation has received this notice.</p>"
          "<form method=\"post\" action=\"/ack/" + token + "\"><button type=\"submit\">Confirm receipt</button></form>"
          "</body></html>\n";
      return Send(later, 200, page, keep, {{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}}, head_only,
                  "text/html; charset=utf-8");
    }
    Status st = acks_->Acknowledge(Sha256Hex(token), SystemClock::Get().NowMicros());
    if (st.code() == ErrorCode::kNotFound) return Send(later, 404, "not found\n", keep);
    if (!st.ok()) return Send(later, 503, "try again later\n", false);
    std::string body =
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acknowledged</title></head><body>"
        "<h1>Thank you</h1><p>Your acknowledgement has been recorded.</p></body></html>\n";
    return Send(later, 200, body, keep, {{"Cache-Control", "no-store"}}, false, "text/html; charset=utf-8");
  }

  // Sends a response whose body is in memory: what the socket takes now is sent from this
  // thread; the rest is left in *later for the loop (a slow reader holds no thread).
  // `done` gets the body bytes the client took and whether that was all (on this thread
  // or on the loop; it must not block).
  void SendFromMemory(Conn& c, std::string head, std::shared_ptr<const void> owner, std::string_view body,
                      PendingSend* later, std::function<void(uint64_t, bool)> done) {
    size_t wrote = 0;
    Io r = c.TryWrite(head, body, false, &wrote);
    if (r == Io::kWouldBlock) {
      later->head = std::move(head);
      later->owner = std::move(owner);
      later->body = body;
      later->offset = wrote;
      later->done = std::move(done);
      return;
    }
    uint64_t body_sent = wrote > head.size() ? wrote - head.size() : 0;
    if (done) done(body_sent, r == Io::kOk);
  }

  // 200 (or 304 for a matching If-None-Match) with the file's bytes from memory, into *out.
  void MetadataResponse(const RequestHead& req, const std::string& name, std::shared_ptr<const MetadataFile> m,
                        bool keep, PendingSend* out, const std::string* node) {
    HeaderList headers = {{"Content-Type", "application/json"},
                          {"Cache-Control", name == "timestamp.json" ? "no-cache" : "max-age=31536000, immutable"},
                          {"ETag", m->etag}};
    if (auto inm = req.Header("if-none-match"); inm && IfNoneMatchHits(*inm, m->etag)) {
      // No body; Content-Length says what a 200 would carry (RFC 9110 §8.6).
      metrics_.CountStatus(304);
      out->head = ResponseHead(304, headers, m->bytes->size(), keep);
      return;
    }
    metrics_.CountStatus(200);
    out->head = ResponseHead(200, headers, m->bytes->size(), keep);
    if (req.method == "HEAD") return;
    out->body = *m->bytes;
    out->owner = m->bytes;
    out->done = [this, node = node ? std::optional<std::string>(*node) : std::nullopt, name](uint64_t sent, bool) {
      metrics_.bytes_sent += sent;
      if (node) RecordSync(&*node, "metadata/" + name, sent);
    };
  }

  bool ServeMetadata(Conn& c, const RequestHead& req, const std::string& name, bool keep, bool head_only,
                     PendingSend* later, const std::string* node = nullptr) {
    if (auto ts = CatalogueTimestamp(name)) {
      MetadataResponse(req, name, ts, keep, later, node);
      return keep;
    }
    int fd = OpenBeneath(repo_fd_, "metadata/" + name);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd < 0 && errno == ELOOP)
        log::Warn("refusing to serve a symbolic link in the repository", {{"file", "metadata/" + name}});
      if (fd >= 0) ::close(fd);
      return Send(later, 404, "not found\n", keep, {}, head_only);
    }
    auto file = metadata_.Load(fd, st, name);
    ::close(fd);
    if (!file.ok()) return Send(later, 503, "this file is temporarily unavailable; try again\n", keep, {}, head_only);
    // The loop sends it (as the client reads).
    MetadataResponse(req, name, *file, keep, later, node);
    return keep;
  }

  // timestamp.json as the catalogue was loaded from it (the one a client may act on: every
  // target it names is in the catalogue); null for any other file.
  std::shared_ptr<const MetadataFile> CatalogueTimestamp(const std::string& name) {
    if (name != "timestamp.json" || !catalogue_.background()) return nullptr;
    CheckGeneration();
    return catalogue_.Timestamp();
  }

  void Refused(const User& user, const std::string& target, const std::string& reason) {
    if (o_.chain.refused && user.id != 0) o_.chain.refused(user, target, reason);
  }

  void Quarantine(const tuf::CatalogueEntry& entry, const std::string& actual, const std::string& why) {
    log::Error("target does not match its signed hash; refusing to serve it",
               {{"target", entry.path}, {"expected", entry.sha256}, {"actual", actual}, {"why", why},
                {"node", o_.node_name}});
    Status q = targets_->QuarantineTargetOnNode(o_.node_name, entry.path, entry.sha256, actual,
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
    // Double buffering on one thread: while the socket is full with the current chunk, the
    // next one is read and checked (the reader keeps two buffers), so hashing overlaps
    // with the kernel sending. A next chunk that fails its check ends the transfer after
    // the current (verified) one.
    std::optional<std::string_view> next;
    std::string next_error;
    while (!slice.empty()) {
      size_t w = 0;
      Io r = c.TryWrite(slice, {}, sent + slice.size() < body_len, &w);
      slice.remove_prefix(w);
      sent += w;  // what the kernel took, also of a slice cut short
      if (r == Io::kWouldBlock) {
        if (!next && next_error.empty() && !reader.done()) {
          auto s = reader.Next();
          if (s.ok()) next = *s;
          else next_error = s.status().message();
          continue;
        }
        if (w == 0 && !c.WaitReady()) break;  // nothing taken for the send timeout: drop the client
        continue;
      }
      if (r != Io::kOk) break;
      if (next) {
        slice = *next;
        next.reset();
        continue;
      }
      if (!next_error.empty()) {
        *integrity_error = next_error;
        break;
      }
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
                   const std::string& remote, bool* keep, bool head_only, PendingSend* later,
                   const std::string* node = nullptr) {
    CheckGeneration();
    Status cs = catalogue_.Refresh();
    if (!cs.ok()) log::Warn("catalogue reload failed; serving the last good one", {{"error", cs.ToString()}});
    auto entry = catalogue_.Find(rel);
    if (!entry) return Send(later, 404, "not found\n", *keep, {}, head_only);
    std::string ekey = std::to_string(user.org_id) + "\n" + entry->product;
    bool is_entitled = node != nullptr;  // a node of the chain mirrors every product
    if (!is_entitled && !entitlement_cache_.Get(ekey, &is_entitled)) {
      auto entitled = AskOnceMore([&] { return reads_->IsEntitled(user.org_id, entry->product); });
      if (!entitled.ok()) return Send(later, 503, "the audit store is unavailable; try again later\n", false);
      is_entitled = *entitled;
      entitlement_cache_.Put(ekey, is_entitled);
    }
    if (!is_entitled) return Send(later, 403, "your organisation is not entitled to " + entry->product + "\n", *keep, {}, head_only);

    int fd = OpenBeneath(repo_fd_, "targets/" + rel);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      log::Error(fd < 0 && errno == ELOOP ? "published target is a symbolic link; not served"
                                          : "published target missing on disk",
                 {{"target", entry->path}, {"file", "targets/" + rel}});
      if (fd >= 0) ::close(fd);
      if (!node) Refused(user, entry->path, "not on this node's disk (quarantined or missing)");
      return Send(later, 503, "this file is temporarily unavailable\n", *keep, {}, head_only);
    }
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    // A node's pull adds no bytes to the verified memory (VerifyCache::Verify).
    auto v = verify_.Verify(fd, st, &metrics_, /*cache_content=*/node == nullptr);
    if (!v.ok() || !ConstantTimeEquals(v->v->sha256, entry->sha256) || v->v->length != entry->length) {
      ++metrics_.verify_mismatches;
      Quarantine(*entry, v.ok() ? v->v->sha256 : "unreadable", v.ok() ? "whole-file hash" : v.status().ToString());
      if (!node) Refused(user, entry->path, "integrity: does not match its signed hash; quarantined");
      return Send(later, 503, "this file failed integrity verification and is not served\n", false);
    }
    std::shared_ptr<const FileVerification> verified = v->v;
    // A small file's verified bytes, in memory: exactly the bytes whose SHA-256 was just
    // compared with the signed one. Sent as they are (no re-read, no re-hash).
    std::shared_ptr<const VerifiedBytes> content = v->content;

    uint64_t len = entry->length, first = 0, last = len ? len - 1 : 0;
    bool ranged = false;
    std::string range_header;
    if (auto r = req.Header("range")) {
      range_header = CaptureText(*r, kMaxRangeBytes);
      ByteRange br = ParseRange(*r, len);
      if (br.kind == ByteRange::Kind::kUnsatisfiable)
        return Send(later, 416, "range not satisfiable\n", *keep, {{"Content-Range", "bytes */" + std::to_string(len)}}, head_only);
      if (br.kind == ByteRange::Kind::kRange) {
        ranged = true;
        first = br.first;
        last = br.last;
      }
    }
    std::string etag = "\"" + entry->sha256 + "\"";
    if (auto inm = req.Header("if-none-match"); inm && IfNoneMatchHits(*inm, etag)) {
      // Not a download: nothing is sent, so nothing is recorded. Content-Length is what a
      // 200 would carry (RFC 9110 §8.6).
      metrics_.CountStatus(304);
      return Queue(later, ResponseHead(304, {{"ETag", etag}, {"Cache-Control", "private, max-age=31536000, immutable"}},
                                     len, *keep)) && *keep;
    }
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
      return Queue(later, ResponseHead(status, headers, body_len, *keep)) && *keep;
    }
    if (content && verified->mode == ServeMode::kChunkDigests) {
      std::string_view body = content->view().substr(static_cast<size_t>(first), static_cast<size_t>(body_len));
      std::string head = ResponseHead(status, headers, body_len, *keep);
      if (node) {
        metrics_.CountStatus(status);
        SendFromMemory(c, std::move(head), content, body, later, [this, node = *node, rel](uint64_t sent, bool) {
          metrics_.bytes_sent += sent;
          RecordSync(&node, "targets/" + rel, sent);
        });
        return *keep;
      }
      // The loop holds it until the record is durable, then sends it.
      DownloadFromMemory(req, user, *entry, content, first, last, ranged, range_header, remote, *keep, later);
      return *keep;
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
        if (!node) Refused(user, entry->path, "integrity: changed on disk after verification; quarantined");
        return Send(later, 503, "this file failed integrity verification and is not served\n", false);
      }
      slice = *s;
    }
    if (node) {
      // A sync, not a customer download: no audit record; reported to the chain instead.
      // The bytes are checked exactly as for a customer: a mirror never receives a changed byte.
      metrics_.CountStatus(status);
      std::string integrity_error;
      uint64_t sent = 0;
      if (c.Write(ResponseHead(status, headers, body_len, *keep), body_len > 0))
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
    auto id = audit_.Begin(MakeStart(req, user, *entry, range_header, remote));
    if (!id.ok()) return Send(later, 503, "the audit store is unavailable; nothing was served\n", false);

    metrics_.CountStatus(status);
    uint64_t sent = 0;
    std::string integrity_error;
    if (c.Write(ResponseHead(status, headers, body_len, *keep), body_len > 0))
      sent = SendChecked(c, fd, first, body_len, kernel_verified, reader, slice, &integrity_error);
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
    Finished(*id, sent, body_len, ranged, integrity_error.empty() ? "" : "integrity: " + integrity_error);
    return sent == body_len && *keep;
  }

  DownloadStart MakeStart(const RequestHead& req, const User& user, const tuf::CatalogueEntry& entry,
                          const std::string& range_header, const std::string& remote) {
    DownloadStart start;
    start.started_at = SystemClock::Get().NowMicros();
    start.node = o_.node_name;
    start.user_id = user.id;
    start.org_id = user.org_id;
    start.target_path = entry.path;
    start.sha256 = entry.sha256;
    start.range = range_header;
    start.remote_addr = remote;
    if (auto ua = req.Header("user-agent")) start.user_agent = CaptureText(*ua, kMaxUserAgentBytes);
    return start;
  }

  // Completes a download's record with the body bytes the client took, and why it was cut
  // when that was for integrity (`detail`). Never blocks.
  void Finished(int64_t id, uint64_t sent, uint64_t body_len, bool ranged, std::string detail = "") {
    metrics_.bytes_sent += sent;
    DownloadOutcome outcome = sent < body_len ? DownloadOutcome::kAborted
                                              : (ranged ? DownloadOutcome::kPartial : DownloadOutcome::kComplete);
    if (outcome == DownloadOutcome::kComplete) ++metrics_.downloads_complete;
    else if (outcome == DownloadOutcome::kPartial) ++metrics_.downloads_partial;
    else ++metrics_.downloads_aborted;
    audit_.Finish({id, SystemClock::Get().NowMicros(), sent, outcome, std::move(detail)});
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
  std::atomic<uint64_t> seen_generation_{0};
  MetadataFiles metadata_;
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
