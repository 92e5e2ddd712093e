// The project's store: organisations, users, entitlements, targets, nodes, the download
// audit trail, incidents, notifications and the scan-verdict cache. One schema, two
// engines, chosen by URL:
//   sqlite:///abs/path.db   (or sqlite://relative.db) — the embedded default, WAL mode
//   postgresql://user@host:port/db?...                — libpq
// Open() applies the numbered migrations in src/store/migrations/ (idempotent).
//
// Threading: a Store is safe to call from several threads at once (implementations
// serialise or pool connections internally). Times are microseconds since the Unix epoch
// (UTC) unless a name says otherwise. Every method returns a Status/Result; kUnavailable
// means the database cannot be reached (callers must then refuse to serve, not serve
// unrecorded); kNotFound / kAlreadyExists as named.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace patchgate {

// Text rules of the store. Every text value written is valid UTF-8: bytes that are not are
// stored escaped ("\xHH" per byte, see EscapeInvalidUtf8), so PostgreSQL never sees them and
// every reader gets text it can print, dump as JSON or put in a CSV cell. Text recorded from
// the network or from imported logs is cut to these caps at a character boundary; names and
// fields an administrator types are refused (kInvalidArgument) instead.
inline constexpr size_t kMaxStoredUserAgentBytes = 512;
inline constexpr size_t kMaxStoredRangeBytes = 256;
inline constexpr size_t kMaxStoredRemoteAddrBytes = 128;
inline constexpr size_t kMaxStoredTargetPathBytes = 2048;
inline constexpr size_t kMaxStoredUsernameBytes = 256;  // imported logs may name anything
inline constexpr size_t kMaxStoredNodeNameBytes = 256;
inline constexpr size_t kMaxStoredHashBytes = 128;
inline constexpr size_t kMaxStoredDownloadDetailBytes = 512;  // why a download ended (integrity cut)
inline constexpr size_t kMaxContactFieldBytes = 254;    // account manager name/e-mail, contacts, phone
inline constexpr size_t kMaxSecurityContacts = 32;
inline constexpr size_t kMaxWebhookUrlBytes = 2048;

struct Organisation {
  int64_t id = 0;
  std::string name;
  std::string tier;  // premier | gold | standard
  std::string account_manager_name;
  std::string account_manager_email;
  std::string account_manager_phone;
  std::vector<std::string> security_contacts;  // e-mail addresses
  std::string webhook_url;                     // empty: no webhook channel
};

struct User {
  int64_t id = 0;
  int64_t org_id = 0;
  std::string org_name;
  std::string username;
  bool revoked = false;
};

struct TargetRecord {
  std::string path;  // TUF target path, e.g. "office/2.1/setup.exe"
  std::string product;
  std::string version;
  uint64_t length = 0;
  std::string sha256;
  int64_t published_at = 0;
  std::string scan_verdict;  // clean | infected | ...
  std::string scan_engine;
  std::string scan_db_version;
  bool infected = false;  // set by rescan: a published target found infected (an incident)
  std::string infected_detail;
};

struct NodeRecord {
  std::string name;
  std::string role;  // origin | mirror
  std::string upstream;
  int64_t last_heartbeat = 0;
  std::string compliance_json;  // scanner loaded, signature age, watcher alive, last full verify
  std::string state;            // ok | non-compliant | quarantined
};

// What the server knows when it is about to send the first byte.
struct DownloadStart {
  int64_t started_at = 0;
  std::string node;
  int64_t user_id = 0;
  int64_t org_id = 0;
  std::string target_path;
  std::string sha256;          // the signed hash of what is about to be served
  std::string range;           // the Range header as received, empty for the whole file
  std::string remote_addr;
  std::string user_agent;
};

enum class DownloadOutcome { kInProgress, kComplete, kPartial, kAborted };
std::string_view DownloadOutcomeName(DownloadOutcome o);  // in_progress|complete|partial|aborted
Result<DownloadOutcome> ParseDownloadOutcome(std::string_view name);

// How `patchgate downloads` shows a record's outcome: the recorded one, except that a record
// still in_progress that started less than kCompletingWindowMicros before `now_micros` is
// "completing": it is still streaming, or it has finished and the server has not yet written
// its completion (completions are written in batches, --audit-finish-ms). Older in_progress
// records stay "in_progress": the node stopped mid-transfer or the download is still running.
inline constexpr int64_t kCompletingWindowMicros = int64_t{60} * 1'000'000;
struct Download;
std::string_view DisplayOutcome(const Download& d, int64_t now_micros);

struct DownloadFinish {
  int64_t id = 0;
  int64_t ended_at = 0;
  uint64_t bytes_sent = 0;
  DownloadOutcome outcome = DownloadOutcome::kComplete;
  // Why it ended so, empty for an ordinary end: e.g. "integrity: chunk 3 (bytes ...) no longer
  // matches its verified digest" for a download cut because the file changed on disk. Stored
  // as safe text (escaped, cut to kMaxStoredDownloadDetailBytes at a character boundary).
  std::string detail;
};

// A row of the audit trail (served or imported).
struct Download {
  int64_t id = 0;
  int64_t started_at = 0;
  std::optional<int64_t> ended_at;
  std::string node;
  std::string username;   // as recorded (imported logs may name unknown users)
  std::string org_name;   // empty when the user is unknown
  int64_t org_id = 0;     // 0 when the user is unknown; set by the scope query (scope_columns) only
  std::string org_tier;
  std::string target_path;
  std::string sha256;
  std::string range;
  uint64_t bytes_sent = 0;
  DownloadOutcome outcome = DownloadOutcome::kInProgress;
  std::string remote_addr;
  std::string user_agent;
  std::string source = "served";  // served | imported
  int http_status = 200;          // for imported rows
  bool unknown_user = false;      // imported: username not in the store
  bool unknown_target = false;    // imported: path not a published target
  std::string import_key;         // imported: stable key of the log line (dedupe)
  std::string detail;             // why it ended so (DownloadFinish::detail), empty if ordinary
};

struct DownloadQuery {
  std::optional<std::string> org, user, node;
  std::optional<int64_t> since, until;  // window [since, until]: a download overlapping it matches
  std::vector<std::string> targets;     // empty: all
  // Received, or possibly received: served rows that ended with bytes sent, served rows
  // never finished (in_progress: the node stopped mid-transfer), imported 2xx lines.
  bool successful_only = false;
  size_t limit = 0;                     // 0: no limit
  // Only the columns incident scope reports, in no particular order: id, started_at, node,
  // username, org_id (org_name and org_tier come back empty: the caller resolves org_id),
  // target_path, sha256, bytes_sent, outcome, source, unknown_user, unknown_target. The
  // scope index answers this alone, without reading the table.
  bool scope_columns = false;
};

struct ImportResult {
  size_t inserted = 0;
  size_t duplicates = 0;
  size_t unknown_users = 0;  // rows (inserted or not) whose username is no user of the store
};

struct Incident {
  int64_t id = 0;
  std::string node;
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string cause;
  int64_t detected_at = 0;
  std::vector<std::string> targets;  // files involved; empty: all files on the node
};

struct Notification {
  int64_t id = 0;
  std::string subject;      // "incident:<id>" | "advisory:<ID>:<step>"
  int64_t incident_id = 0;  // 0 unless the subject is an incident
  int64_t org_id = 0;
  std::string org_name;
  std::string channel;     // smtp | webhook
  std::string recipients;  // comma-separated
  std::string state;       // pending | sent | failed
  int attempts = 0;
  std::string last_error;
  std::optional<int64_t> sent_at;
  std::optional<int64_t> acked_at;
};

// An advisory as stored: the columns the provider and the due-step runner select on, and
// the model itself as JSON (owned by src/advisory).
struct AdvisoryRow {
  std::string id;       // PG-YYYY-NNNN
  std::string product;
  std::string state;    // draft | scheduled | published
  std::string tlp;      // RED | AMBER | GREEN | WHITE
  std::optional<int64_t> publish_at;
  int64_t version = 0;  // row version; UpdateAdvisory compares and bumps it
  std::string data;     // JSON
  int64_t created_at = 0;
};

struct ScanVerdict {
  std::string sha256;
  std::string db_version;
  std::string verdict;  // clean | infected | error
  std::string detections;
  std::string engine_version;
  int64_t scanned_at = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens (creating if needed) and migrates. kInvalidArgument for an unknown scheme,
  // kUnavailable when the database cannot be reached.
  static Result<std::unique_ptr<Store>> Open(const std::string& url);
  virtual std::string engine() const = 0;  // "sqlite" | "postgresql"

  // --- Organisations, users, entitlements -------------------------------------------
  // The name must pass ValidateOrganisationName (core/names.h); the other fields are plain
  // text under kMaxContactFieldBytes / kMaxWebhookUrlBytes. kAlreadyExists for a taken name.
  virtual Result<int64_t> AddOrganisation(const Organisation& org) = 0;
  virtual Result<Organisation> GetOrganisation(const std::string& name) = 0;
  virtual Result<std::vector<Organisation>> ListOrganisations() = 0;
  // token_hash = hex SHA-256 of the token; the token itself is never stored. The user name
  // must pass ValidateUserName (core/names.h).
  virtual Result<int64_t> AddUser(const std::string& org, const std::string& username,
                                  const std::string& token_hash) = 0;
  virtual Status RevokeUser(const std::string& username) = 0;
  // kUnauthorized when no user has this hash or the user is revoked.
  virtual Result<User> AuthenticateTokenHash(const std::string& token_hash) = 0;
  virtual Result<User> GetUser(const std::string& username) = 0;
  // The product must pass ValidateProductName (core/names.h): a name that can never be
  // published is refused.
  virtual Status Grant(const std::string& org, const std::string& product) = 0;
  virtual Result<bool> IsEntitled(int64_t org_id, const std::string& product) = 0;
  virtual Result<std::vector<std::string>> EntitledOrganisations(const std::string& product) = 0;

  // --- Targets and nodes ------------------------------------------------------------
  virtual Status UpsertTarget(const TargetRecord& t) = 0;
  virtual Result<TargetRecord> GetTarget(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> ListTargetPaths() = 0;  // every published target, sorted
  virtual Status MarkTargetInfected(const std::string& path, const std::string& detail) = 0;
  virtual Status UpsertNode(const NodeRecord& n) = 0;
  virtual Result<std::vector<NodeRecord>> ListNodes() = 0;
  // Records that `node` refused to serve `path` because its bytes did not match.
  virtual Status QuarantineTargetOnNode(const std::string& node, const std::string& path,
                                        const std::string& expected_sha256,
                                        const std::string& actual_sha256, int64_t at) = 0;

  // --- Download audit ---------------------------------------------------------------
  // Inserts all records in ONE transaction and returns their ids in order; when it
  // returns OK the records are durable (the caller may then send the first byte).
  virtual Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& starts) = 0;
  virtual Status FinishDownloads(const std::vector<DownloadFinish>& finishes) = 0;
  // The same in two steps, for the audit pipeline (src/server/audit_log): WriteDownloads
  // inserts in one transaction like BeginDownloads, but its records are durable only once
  // a later SyncDownloads() has returned OK. SyncDownloads may run on another thread while
  // the next WriteDownloads runs, so one flush to disk covers every batch written before
  // it. WriteFinishes: completions the same way. The defaults are the one-step calls
  // (durable at once; SyncDownloads does nothing); a Store that wraps another
  // (ForwardingStore) keeps them, so its BeginDownloads sees every record.
  virtual Result<std::vector<int64_t>> WriteDownloads(const std::vector<DownloadStart>& starts) {
    return BeginDownloads(starts);
  }
  virtual Status WriteFinishes(const std::vector<DownloadFinish>& finishes) { return FinishDownloads(finishes); }
  virtual Status SyncDownloads() { return Status::OK(); }
  virtual Result<std::vector<Download>> QueryDownloads(const DownloadQuery& q) = 0;
  // The engine's plan for QueryDownloads(q) (EXPLAIN QUERY PLAN / EXPLAIN), one line per
  // plan node: lets tests and operators check which index a query uses.
  virtual Result<std::string> ExplainQueryDownloads(const DownloadQuery& q) = 0;
  // Bulk load of download rows recorded elsewhere (access-log import): every row carries
  // its import_key, and a row whose key exists already (or repeats within `rows`) is
  // skipped. Users are resolved by name: an unknown name keeps no organisation and the row
  // is flagged unknown_user whatever the caller set; unknown_target is kept as given. Rows
  // are stored with source "imported". One transaction: all rows or none.
  virtual Result<ImportResult> ImportDownloads(const std::vector<Download>& rows) = 0;

  // --- Incidents and notifications --------------------------------------------------
  virtual Result<int64_t> CreateIncident(const Incident& incident) = 0;
  virtual Result<Incident> GetIncident(int64_t id) = 0;
  virtual Result<std::vector<Incident>> ListIncidents() = 0;
  // Returns the existing row for (incident, org, channel) or creates a pending one with
  // the given recipients and ack token hash.
  virtual Result<Notification> EnsureNotification(int64_t incident_id, int64_t org_id,
                                                  const std::string& channel,
                                                  const std::string& recipients,
                                                  const std::string& ack_token_hash) = 0;
  // Replaces the acknowledgement token hash of a notification that was not sent yet (a
  // token that was never delivered is worthless; the next attempt sends a fresh one).
  virtual Status ResetAckToken(int64_t notification_id, const std::string& ack_token_hash) = 0;
  virtual Status RecordNotificationAttempt(int64_t notification_id, bool sent,
                                           const std::string& error, int64_t at) = 0;
  virtual Result<std::vector<Notification>> ListNotifications(int64_t incident_id) = 0;
  // Records the acknowledgement once. kNotFound for an unknown token; OK (no change)
  // when already acknowledged.
  virtual Status Acknowledge(const std::string& ack_token_hash, int64_t at) = 0;

  // Notifications about any subject ("incident:<id>", "advisory:<ID>:<step>"): as above.
  virtual Result<Notification> EnsureSubjectNotification(const std::string& subject, int64_t org_id,
                                                         const std::string& channel,
                                                         const std::string& recipients,
                                                         const std::string& ack_token_hash) = 0;
  // Every notification whose subject starts with `subject_prefix`, by organisation name.
  virtual Result<std::vector<Notification>> ListSubjectNotifications(const std::string& subject_prefix) = 0;
  // Takes the sending lease of a notification not yet sent whose lease expired (before
  // `now`), until `until`. Returns false when it is sent or another sender holds it.
  virtual Result<bool> ClaimNotification(int64_t notification_id, int64_t now, int64_t until) = 0;

  // --- Advisories -------------------------------------------------------------------
  // Inserts with the next free id PG-<year>-NNNN (row.id is ignored); returns the id.
  virtual Result<std::string> CreateAdvisory(const AdvisoryRow& row, int year) = 0;
  virtual Result<AdvisoryRow> GetAdvisory(const std::string& id) = 0;  // kNotFound
  virtual Result<std::vector<AdvisoryRow>> ListAdvisories() = 0;       // by id
  // Writes row if its version is still row.version (then version + 1); kConflict when
  // someone else wrote in between (re-read and retry).
  virtual Status UpdateAdvisory(const AdvisoryRow& row) = 0;
  // Organisations with a received (or possibly received) download of a target of `product`.
  virtual Result<std::vector<std::string>> OrganisationsThatDownloaded(const std::string& product) = 0;

  // --- Scan-verdict cache -----------------------------------------------------------
  virtual Result<std::optional<ScanVerdict>> GetScanVerdict(const std::string& sha256,
                                                            const std::string& db_version) = 0;
  virtual Status PutScanVerdict(const ScanVerdict& v) = 0;
};

}  // namespace patchgate
