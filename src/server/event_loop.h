// The connection core of `patchgate serve`: one epoll loop per core over non-blocking
// sockets, and a small worker pool for the work that may block (store look-ups, file
// verification, reading and checking chunks, waiting for the audit commit).
//
// A connection lives on one loop: TLS handshake, reading the request head (header deadline
// and idle deadline enforced by the loop), answering what needs neither store nor disk
// (/healthz, parse errors, 408), finishing a response whose bytes the client did not take
// at once (send timeout: no progress for that long drops the client), and the lingering
// close. A parsed head goes to a worker, which owns the connection until the response is
// sent or handed back to the loop. An idle or slow connection costs a small struct and the
// bytes it sent so far: no thread, no stack.
//
// Limits: max_connections in total, max_per_address per source IPv4 address (a new
// connection over either is closed at once). Thread-safe where said; Run() owns the loops.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/connection.h"
#include "server/http_request.h"

namespace patchgate::server {

// Response bytes a worker could not hand to the kernel at once: the loop sends them as the
// client reads (or drops the client at the send timeout), then calls done.
struct PendingSend {
  std::string head;
  std::shared_ptr<const void> owner;  // keeps `body` alive
  std::string_view body;
  // When >= 0: a file holding exactly `body` from body_fd_offset on, that cannot change
  // (a sealed memfd); plain connections sendfile(2) the body from it instead of copying.
  int body_fd = -1;
  uint64_t body_fd_offset = 0;
  size_t offset = 0;  // bytes of head+body already taken by the kernel
  // With the body bytes the kernel took, and whether all were. Runs on the loop thread
  // (must not block).
  std::function<void(uint64_t body_sent, bool complete)> done;
  // Set: nothing is sent before this says so (the audit record's group commit). The loop
  // calls it once with `ready`, which may be called from any thread, once: true sends the
  // response; false sends the refusal instead and closes (`done` is then never called).
  // Meanwhile the connection holds no thread.
  std::function<void(std::function<void(bool ok)> ready)> wait;
  // The refusal: a whole response, made only when needed (on the loop thread).
  std::string (*refusal)() = nullptr;
  bool empty() const { return offset >= head.size() + body.size() && !done && !wait; }
};

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // On a worker thread; `c` belongs to the caller until it returns. `keep`: the client
  // asked for keep-alive and the server is not draining. Returns whether the connection
  // may go on after this response. May leave the rest of the response in *later (the loop
  // sends it, then goes on or closes as returned).
  virtual bool Handle(Conn& c, const RequestHead& req, const std::string& remote, bool keep,
                      PendingSend* later) = 0;
  // On a loop thread: answers what needs no store look-up and no hashing (/healthz; a
  // download whose token, entitlement and verified bytes are all cached) by filling *out
  // and *go_on, and returns true; false sends the request to a worker. Must not block.
  virtual bool OnLoop(const RequestHead& req, const std::string& remote, bool keep, PendingSend* out,
                      bool* go_on) = 0;
  // On a loop thread: the response to a bad head (400/414/431/501/505) or a head not
  // received in time (408). The connection closes after it.
  virtual std::string Refusal(int status, const std::string& reason) = 0;
};

struct LoopOptions {
  int loops = 0;  // 0: one per core
  int header_timeout_seconds = 10;
  int idle_timeout_seconds = 30;
  int send_timeout_seconds = 30;
  int max_connections = 16384;
  int max_per_address = 2048;
  int min_workers = 8, max_workers = 256;
  HttpLimits limits;
  ssl_ctx_st* tls = nullptr;  // not owned; TLS when set
};

class ConnectionLoops {
 public:
  // `listen_fd` (non-blocking, listening) and `handler` are not owned and must outlive Run().
  ConnectionLoops(const LoopOptions& options, int listen_fd, ConnectionHandler* handler);
  ~ConnectionLoops();
  // Serves until Stop(); then refuses new connections at once (closes listen_fd as soon as
  // no loop waits on it), closes idle connections, lets in-flight responses finish for
  // `drain`, cuts what is left (their handlers see write errors and complete their
  // records with the bytes sent) and returns when every connection is gone.
  void Run(std::chrono::seconds drain);
  void Stop();  // from any thread
  int open_connections() const { return active_.load(); }

  struct Impl;  // internal

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<int> active_{0};
};

}  // namespace patchgate::server
