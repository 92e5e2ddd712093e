// The project's store: every role the database plays, in one object. One schema, two
// engines, chosen by URL:
//   sqlite:///abs/path.db   (or sqlite://relative.db) — the embedded default, WAL mode
//   postgresql://user@host:port/db?...                — libpq
// Open() applies the numbered migrations in src/store/migrations/ (idempotent).
//
// Code that needs the store depends on the narrowest role it uses, not on Store:
//   AuthDirectory      (auth_directory.h)      organisations, users, tokens, entitlements
//   TargetCatalogue    (target_catalogue.h)    published targets, infection marks, node quarantine
//   AuditSink          (audit_sink.h)          the durable download record, begun and finished
//   DownloadTrail      (download_trail.h)      querying and importing the download trail
//   IncidentRegister   (incident_register.h)   incidents against a node
//   NotificationLedger (notification_ledger.h) notifications, attempts, leases, acknowledgements
//   AdvisoryRegister   (advisory_register.h)   advisory rows
//   VerdictCache       (verdict_cache.h)       scan verdicts by (sha256, signature version)
// The chain's nodes, heartbeats, syncs and policy are NodeRegistry's (node_registry.h).
// New store methods go into the role they belong to (or a new role), not into Store.
//
// Threading: a Store is safe to call from several threads at once (implementations
// serialise or pool connections internally). Times are microseconds since the Unix epoch
// (UTC) unless a name says otherwise. Every method returns a Status/Result; kUnavailable
// means the database cannot be reached (callers must then refuse to serve, not serve
// unrecorded); kNotFound / kAlreadyExists as named.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "store/advisory_register.h"
#include "store/audit_sink.h"
#include "store/auth_directory.h"
#include "store/download_trail.h"
#include "store/incident_register.h"
#include "store/notification_ledger.h"
#include "store/records.h"
#include "store/target_catalogue.h"
#include "store/verdict_cache.h"

namespace patchgate {

class Store : public AuthDirectory,
              public TargetCatalogue,
              public AuditSink,
              public DownloadTrail,
              public IncidentRegister,
              public NotificationLedger,
              public AdvisoryRegister,
              public VerdictCache {
 public:
  ~Store() override = default;

  // Opens (creating if needed) and migrates. kInvalidArgument for an unknown scheme,
  // kUnavailable when the database cannot be reached.
  static Result<std::unique_ptr<Store>> Open(const std::string& url);
  virtual std::string engine() const = 0;  // "sqlite" | "postgresql"
};

}  // namespace patchgate
