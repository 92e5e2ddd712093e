// The download service of `patchgate serve`: answers GET/HEAD /targets/<path> for a user
// already authenticated by the server (or a downstream node of the chain), keeping the
// three promises of server.h in this order:
//   1. the user's organisation is entitled to the target's product (a node mirrors all);
//   2. the bytes sent are the bytes whose SHA-256 matched the signed one: from a sealed
//      in-memory copy of exactly the hashed bytes, through fs-verity, or read chunk by
//      chunk and each chunk checked before it leaves (a mismatch: 503, quarantined, and a
//      download cut mid-stream is recorded aborted with the bytes really sent);
//   3. the download's record is durable in the store before the first body byte, and is
//      completed afterwards with the bytes the client took and the outcome. A node's pull
//      is reported to ChainHooks::record_sync instead of being recorded as a download.
// Range (one range), If-None-Match (304, nothing recorded) and HEAD are answered here.
//
// Two entry points: Serve() on a worker (may ask the store, read and hash files, and wait
// for the audit commit) and ServeFromLoop() on an event loop (only from caches: a miss of
// any kind returns false and the request goes to a worker, which answers every refusal).
// Thread-safe; everything in Deps is not owned and must outlive the service.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "server/audit_log.h"
#include "server/catalogue.h"
#include "server/connection.h"
#include "server/event_loop.h"
#include "server/http_request.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/ttl_cache.h"
#include "server/verified_file.h"
#include "store/store.h"

namespace patchgate::server {

class DownloadService {
 public:
  struct Deps {
    const ServerOptions* options = nullptr;  // node_name and the chain hooks
    Catalogue* catalogue = nullptr;          // the signed targets: path, product, length, sha256
    VerifyCache* verify = nullptr;
    AuditLog* audit = nullptr;
    Metrics* metrics = nullptr;
    TargetCatalogue* quarantine = nullptr;   // QuarantineTargetOnNode
    AuthDirectory* entitlements = nullptr;   // IsEntitled
    TtlCache<bool>* entitlement_cache = nullptr;
    int repo_fd = -1;  // the served tree; files are opened beneath it, links refused
  };
  explicit DownloadService(Deps deps) : d_(deps) {}

  // On a worker: answers the request for targets/<rel> into `c` or *later (the loop sends
  // what is left there). `node` set: a downstream node's pull (no entitlement check, no
  // download record). *keep: in, the connection may stay open; out, it may not after a
  // refusal that closes it. Returns whether the connection may go on.
  bool Serve(Conn& c, const RequestHead& req, const std::string& rel, const User& user, const std::string& remote,
             bool* keep, bool head_only, PendingSend* later, const std::string* node = nullptr);
  // On an event loop, without blocking: answers a GET whose token (the caller's `user`),
  // entitlement, catalogue entry and verified bytes are all cached, into *out (the loop
  // holds it until the record is durable, then sends it). False: not answered here.
  bool ServeFromLoop(const RequestHead& req, const std::string& rel, const User& user, const std::string& remote,
                     bool keep, PendingSend* out);

  // The chain's content generation (ChainHooks::content_generation): a new one expires the
  // catalogue (re-checked at once). CatalogueCurrent: no generation has been missed.
  void CheckGeneration();
  bool CatalogueCurrent() const;
  // Tells the chain (ChainHooks::refused) that a customer's request was refused.
  void Refused(const User& user, const std::string& target, const std::string& reason);

 private:
  void Quarantine(const tuf::CatalogueEntry& entry, const std::string& actual, const std::string& why);
  uint64_t SendChecked(Conn& c, int fd, uint64_t first, uint64_t body_len, bool kernel_verified, CheckedReader& reader,
                       std::string_view slice, std::string* integrity_error);
  void DownloadFromMemory(const RequestHead& req, const User& user, const tuf::CatalogueEntry& entry,
                          std::shared_ptr<const VerifiedBytes> content, uint64_t first, uint64_t last, bool ranged,
                          const std::string& range_header, const std::string& remote, bool keep, PendingSend* out);
  DownloadStart MakeStart(const RequestHead& req, const User& user, const tuf::CatalogueEntry& entry,
                          const std::string& range_header, const std::string& remote);
  void Finished(int64_t id, uint64_t sent, uint64_t body_len, bool ranged, std::string detail = "");
  void RecordSync(const std::string* node, const std::string& what, uint64_t bytes);

  Deps d_;
  std::atomic<uint64_t> seen_generation_{0};
};

}  // namespace patchgate::server
