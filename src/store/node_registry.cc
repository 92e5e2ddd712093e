// NodeRegistry over the store's sql::Connection (SQLite or PostgreSQL).
#include "store/node_registry.h"

#include <algorithm>
#include <mutex>

#include "core/text.h"

#include "core/clock.h"
#include "store/sql.h"
#include "store/store.h"

namespace patchgate {
namespace {

using sql::Param;
using sql::Row;
using sql::Rows;

constexpr size_t kMaxRefusalText = 512;

std::string S(const Row& r, size_t i) { return r[i].value_or(""); }
int64_t I(const Row& r, size_t i) { return r[i] ? std::stoll(*r[i]) : 0; }

constexpr char kHeartbeatCols[] =
    "h.node, h.at, h.role, h.software_version, h.snapshot_version, h.origin_snapshot_version, h.lag_seconds, "
    "h.upstream_ok, h.upstream_error, h.scanner_loaded, h.signature_age_seconds, h.scan_infected, h.watch_alive, "
    "h.last_full_verify_at, h.last_full_verify_ok, h.quarantine_pending, h.tls, h.fenced";

NodeHeartbeat HeartbeatFromRow(const Row& r, size_t o) {
  NodeHeartbeat h;
  h.node = S(r, o + 0);
  h.at = I(r, o + 1);
  h.role = S(r, o + 2);
  h.software_version = S(r, o + 3);
  h.snapshot_version = I(r, o + 4);
  h.origin_snapshot_version = I(r, o + 5);
  h.lag_seconds = I(r, o + 6);
  h.upstream_ok = I(r, o + 7) != 0;
  h.upstream_error = S(r, o + 8);
  h.scanner_loaded = I(r, o + 9) != 0;
  h.signature_age_seconds = I(r, o + 10);
  h.scan_infected = I(r, o + 11);
  h.watch_alive = I(r, o + 12) != 0;
  h.last_full_verify_at = I(r, o + 13);
  h.last_full_verify_ok = I(r, o + 14) != 0;
  h.quarantine_pending = I(r, o + 15);
  h.tls = I(r, o + 16) != 0;
  h.fenced = I(r, o + 17) != 0;
  return h;
}

bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (unsigned char c : n)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

class SqlNodeRegistry final : public NodeRegistry {
 public:
  // Owns its connection and lock.
  explicit SqlNodeRegistry(std::unique_ptr<sql::Connection> c) : owned_(std::move(c)), c_(owned_.get()), mu_(&own_mu_) {}
  // Runs on a store's connection, under the store's lock (sql::ConnectionOf).
  explicit SqlNodeRegistry(sql::SharedConnection shared) : c_(shared.conn), mu_(shared.mu) {}

  Status AddNode(const std::string& name, const std::string& role, const std::string& upstream,
                 const std::string& token_hash) override {
    if (!ValidNodeName(name)) return InvalidArgument("a node name is 1-64 letters, digits, '-', '_' or '.'");
    if (role != "mirror" && role != "origin") return InvalidArgument("--role must be mirror or origin");
    std::lock_guard<std::mutex> l(*mu_);
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    Status st = c_->Query("INSERT INTO node_tokens (node, token_hash, created_at) VALUES (?, ?, ?)",
                          {name, token_hash, SystemClock::Get().NowMicros()}).status();
    if (st.code() == ErrorCode::kAlreadyExists)
      st = AlreadyExists("node " + name + " already exists (revoke it and add it under a new name to issue a new token)");
    if (st.ok())
      st = c_->Query("INSERT INTO nodes (name, role, upstream) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                     "role = excluded.role, upstream = excluded.upstream", {name, role, upstream}).status();
    if (st.ok()) st = c_->ExecScript("COMMIT");
    if (!st.ok()) (void)c_->ExecScript("ROLLBACK");
    return st;
  }

  Status RevokeNode(const std::string& name) override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_RETURN_IF_ERROR(c_->Query("UPDATE node_tokens SET revoked_at = ? WHERE node = ? AND revoked_at IS NULL",
                                 {SystemClock::Get().NowMicros(), name}).status());
    if (c_->Changes() > 0) return Status::OK();
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT 1 FROM node_tokens WHERE node = ?", {name}));
    if (rows.empty()) return NotFound("no node named " + name + " (see `patchgate nodes`)");
    return Status::OK();  // already revoked
  }

  Result<std::string> AuthenticateNodeTokenHash(const std::string& token_hash) override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT node, revoked_at FROM node_tokens WHERE token_hash = ?", {token_hash}));
    if (rows.empty()) return Unauthorized("unknown node token");
    if (rows[0][1]) return Unauthorized("node token revoked");
    return S(rows[0], 0);
  }

  Status EnsureNode(const std::string& name, const std::string& role, const std::string& upstream) override {
    if (!ValidNodeName(name)) return InvalidArgument("a node name is 1-64 letters, digits, '-', '_' or '.'");
    std::lock_guard<std::mutex> l(*mu_);
    return c_->Query("INSERT INTO nodes (name, role, upstream) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                     {name, role, upstream}).status();
  }

  Status PutHeartbeat(const NodeHeartbeat& h) override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_RETURN_IF_ERROR(c_->Query(
        "INSERT INTO node_heartbeats (node, at, role, software_version, snapshot_version, origin_snapshot_version, "
        "lag_seconds, upstream_ok, upstream_error, scanner_loaded, signature_age_seconds, scan_infected, watch_alive, "
        "last_full_verify_at, last_full_verify_ok, quarantine_pending, tls, fenced) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET at = excluded.at, "
        "role = excluded.role, software_version = excluded.software_version, snapshot_version = "
        "excluded.snapshot_version, origin_snapshot_version = excluded.origin_snapshot_version, lag_seconds = "
        "excluded.lag_seconds, upstream_ok = excluded.upstream_ok, upstream_error = excluded.upstream_error, "
        "scanner_loaded = excluded.scanner_loaded, signature_age_seconds = excluded.signature_age_seconds, "
        "scan_infected = excluded.scan_infected, watch_alive = excluded.watch_alive, last_full_verify_at = "
        "excluded.last_full_verify_at, last_full_verify_ok = excluded.last_full_verify_ok, quarantine_pending = "
        "excluded.quarantine_pending, tls = excluded.tls, fenced = excluded.fenced",
        {h.node, h.at, h.role, h.software_version, h.snapshot_version, h.origin_snapshot_version, h.lag_seconds,
         int64_t{h.upstream_ok}, h.upstream_error, int64_t{h.scanner_loaded}, h.signature_age_seconds,
         h.scan_infected, int64_t{h.watch_alive}, h.last_full_verify_at, int64_t{h.last_full_verify_ok},
         h.quarantine_pending, int64_t{h.tls}, int64_t{h.fenced}}).status());
    return c_->Query("UPDATE nodes SET last_heartbeat = ? WHERE name = ?", {h.at, h.node}).status();
  }

  Result<std::vector<RegisteredNode>> ListNodes() override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_ASSIGN_OR_RETURN(
        Rows rows,
        c_->Query(std::string("SELECT n.name, n.role, n.upstream, t.token_hash, t.revoked_at, h.node, ") + kHeartbeatCols +
                      " FROM nodes n LEFT JOIN node_tokens t ON t.node = n.name LEFT JOIN node_heartbeats h ON "
                      "h.node = n.name ORDER BY n.name",
                  {}));
    std::vector<RegisteredNode> out;
    for (const auto& r : rows) {
      RegisteredNode n;
      n.name = S(r, 0);
      n.role = S(r, 1);
      n.upstream = S(r, 2);
      n.has_token = r[3].has_value();
      n.revoked = r[4].has_value();
      if (r[5]) n.heartbeat = HeartbeatFromRow(r, 6);
      out.push_back(std::move(n));
    }
    return out;
  }

  Status RecordSyncs(const std::vector<SyncRecord>& syncs) override {
    if (syncs.empty()) return Status::OK();
    std::lock_guard<std::mutex> l(*mu_);
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    Status st;
    for (const auto& s : syncs) {
      st = c_->Query("INSERT INTO node_syncs (node, what, at, files, bytes) VALUES (?, ?, ?, ?, ?)",
                     {s.node, s.what, s.at, s.files, s.bytes}).status();
      if (!st.ok()) break;
    }
    if (st.ok()) st = c_->ExecScript("COMMIT");
    if (!st.ok()) (void)c_->ExecScript("ROLLBACK");
    return st;
  }

  Result<std::vector<SyncRecord>> ListSyncs(const std::string& node) override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT node, what, at, files, bytes FROM node_syncs WHERE node = ? "
                                             "ORDER BY at, id", {node}));
    std::vector<SyncRecord> out;
    for (const auto& r : rows) out.push_back({S(r, 0), S(r, 1), I(r, 2), I(r, 3), I(r, 4)});
    return out;
  }

  Status RecordRefusals(const std::vector<RefusalRecord>& refusals) override {
    if (refusals.empty()) return Status::OK();
    std::lock_guard<std::mutex> l(*mu_);
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    Status st;
    for (const auto& r : refusals) {
      st = c_->Query("INSERT INTO refusals (node, at, org_id, organisation, username, target, reason, repeats) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     {r.node, r.at, r.org_id, r.organisation, r.username, StorableText(r.target, kMaxRefusalText),
                      StorableText(r.reason, kMaxRefusalText), std::max<int64_t>(1, r.repeats)})
               .status();
      if (!st.ok()) break;
    }
    if (st.ok()) st = c_->ExecScript("COMMIT");
    if (!st.ok()) (void)c_->ExecScript("ROLLBACK");
    return st;
  }

  Result<std::vector<RefusalRecord>> ListRefusals(const std::string& node, int64_t from, int64_t to) override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT node, at, org_id, organisation, username, target, reason, repeats "
                                             "FROM refusals WHERE node = ? AND at >= ? AND at <= ? ORDER BY at, id",
                                             {node, from, to}));
    std::vector<RefusalRecord> out;
    for (const auto& r : rows) out.push_back({S(r, 0), I(r, 1), I(r, 2), S(r, 3), S(r, 4), S(r, 5), S(r, 6), I(r, 7)});
    return out;
  }

  Result<ChainPolicy> GetPolicy() override {
    std::lock_guard<std::mutex> l(*mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT require_scanner, max_signature_age_seconds, require_watch, "
                                             "max_lag_seconds, max_heartbeat_age_seconds, fence FROM chain_policy "
                                             "WHERE id = 1", {}));
    ChainPolicy p;
    if (rows.empty()) return p;
    p.require_scanner = I(rows[0], 0) != 0;
    p.max_signature_age_seconds = I(rows[0], 1);
    p.require_watch = I(rows[0], 2) != 0;
    p.max_lag_seconds = I(rows[0], 3);
    p.max_heartbeat_age_seconds = I(rows[0], 4);
    p.fence = I(rows[0], 5) != 0;
    return p;
  }

  Status SetPolicy(const ChainPolicy& p) override {
    std::lock_guard<std::mutex> l(*mu_);
    return c_->Query("INSERT INTO chain_policy (id, require_scanner, max_signature_age_seconds, require_watch, "
                     "max_lag_seconds, max_heartbeat_age_seconds, fence, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT (id) DO UPDATE SET require_scanner = excluded.require_scanner, "
                     "max_signature_age_seconds = excluded.max_signature_age_seconds, require_watch = "
                     "excluded.require_watch, max_lag_seconds = excluded.max_lag_seconds, max_heartbeat_age_seconds = "
                     "excluded.max_heartbeat_age_seconds, fence = excluded.fence, updated_at = excluded.updated_at",
                     {int64_t{p.require_scanner}, p.max_signature_age_seconds, int64_t{p.require_watch},
                      p.max_lag_seconds, p.max_heartbeat_age_seconds, int64_t{p.fence}, SystemClock::Get().NowMicros()})
        .status();
  }

 private:
  std::unique_ptr<sql::Connection> owned_;  // null when running on a store's connection
  sql::Connection* c_;
  std::mutex own_mu_;
  std::mutex* mu_;  // &own_mu_, or the store's lock
};

}  // namespace

namespace {

// A registry on a connection of its own to `url`.
Result<std::unique_ptr<NodeRegistry>> OpenOwnConnection(const std::string& url) {
  std::unique_ptr<sql::Connection> conn;
  if (url.rfind("sqlite:", 0) == 0) {
    if (url.find(":memory:") != std::string::npos)
      return InvalidArgument("the node registry needs a shared database; an in-memory SQLite store is private to one connection");
    PG_ASSIGN_OR_RETURN(conn, sql::OpenSqlite(url));
  } else {
    PG_ASSIGN_OR_RETURN(conn, sql::OpenPostgres(url));
  }
  return std::unique_ptr<NodeRegistry>(std::make_unique<SqlNodeRegistry>(sql::WithStorableText(std::move(conn))));
}

}  // namespace

Result<std::unique_ptr<NodeRegistry>> NodeRegistry::Open(const std::string& url) {
  // Store::Open validates the URL and applies the migrations (this registry's tables too);
  // that store is closed again, so the registry gets a connection of its own.
  PG_RETURN_IF_ERROR(Store::Open(url).status());
  return OpenOwnConnection(url);
}

Result<std::unique_ptr<NodeRegistry>> NodeRegistry::OpenBeside(Store& migrated, const std::string& url) {
  // The store's own connection when it has one: no second connection (on PostgreSQL each
  // is a fresh server process, ~20 ms of server CPU before its first query).
  if (auto shared = sql::ConnectionOf(migrated))
    return std::unique_ptr<NodeRegistry>(std::make_unique<SqlNodeRegistry>(*shared));
  return OpenOwnConnection(url);
}

}  // namespace patchgate
