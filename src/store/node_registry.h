// The node registry: the chain's role interface on the store (kept apart from the Store
// class). Nodes and their tokens (only the token's SHA-256 is stored), the syncs a node
// pulled from its upstream (never customer downloads), each node's latest heartbeat with
// its compliance fields, and the fleet's compliance policy. Same database, same URL and
// same two engines as Store; Open() applies the migrations too.
//
// Threading: safe to call from several threads (access is serialised internally). Times
// are microseconds since the Unix epoch. kUnavailable: the database cannot be reached.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace patchgate {

class Store;

struct NodeHeartbeat {
  std::string node;
  int64_t at = 0;
  std::string role;  // origin | mirror
  std::string software_version;
  int64_t snapshot_version = 0;         // the snapshot this node serves
  int64_t origin_snapshot_version = 0;  // the newest snapshot it has seen upstream
  int64_t lag_seconds = 0;              // how long it has been behind (0: up to date)
  bool upstream_ok = true;              // the last sync verified (false: stale, see error)
  std::string upstream_error;
  bool scanner_loaded = false;          // an AV scan of its own tree ran with --signatures
  int64_t signature_age_seconds = -1;   // -1: unknown / no scanner
  int64_t scan_infected = 0;            // files the last scan found infected
  bool watch_alive = false;
  int64_t last_full_verify_at = 0;      // 0: never
  bool last_full_verify_ok = false;
  int64_t quarantine_pending = 0;       // files quarantined and not restored yet
  bool tls = false;
  bool fenced = false;
};

struct ChainPolicy {
  bool require_scanner = false;
  int64_t max_signature_age_seconds = 0;  // 0: no limit
  bool require_watch = false;
  int64_t max_lag_seconds = 0;            // 0: no limit
  int64_t max_heartbeat_age_seconds = 120;
  bool fence = false;                     // non-compliant nodes answer customers 503
};

struct SyncRecord {
  std::string node;
  std::string what;  // e.g. "metadata/timestamp.json" or "targets (12 files)"
  int64_t at = 0;
  int64_t files = 0;
  int64_t bytes = 0;
};

// A node answered an authenticated customer with a refusal instead of the file (nothing
// was served). Incident scope lists these next to the downloads.
struct RefusalRecord {
  std::string node;
  int64_t at = 0;       // the first refusal folded into this record
  int64_t org_id = 0;
  std::string organisation, username;
  std::string target;   // the signed target path (the request path when unknown)
  std::string reason;   // e.g. "integrity: quarantined", "fenced", "missing on disk"
  int64_t repeats = 1;  // identical refusals folded into this record
};

struct RegisteredNode {
  std::string name;
  std::string role;  // origin | mirror
  std::string upstream;
  bool has_token = false;
  bool revoked = false;
  std::optional<NodeHeartbeat> heartbeat;  // the latest one
};

class NodeRegistry {
 public:
  virtual ~NodeRegistry() = default;
  // Same URLs as Store::Open; applies the migrations first (through Store::Open).
  static Result<std::unique_ptr<NodeRegistry>> Open(const std::string& url);
  // For a caller that already holds a Store opened on this same URL (so the database is
  // migrated): no second migration check, and no second connection: the registry runs on
  // the store's own connection, its statements serialised with the store's (a Store that
  // is not Store::Open's, e.g. a test double, gets one new connection to `url`). On
  // PostgreSQL each connection is a fresh server process, so this saves a command like
  // `incident scope` tens of ms. The registry must not outlive `migrated`.
  static Result<std::unique_ptr<NodeRegistry>> OpenBeside(Store& migrated, const std::string& url);

  // kAlreadyExists when a node of that name has a token already (revoked or not).
  virtual Status AddNode(const std::string& name, const std::string& role, const std::string& upstream,
                         const std::string& token_hash) = 0;
  // kNotFound for an unknown node. Its token stops working at once.
  virtual Status RevokeNode(const std::string& name) = 0;
  // The node owning this token hash; kUnauthorized if none or revoked.
  virtual Result<std::string> AuthenticateNodeTokenHash(const std::string& token_hash) = 0;
  // Registers a node that needs no token (the origin) if it is not known yet.
  virtual Status EnsureNode(const std::string& name, const std::string& role, const std::string& upstream) = 0;
  virtual Status PutHeartbeat(const NodeHeartbeat& hb) = 0;
  virtual Result<std::vector<RegisteredNode>> ListNodes() = 0;

  // One transaction for all records.
  virtual Status RecordSyncs(const std::vector<SyncRecord>& syncs) = 0;
  virtual Result<std::vector<SyncRecord>> ListSyncs(const std::string& node) = 0;

  // Customer refusals (nodes rate-limit them before writing). One transaction for all.
  virtual Status RecordRefusals(const std::vector<RefusalRecord>& refusals) = 0;
  // A node's refusals with from <= at <= to, by time.
  virtual Result<std::vector<RefusalRecord>> ListRefusals(const std::string& node, int64_t from, int64_t to) = 0;

  virtual Result<ChainPolicy> GetPolicy() = 0;
  virtual Status SetPolicy(const ChainPolicy& p) = 0;
};

}  // namespace patchgate
