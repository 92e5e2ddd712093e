// `patchgate serve`: the download server. HTTP/1.1 (keep-alive, HEAD, single Range,
// ETag = sha256) over plain TCP or TLS 1.2/1.3. Connections live on epoll loops over
// non-blocking sockets (src/server/event_loop.h): idle and slow clients cost memory, not
// threads; store look-ups, verification and file reads run on a small worker pool.
//
// Three promises, in this order, for every target download:
//   1. only an authenticated user of an organisation entitled to the target's product;
//   2. the file is verified against its signed sha256 (verdict cached by device, inode,
//      size, mtime and ctime) — a mismatch is never served (503) and is quarantined;
//   3. the download is durable in the store before the first body byte (group commit),
//      and completed afterwards with bytes sent and outcome (completions are batched for
//      up to audit_finish_ms; nothing waits on them; the drain writes them all).
// Thread-safe; Run() blocks until Stop() (or SIGTERM via the CLI), then drains in-flight
// downloads and completes their records.
//
// Inside: server.cc binds, authenticates and routes (routes.h: the route table) to the
// handlers: download_service.h (targets: the three promises above), the metadata, ack,
// health and metrics handlers in server.cc; event_loop.h holds the connections,
// audit_log.h the group commit, verified_file.h the verification, replies.h the small
// responses every handler shares.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "server/http_request.h"
#include "store/store.h"

namespace patchgate::server {

// Hooks a node of a chain sets (src/mirror); a plain `patchgate serve` may leave them all
// empty. Everything they point to must outlive the server; callbacks may run on any
// connection thread at once.
struct ChainHooks {
  // A bearer token that is no user's may be a downstream node's. Given the token's hex
  // SHA-256: the node's name; kUnauthorized if no node owns it (or it is revoked),
  // kUnavailable if the store is down (answered 503). A node may read every metadata file
  // and every target (verified before sending, like any target); its pulls are reported
  // to record_sync and never written as customer downloads.
  std::function<Result<std::string>(const std::string& token_hash)> authenticate_node;
  // One call per file sent to a node: "metadata/<name>" or "targets/<name>", body bytes.
  std::function<void(const std::string& node, const std::string& what, uint64_t bytes)> record_sync;
  // While *fenced is true, customer requests for metadata/ and targets/ answer 503 (a node
  // fenced off by the compliance policy). Nodes still pull, /healthz and /metrics answer.
  const std::atomic<bool>* fenced = nullptr;
  // A mirror bumps this after switching to a new snapshot: the catalogue is re-checked at
  // the next request instead of after its usual 500 ms.
  const std::atomic<uint64_t>* content_generation = nullptr;
  // An authenticated customer asked for a target and was refused (503) instead of served:
  // the user, the signed target path, and why. Called on the request's thread: it must not
  // block (a node queues it and writes it off the request path, rate-limited).
  std::function<void(const User& user, const std::string& target, const std::string& reason)> refused;
  // Prometheus text appended to /metrics (the fleet's compliance states).
  std::function<std::string()> extra_metrics;
};

struct ServerOptions {
  std::string repo_dir;
  std::string listen = "127.0.0.1:8443";  // host:port; port 0 picks a free one
  std::string node_name = "origin";
  std::string tls_cert, tls_key;  // both or neither
  HttpLimits limits;
  int header_timeout_seconds = 10;     // a request head must arrive within this (slowloris)
  int idle_timeout_seconds = 30;       // keep-alive idle
  int send_timeout_seconds = 30;       // a client that reads nothing for this long is dropped
  int max_connections = 16384;
  // Connections from one source address at once (a new one over it is closed at once).
  int max_connections_per_address = 2048;
  int loops = 0;          // event loops (threads accepting and reading); 0: one per core
  int max_workers = 256;  // threads for look-ups, verification and sending files, at most
  // Verified bytes of targets kept in memory (a sealed memfd per file) and sent from there
  // by the event loop with sendfile(2), no re-read and no re-hash (files up to
  // verified_memory_max_file; least recently used dropped past verified_memory_bytes, which
  // also counts the files being loaded). A cold file is read and hashed by one request
  // while the others asking for it wait for that read (VerifyCache).
  // Larger files stream from disk on a worker with every chunk checked before it is sent
  // (hash-while-send: about five times the CPU per byte of a sendfile from memory).
  // Defaults: VerifyCache::kMaxCachedFile and kContentBudget (why these sizes: there).
  uint64_t verified_memory_max_file = 64 << 20;
  uint64_t verified_memory_bytes = 256 << 20;
  int drain_seconds = 30;              // on Stop(): how long in-flight downloads may finish
  // How long a verified token and an entitlement answer are reused without asking the
  // store again (a revocation or a grant takes effect within this time). 0: always ask.
  int auth_cache_ms = 1000;
  // How long a download's completion (end time, bytes, outcome) may wait to be written
  // together with others. Begins are never delayed. 0: on the audit thread's next turn.
  int audit_finish_ms = 100;
  ChainHooks chain;
  // Extra routes served by another module (the CSAF provider of src/advisory, wired in
  // src/cli/cmd_serve.cc). Asked first for every GET or HEAD whose path starts with
  // "/.well-known/", with the raw request target and the requester's organisation id when
  // a valid token came with the request (0 otherwise: no or a bad token is anonymous).
  // std::nullopt: not its route, the built-in routes answer. Must be thread-safe.
  struct ExtraResponse {
    int status = 404;
    std::vector<std::pair<std::string, std::string>> headers;  // Content-Type included
    std::string body;
  };
  std::function<std::optional<ExtraResponse>(const std::string& method, const std::string& target, int64_t org_id)>
      extra_route;
};

class Server {
 public:
  // `store` must outlive the server; it takes the audit record (AuditSink) and every write
  // (TargetCatalogue: node quarantine; NotificationLedger: acknowledgements). Token and
  // entitlement look-ups (AuthDirectory) go to `read_store` when given (a second connection
  // to the same database, so they do not queue behind audit commits); it must outlive the
  // server too.
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options, Store* store,
                                                AuthDirectory* read_store = nullptr);
  virtual ~Server() = default;
  // Binds and listens; afterwards port() is the bound port.
  virtual Status Start() = 0;
  virtual int port() const = 0;
  // Serves until Stop(). Returns after the drain.
  virtual void Run() = 0;
  virtual void Stop() = 0;  // async-signal-safe enough to call from a signal-watching thread
};

}  // namespace patchgate::server
