// The records the store's roles exchange: organisations and users, targets, the download
// audit trail, incidents, notifications, advisories and scan verdicts, plus the text rules
// every stored value follows. Plain structs, no behaviour beyond the outcome names; each
// role interface (auth_directory.h, audit_sink.h, ...) includes this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

}  // namespace patchgate
