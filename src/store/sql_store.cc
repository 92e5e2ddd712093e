// The one Store implementation, over an sql::Connection (SQLite or PostgreSQL).
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <set>
#include <sstream>

#include "core/clock.h"
#include "core/names.h"
#include "core/text.h"
#include "store/migrations.h"
#include "store/sql.h"
#include "store/store.h"

namespace patchgate {

std::string_view DownloadOutcomeName(DownloadOutcome o) {
  switch (o) {
    case DownloadOutcome::kInProgress: return "in_progress";
    case DownloadOutcome::kComplete: return "complete";
    case DownloadOutcome::kPartial: return "partial";
    case DownloadOutcome::kAborted: return "aborted";
  }
  return "in_progress";
}

Result<DownloadOutcome> ParseDownloadOutcome(std::string_view n) {
  if (n == "in_progress") return DownloadOutcome::kInProgress;
  if (n == "complete") return DownloadOutcome::kComplete;
  if (n == "partial") return DownloadOutcome::kPartial;
  if (n == "aborted") return DownloadOutcome::kAborted;
  return Corrupt("unknown download outcome '" + std::string(n) + "'");
}

std::string_view DisplayOutcome(const Download& d, int64_t now_micros) {
  if (d.outcome == DownloadOutcome::kInProgress && !d.ended_at && d.source == "served" &&
      now_micros - d.started_at < kCompletingWindowMicros)
    return "completing";
  return DownloadOutcomeName(d.outcome);
}

namespace {

using sql::Param;
using sql::Row;
using sql::Rows;

std::string S(const Row& r, size_t i) { return r[i].value_or(""); }
int64_t I(const Row& r, size_t i) { return r[i] ? std::stoll(*r[i]) : 0; }
std::optional<int64_t> OI(const Row& r, size_t i) {
  if (!r[i]) return std::nullopt;
  return std::stoll(*r[i]);
}

std::string Join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}
std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep)) out.push_back(part);
  return out;
}

constexpr char kOrgCols[] = "id, name, tier, am_name, am_email, am_phone, contacts, webhook_url";
Organisation OrgFromRow(const Row& r) {
  Organisation o;
  o.id = I(r, 0);
  o.name = S(r, 1);
  o.tier = S(r, 2);
  o.account_manager_name = S(r, 3);
  o.account_manager_email = S(r, 4);
  o.account_manager_phone = S(r, 5);
  o.security_contacts = Split(S(r, 6), ',');
  o.webhook_url = S(r, 7);
  return o;
}

constexpr char kDownloadSelect[] =
    "SELECT d.id, d.started_at, d.ended_at, d.node, d.username, COALESCE(o.name, ''), COALESCE(o.tier, ''), "
    "d.target_path, d.sha256, d.range_header, d.bytes_sent, d.outcome, d.remote_addr, d.user_agent, d.source, "
    "d.http_status, d.unknown_user, d.unknown_target, COALESCE(d.import_key, ''), d.detail "
    "FROM downloads d LEFT JOIN organisations o ON o.id = d.org_id";

// Only what incident scope reports, without the organisation (the scope resolves org_id
// from the organisations it reads once): on SQLite every column comes from the scope
// index (migration 0006) and on PostgreSQL from downloads_node_scope (0007), so the table
// is not read and no join runs per row. The detail (migration 0005) of the rare aborted
// row is read afterwards by id (kScopeDetailSelect), in the same read transaction: a
// correlated sub-select per UNION part cost a fresh PostgreSQL server process ~4 ms of
// planning in every scope command.
constexpr char kScopeSelect[] =
    "SELECT d.id, d.started_at, d.node, d.username, d.org_id, d.target_path, d.sha256, d.bytes_sent, d.outcome, "
    "d.source, d.unknown_user, d.unknown_target FROM downloads d";
constexpr char kScopeDetailSelect[] = "SELECT id, detail FROM downloads WHERE id IN ";
constexpr char kScopeDetailJournalSelect[] = "SELECT id, detail FROM download_journal WHERE id IN ";

// The columns `downloads` and `download_journal` share (migration 0009), in one order: a
// fold copies them, and the journal's rows read like the table's.
constexpr char kTrailColumns[] =
    "id, started_at, ended_at, node, user_id, username, org_id, target_path, sha256, range_header, bytes_sent, "
    "outcome, remote_addr, user_agent, source, http_status, unknown_user, unknown_target, import_key, detail";

// `select_sql` (a SELECT over "FROM downloads d") reading the journal's not yet folded rows
// instead: the same columns and conditions, so a UNION ALL of the two sees every download
// exactly once. Read as a flattened sub-select, so a plan names the journal's scan
// ("SCAN journal") apart from any scan of downloads ("SCAN d").
std::string OverJournal(std::string select_sql) {
  static constexpr std::string_view kFrom = "FROM downloads d";
  size_t at = select_sql.find(kFrom);
  if (at != std::string::npos) select_sql.replace(at, kFrom.size(), "FROM (SELECT * FROM download_journal AS journal) d");
  return select_sql;
}

std::string_view SV(const sql::RowView& r, size_t i) { return r[i].value_or(std::string_view()); }
int64_t IV(const sql::RowView& r, size_t i) {
  int64_t v = 0;
  if (r[i]) std::from_chars(r[i]->data(), r[i]->data() + r[i]->size(), v);
  return v;
}

// A download record from a row seen in place: each text copied once, straight into it.
Download DownloadFromView(const sql::RowView& r) {
  Download d;
  d.id = IV(r, 0);
  d.started_at = IV(r, 1);
  if (r[2]) d.ended_at = IV(r, 2);
  d.node = SV(r, 3);
  d.username = SV(r, 4);
  d.org_name = SV(r, 5);
  d.org_tier = SV(r, 6);
  d.target_path = SV(r, 7);
  d.sha256 = SV(r, 8);
  d.range = SV(r, 9);
  d.bytes_sent = static_cast<uint64_t>(IV(r, 10));
  d.outcome = ParseDownloadOutcome(SV(r, 11)).value_or(DownloadOutcome::kInProgress);
  d.remote_addr = SV(r, 12);
  d.user_agent = SV(r, 13);
  d.source = SV(r, 14);
  d.http_status = static_cast<int>(IV(r, 15));
  d.unknown_user = IV(r, 16) != 0;
  d.unknown_target = IV(r, 17) != 0;
  d.import_key = SV(r, 18);
  d.detail = SV(r, 19);
  return d;
}

// A kScopeSelect row, into `d` (a fresh record, filled where it will stay: building one
// and moving it into the result cost a move and a destruction of 11 strings per row).
void ScopeDownloadFromView(const sql::RowView& r, Download& d) {
  d.id = IV(r, 0);
  d.started_at = IV(r, 1);
  d.node = SV(r, 2);
  d.username = SV(r, 3);
  d.org_id = IV(r, 4);
  d.target_path = SV(r, 5);
  d.sha256 = SV(r, 6);
  d.bytes_sent = static_cast<uint64_t>(IV(r, 7));
  d.outcome = ParseDownloadOutcome(SV(r, 8)).value_or(DownloadOutcome::kInProgress);
  d.source = SV(r, 9);
  d.unknown_user = IV(r, 10) != 0;
  d.unknown_target = IV(r, 11) != 0;
}

// Plain text (valid UTF-8, no control character) of at most `cap` bytes, or why not.
Status CheckContactField(const std::string& value, const char* what, size_t cap) {
  if (value.size() > cap)
    return InvalidArgument(std::string(what) + " is " + std::to_string(value.size()) + " bytes; the limit is " +
                    std::to_string(cap) + ": shorten it");
  if (!IsPlainText(value))
    return InvalidArgument(std::string(what) + " '" + EscapeForTerminal(value) +
                           "' is not plain text (invalid UTF-8 or a control character): retype it");
  return Status::OK();
}

Status CheckOrganisation(const Organisation& o) {
  PG_RETURN_IF_ERROR(ValidateOrganisationName(o.name));
  PG_RETURN_IF_ERROR(CheckContactField(o.account_manager_name, "the account manager's name", kMaxContactFieldBytes));
  PG_RETURN_IF_ERROR(CheckContactField(o.account_manager_email, "the account manager's e-mail", kMaxContactFieldBytes));
  PG_RETURN_IF_ERROR(CheckContactField(o.account_manager_phone, "the phone number", kMaxContactFieldBytes));
  PG_RETURN_IF_ERROR(CheckContactField(o.webhook_url, "the webhook URL", kMaxWebhookUrlBytes));
  if (o.security_contacts.size() > kMaxSecurityContacts)
    return InvalidArgument("at most " + std::to_string(kMaxSecurityContacts) + " security contacts per organisation");
  for (const auto& c : o.security_contacts) {
    PG_RETURN_IF_ERROR(CheckContactField(c, "the security contact", kMaxContactFieldBytes));
    if (c.find(',') != std::string::npos)
      return InvalidArgument("the security contact '" + EscapeForTerminal(c) + "' contains ',': give one address per --contact");
  }
  return Status::OK();
}

// `v` as a parameter that is storable and within `cap`: `v` itself when it already is (no
// copy), else its escaped, cut copy kept alive in `keep`.
sql::Param StorableParam(std::string_view v, size_t cap, std::deque<std::string>& keep) {
  if (v.size() <= cap && IsStorableText(v)) return sql::TextRef{v};
  return sql::TextRef{keep.emplace_back(StorableText(v, cap))};
}

// A download whose end was never recorded counts in a window that opens up to this long
// after it started (it may still have been streaming); longer, and the node is taken to
// have stopped before the window. Finished downloads need no such guess: the store keeps
// the longest one per node (download_bounds, migration 0007).
constexpr int64_t kUnfinishedLookBackMicros = int64_t{24} * 3600 * 1'000'000;

class SqlStore final : public Store {
 public:
  explicit SqlStore(std::unique_ptr<sql::Connection> c) : c_(std::move(c)) {}

  std::string engine() const override { return c_->engine(); }

  Status Migrate() {
    std::lock_guard<std::mutex> l(mu_);
    // Up to date (every open but the first): one query, no DDL, no write. Every migration
    // not yet applied runs, in order, even one numbered below the newest applied (branches
    // land migrations out of order).
    auto rows = c_->Query("SELECT version FROM schema_version", {});
    if (!rows.ok()) {
      if (rows.status().code() == ErrorCode::kUnavailable) return rows.status();
      PG_RETURN_IF_ERROR(c_->ExecScript("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
      rows = c_->Query("SELECT version FROM schema_version", {});
      if (!rows.ok()) return rows.status();
    }
    std::set<int64_t> applied;
    for (const auto& r : *rows) applied.insert(I(r, 0));
    bool pending = false;
    for (const auto& m : store::Migrations()) pending |= !applied.count(m.version);
    if (!pending) return Status::OK();
    const char* id = c_->engine() == "sqlite" ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
    for (const auto& m : store::Migrations()) {
      if (applied.count(m.version)) continue;
      std::string text = ForEngine(m.sql, c_->engine());
      for (size_t p; (p = text.find("{ID}")) != std::string::npos;) text.replace(p, 4, id);
      PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
      Status st = c_->ExecScript(text);
      if (st.ok()) st = c_->Query("INSERT INTO schema_version (version) VALUES (?)", {int64_t{m.version}}).status();
      if (!st.ok()) {
        (void)c_->ExecScript("ROLLBACK");
        return st.WithContext("migration " + std::string(m.name));
      }
      PG_RETURN_IF_ERROR(c_->ExecScript("COMMIT"));
    }
    return Status::OK();
  }

  // A migration is portable SQL, except for sections that start with a line
  // "-- engine: sqlite" or "-- engine: postgresql" (until the next such line, or
  // "-- engine: all"), which only that engine runs.
  static std::string ForEngine(std::string_view sql, const std::string& engine) {
    std::string out;
    bool keep = true;
    size_t start = 0;
    while (start < sql.size()) {
      size_t nl = sql.find('\n', start);
      std::string_view line = sql.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start + 1);
      start = nl == std::string_view::npos ? sql.size() : nl + 1;
      constexpr std::string_view kMark = "-- engine: ";
      if (line.substr(0, kMark.size()) == kMark) {
        std::string_view which = line.substr(kMark.size());
        while (!which.empty() && (which.back() == '\n' || which.back() == '\r' || which.back() == ' ')) which.remove_suffix(1);
        keep = which == "all" || which == engine;
        continue;
      }
      if (keep) out += line;
    }
    return out;
  }

  // --- organisations ---------------------------------------------------------------
  Result<int64_t> AddOrganisation(const Organisation& o) override {
    PG_RETURN_IF_ERROR(CheckOrganisation(o));
    if (o.tier != "premier" && o.tier != "gold" && o.tier != "standard")
      return InvalidArgument("tier must be premier, gold or standard (got '" + o.tier + "')");
    std::lock_guard<std::mutex> l(mu_);
    auto r = c_->Query(
        "INSERT INTO organisations (name, tier, am_name, am_email, am_phone, contacts, webhook_url, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        {o.name, o.tier, o.account_manager_name, o.account_manager_email, o.account_manager_phone,
         Join(o.security_contacts, ','), o.webhook_url, SystemClock::Get().NowMicros()});
    if (!r.ok()) {
      if (r.status().code() == ErrorCode::kAlreadyExists)
        return AlreadyExists("organisation " + o.name + " already exists (see `patchgate org list`)");
      return r.status();
    }
    return I((*r)[0], 0);
  }

  Result<Organisation> GetOrganisation(const std::string& name) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string("SELECT ") + kOrgCols + " FROM organisations WHERE name = ?", {name}));
    if (rows.empty()) return NotFound("no organisation named " + name + " (see `patchgate org list`)");
    return OrgFromRow(rows[0]);
  }

  Result<std::vector<Organisation>> ListOrganisations() override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string("SELECT ") + kOrgCols + " FROM organisations ORDER BY name", {}));
    std::vector<Organisation> out;
    for (const auto& r : rows) out.push_back(OrgFromRow(r));
    return out;
  }

  Result<int64_t> AddUser(const std::string& org, const std::string& username, const std::string& token_hash) override {
    PG_RETURN_IF_ERROR(ValidateUserName(username));
    PG_ASSIGN_OR_RETURN(Organisation o, GetOrganisation(org));
    std::lock_guard<std::mutex> l(mu_);
    auto r = c_->Query("INSERT INTO users (org_id, username, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                       {o.id, username, token_hash, SystemClock::Get().NowMicros()});
    if (!r.ok()) {
      if (r.status().code() == ErrorCode::kAlreadyExists)
        return AlreadyExists("user " + username + " already exists: choose another name, or revoke it first");
      return r.status();
    }
    return I((*r)[0], 0);
  }

  Status RevokeUser(const std::string& username) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(c_->Query("UPDATE users SET revoked = 1 WHERE username = ?", {username}).status());
    if (c_->Changes() == 0) return NotFound("no user named " + username);
    return Status::OK();
  }

  Result<User> AuthenticateTokenHash(const std::string& token_hash) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT u.id, u.org_id, o.name, u.username, u.revoked FROM users u "
                                             "JOIN organisations o ON o.id = u.org_id WHERE u.token_hash = ?",
                                             {token_hash}));
    if (rows.empty()) return Unauthorized("unknown token");
    User u{I(rows[0], 0), I(rows[0], 1), S(rows[0], 2), S(rows[0], 3), I(rows[0], 4) != 0};
    if (u.revoked) return Unauthorized("token revoked");
    return u;
  }

  Result<User> GetUser(const std::string& username) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT u.id, u.org_id, o.name, u.username, u.revoked FROM users u "
                                             "JOIN organisations o ON o.id = u.org_id WHERE u.username = ?",
                                             {username}));
    if (rows.empty()) return NotFound("no user named " + username);
    return User{I(rows[0], 0), I(rows[0], 1), S(rows[0], 2), S(rows[0], 3), I(rows[0], 4) != 0};
  }

  Status Grant(const std::string& org, const std::string& product) override {
    PG_RETURN_IF_ERROR(ValidateProductName(product).WithContext("cannot grant: this product can never be published"));
    PG_ASSIGN_OR_RETURN(Organisation o, GetOrganisation(org));
    std::lock_guard<std::mutex> l(mu_);
    return c_->Query("INSERT INTO entitlements (org_id, product) VALUES (?, ?) ON CONFLICT DO NOTHING", {o.id, product})
        .status();
  }

  Result<bool> IsEntitled(int64_t org_id, const std::string& product) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT 1 FROM entitlements WHERE org_id = ? AND product = ?", {org_id, product}));
    return !rows.empty();
  }

  Result<std::vector<std::string>> EntitledOrganisations(const std::string& product) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT o.name FROM entitlements e JOIN organisations o ON o.id = e.org_id "
                                             "WHERE e.product = ? ORDER BY o.name", {product}));
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(S(r, 0));
    return out;
  }

  // --- targets and nodes -----------------------------------------------------------
  Status UpsertTarget(const TargetRecord& t) override {
    std::lock_guard<std::mutex> l(mu_);
    return c_->Query(
                 "INSERT INTO targets (path, product, version, length, sha256, published_at, scan_verdict, scan_engine, "
                 "scan_db_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                 "product = excluded.product, version = excluded.version, length = excluded.length, "
                 "sha256 = excluded.sha256, published_at = excluded.published_at, scan_verdict = excluded.scan_verdict, "
                 "scan_engine = excluded.scan_engine, scan_db_version = excluded.scan_db_version, infected = 0, "
                 "infected_detail = ''",
                 {t.path, t.product, t.version, static_cast<int64_t>(t.length), t.sha256, t.published_at,
                  t.scan_verdict, t.scan_engine, t.scan_db_version})
        .status();
  }

  Result<std::vector<std::string>> ListTargetPaths() override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT path FROM targets ORDER BY path", {}));
    std::vector<std::string> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back(S(r, 0));
    return out;
  }

  Result<TargetRecord> GetTarget(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT path, product, version, length, sha256, published_at, scan_verdict, "
                                             "scan_engine, scan_db_version, infected, infected_detail FROM targets "
                                             "WHERE path = ?", {path}));
    if (rows.empty()) return NotFound("no published target " + path);
    const Row& r = rows[0];
    TargetRecord t;
    t.path = S(r, 0);
    t.product = S(r, 1);
    t.version = S(r, 2);
    t.length = static_cast<uint64_t>(I(r, 3));
    t.sha256 = S(r, 4);
    t.published_at = I(r, 5);
    t.scan_verdict = S(r, 6);
    t.scan_engine = S(r, 7);
    t.scan_db_version = S(r, 8);
    t.infected = I(r, 9) != 0;
    t.infected_detail = S(r, 10);
    return t;
  }

  Status MarkTargetInfected(const std::string& path, const std::string& detail) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(c_->Query("UPDATE targets SET infected = 1, infected_detail = ? WHERE path = ?", {detail, path}).status());
    if (c_->Changes() == 0) return NotFound("no published target " + path + " in the store");
    return Status::OK();
  }

  Status UpsertNode(const NodeRecord& n) override {
    std::lock_guard<std::mutex> l(mu_);
    return c_->Query("INSERT INTO nodes (name, role, upstream, last_heartbeat, compliance_json, state) VALUES "
                     "(?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role, upstream = "
                     "excluded.upstream, last_heartbeat = excluded.last_heartbeat, compliance_json = "
                     "excluded.compliance_json, state = excluded.state",
                     {n.name, n.role, n.upstream, n.last_heartbeat, n.compliance_json, n.state})
        .status();
  }

  Result<std::vector<NodeRecord>> ListNodes() override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT name, role, upstream, last_heartbeat, compliance_json, state FROM "
                                             "nodes ORDER BY name", {}));
    std::vector<NodeRecord> out;
    for (const auto& r : rows) out.push_back({S(r, 0), S(r, 1), S(r, 2), I(r, 3), S(r, 4), S(r, 5)});
    return out;
  }

  Status QuarantineTargetOnNode(const std::string& node, const std::string& path, const std::string& expected,
                                const std::string& actual, int64_t at) override {
    std::lock_guard<std::mutex> l(mu_);
    return c_->Query("INSERT INTO node_quarantine (node, path, expected_sha256, actual_sha256, at) VALUES (?, ?, ?, ?, ?)",
                     {node, path, expected, actual, at})
        .status();
  }

  // --- downloads -------------------------------------------------------------------
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& in) override {
    return InsertStarts(in, /*deferred=*/false);
  }
  Result<std::vector<int64_t>> WriteDownloads(const std::vector<DownloadStart>& in) override {
    return InsertStarts(in, /*deferred=*/true);
  }
  Status FinishDownloads(const std::vector<DownloadFinish>& finishes) override {
    return UpdateFinishes(finishes, /*deferred=*/false);
  }
  Status WriteFinishes(const std::vector<DownloadFinish>& finishes) override {
    return UpdateFinishes(finishes, /*deferred=*/true);
  }
  // Without the store's lock: it never waits behind a write (that is the point).
  Status SyncDownloads() override { return c_->SyncCommitted(); }

  Result<size_t> FoldDownloads(size_t max_rows, int64_t unfinished_before) override {
    if (max_rows == 0) return size_t{0};
    // The rows to move: finished ones, and unfinished ones begun before `unfinished_before`,
    // oldest first.
    const std::string pick = "SELECT id FROM download_journal WHERE ended_at IS NOT NULL OR started_at < ? "
                             "ORDER BY id LIMIT ?";
    const std::vector<Param> pick_p = {unfinished_before, static_cast<int64_t>(max_rows)};
    const std::string cols = kTrailColumns;
    std::lock_guard<std::mutex> l(mu_);
    if (c_->engine() == "postgresql") {
      // One statement: the rows deleted here are the rows inserted there, atomically. Rows
      // another folder (another node on this store) has locked are skipped, not waited
      // for, and each row is deleted by one folder only: every record moves exactly once.
      // A row an end is being written to is locked too, and moves on a later fold.
      PG_RETURN_IF_ERROR(c_->Query("WITH moved AS (DELETE FROM download_journal WHERE id IN (" + pick +
                                       " FOR UPDATE SKIP LOCKED) RETURNING " + cols + ") INSERT INTO downloads (" +
                                       cols + ") SELECT " + cols + " FROM moved",
                                   pick_p)
                             .status());
      return static_cast<size_t>(c_->Changes());
    }
    // SQLite: one writer at a time, so both statements of the transaction pick the same rows.
    // The commit is flushed with the next SyncDownloads (or a checkpoint): if a crash loses
    // it, both halves are lost together and the rows are still in the journal.
    DeferredSync mode(c_.get(), true);
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    Result<size_t> moved = [&]() -> Result<size_t> {
      PG_RETURN_IF_ERROR(c_->Query("INSERT INTO downloads (" + cols + ") SELECT " + cols +
                                       " FROM download_journal WHERE id IN (" + pick + ") ORDER BY id",
                                   pick_p)
                             .status());
      const int64_t inserted = c_->Changes();
      PG_RETURN_IF_ERROR(c_->Query("DELETE FROM download_journal WHERE id IN (" + pick + ")", pick_p).status());
      if (c_->Changes() != inserted) return Internal("the journal fold moved a different number of rows than it removed");
      return static_cast<size_t>(inserted);
    }();
    Status st = moved.ok() ? c_->ExecScript("COMMIT") : moved.status();
    if (!st.ok()) {
      (void)c_->ExecScript("ROLLBACK");
      return st;
    }
    return moved;
  }

  // While alive (mu_ held), commits on the connection are durable only with the next
  // SyncCommitted() where the engine can split the two; a sync in each commit again after.
  class DeferredSync {
   public:
    DeferredSync(sql::Connection* c, bool want) : c_(c), on_(want && c->SetDeferredSync(true)) {}
    ~DeferredSync() {
      if (on_) (void)c_->SetDeferredSync(false);
    }

   private:
    sql::Connection* c_;
    bool on_;
  };

  Result<std::vector<int64_t>> InsertStarts(const std::vector<DownloadStart>& in, bool deferred) {
    // Text from the network, stored escaped and capped; a copy only when some record needs it.
    std::vector<DownloadStart> capped;
    if (!std::all_of(in.begin(), in.end(), FitsStore)) {
      capped = in;
      for (auto& s : capped) CapForStore(s);
    }
    const std::vector<DownloadStart>& starts = capped.empty() ? in : capped;
    std::lock_guard<std::mutex> l(mu_);
    DeferredSync mode(c_.get(), deferred);
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    auto ids = c_->engine() == "postgresql" ? InsertStartsBatched(starts) : InsertStartsOneByOne(starts);
    Status st = ids.ok() ? c_->ExecScript("COMMIT") : ids.status();
    if (!st.ok()) {
      (void)c_->ExecScript("ROLLBACK");
      id_next_ = id_end_ = 0;  // a reservation in this transaction is undone: never hand out its ids
      return st;
    }
    return ids;
  }

  Status UpdateFinishes(const std::vector<DownloadFinish>& finishes, bool deferred) {
    std::lock_guard<std::mutex> l(mu_);
    DeferredSync mode(c_.get(), deferred);
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    Status st = c_->engine() == "postgresql" ? UpdateFinishesBatched(finishes) : UpdateFinishesOneByOne(finishes);
    if (st.ok()) st = c_->ExecScript("COMMIT");
    if (!st.ok()) (void)c_->ExecScript("ROLLBACK");
    return st;
  }

  // The SELECT behind QueryDownloads and its parameters, for `engine`.
  //
  // A window [since, until] matches every download that overlapped it. The rows are read
  // in separate index ranges joined by UNION ALL (each a plain range the planner cannot
  // widen or misjudge):
  //  - finished downloads: started_at from `since` minus the longest download the node
  //    ever recorded (download_bounds, kept by triggers: migration 0007) up to `until`,
  //    ended at or after `since`. On PostgreSQL these are two ranges: the covering
  //    downloads_node_scope (index-only) for rows whose texts fit an index entry, and
  //    downloads_node_long for the (hostile, rare) others.
  //  - downloads whose end was never recorded (ended_at IS NULL: still streaming, or the
  //    node stopped mid-transfer), through the small partial index downloads_unfinished,
  //    started up to kUnfinishedLookBackMicros before the window.
  //  - the journal's tail (download_journal, migration 0009): recent downloads not yet
  //    folded into `downloads`, read whole (it holds only the unfolded tail).
  static std::string DownloadsSql(const DownloadQuery& q, const std::string& engine, int64_t longest,
                                  std::vector<Param>* p) {
    const char* select = q.scope_columns ? kScopeSelect : kDownloadSelect;
    // The conditions every part shares, with their parameters.
    std::string common;
    std::vector<Param> common_p;
    if (q.node) {
      common += " AND d.node = ?";
      common_p.push_back(*q.node);
    }
    if (q.user) {
      common += " AND d.username = ?";
      common_p.push_back(*q.user);
    }
    if (q.org) {
      common += " AND d.org_id IN (SELECT id FROM organisations WHERE name = ?)";
      common_p.push_back(*q.org);
    }
    if (q.until) {
      common += " AND d.started_at <= ?";
      common_p.push_back(*q.until);
    }
    if (!q.targets.empty()) {
      common += " AND d.target_path IN (";
      for (size_t i = 0; i < q.targets.size(); ++i) {
        common += i ? ", ?" : "?";
        common_p.push_back(q.targets[i]);
      }
      common += ")";
    }
    // The outcomes as comparisons, not IN (...): SQLite evaluates an IN list of constants
    // by probing an ephemeral b-tree, once per row (an eighth of a busy scope's stepping).
    if (q.successful_only)
      common += " AND ((d.source = 'served' AND (d.outcome = 'in_progress' OR "
                "((d.outcome = 'complete' OR d.outcome = 'partial' OR d.outcome = 'aborted') AND d.bytes_sent > 0))) OR "
                "(d.source = 'imported' AND d.http_status >= 200 AND d.http_status < 300))";
    auto part = [&](const std::string& own, const std::vector<Param>& own_p) {
      std::string sql = std::string(select) + " WHERE 1 = 1" + common + own;
      p->insert(p->end(), common_p.begin(), common_p.end());
      p->insert(p->end(), own_p.begin(), own_p.end());
      return sql;
    };
    std::string sql;
    if (!q.since) {
      sql = part("", {});
    } else {
      auto finished = [&](const char* which) {
        return part(std::string(which) + " AND d.started_at >= ? AND d.ended_at >= ?", {*q.since - longest, *q.since});
      };
      if (engine == "postgresql") {
        sql = finished(" AND octet_length(d.node) + octet_length(d.username) + octet_length(d.target_path) + "
                       "octet_length(d.sha256) <= 2300") +
              " UNION ALL " +
              finished(" AND octet_length(d.node) + octet_length(d.username) + octet_length(d.target_path) + "
                       "octet_length(d.sha256) > 2300");
      } else {
        sql = finished("");
      }
      std::string unfinished = part(" AND d.ended_at IS NULL AND d.started_at >= ?", {*q.since - kUnfinishedLookBackMicros});
      // SQLite, without statistics, would rather walk the covering index over the whole
      // look-back than use the small partial index that needs table reads: name it.
      if (engine == "sqlite") {
        static constexpr std::string_view kFrom = "FROM downloads d ";
        unfinished.replace(unfinished.find(kFrom), kFrom.size(), "FROM downloads d INDEXED BY downloads_unfinished ");
      }
      sql += " UNION ALL " + unfinished;
    }
    // The journal's tail (migration 0009): downloads not yet folded into `downloads`, with
    // the same conditions (a window: ended in or after it, or unfinished and begun within
    // the look-back). A fold moves a download in one transaction and this is one
    // statement, so each download is read exactly once, folded or not.
    sql += " UNION ALL " +
           OverJournal(q.since ? part(" AND (d.ended_at >= ? OR (d.ended_at IS NULL AND d.started_at >= ?))",
                                      {*q.since, *q.since - kUnfinishedLookBackMicros})
                               : part("", {}));
    if (!q.scope_columns) sql += " ORDER BY 2, 1";  // started_at, id
    if (q.limit) sql += " LIMIT " + std::to_string(q.limit);
    return sql;
  }

  // Runs `fn(sql, params)` for q's SELECT. A window query reads the node's longest download
  // first and then the rows, in one read transaction (one snapshot: a download finished
  // in between cannot fall between the two), so the range is a plain constant the planner
  // estimates from its statistics.
  Status WithDownloadsSql(const DownloadQuery& q,
                          const std::function<Status(const std::string&, const std::vector<Param>&)>& fn) {
    const std::string engine = c_->engine();
    if (!q.since) {
      std::vector<Param> p;
      return fn(DownloadsSql(q, engine, 0, &p), p);
    }
    PG_RETURN_IF_ERROR(c_->ExecScript(engine == "postgresql" ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN"));
    Status st = [&]() -> Status {
      auto bound = q.node ? c_->Query("SELECT longest_micros FROM download_bounds WHERE node = ?", {*q.node})
                          : c_->Query("SELECT MAX(longest_micros) FROM download_bounds", {});
      if (!bound.ok()) return bound.status();
      int64_t longest = bound->empty() ? 0 : I((*bound)[0], 0);
      std::vector<Param> p;
      return fn(DownloadsSql(q, engine, std::max<int64_t>(0, longest), &p), p);
    }();
    if (st.ok()) st = c_->ExecScript("COMMIT");
    if (!st.ok()) (void)c_->ExecScript("ROLLBACK");
    return st;
  }

  Result<std::vector<Download>> QueryDownloads(const DownloadQuery& q) override {
    std::vector<Download> out;
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(WithDownloadsSql(q, [&](const std::string& sql, const std::vector<Param>& p) {
      if (q.scope_columns) {
        // Room for a busy node-day's rows up front: growing by doubling moved each record
        // (11 strings) once more on average, 7% of a 16,663-row scope's instructions.
        // Address space only until rows are written (the scope's heap is reserved anyway:
        // core/heap_huge_pages.h); a larger scope grows as before.
        out.reserve(size_t{1} << 15);
        PG_RETURN_IF_ERROR(c_->QueryEach(sql, p, [&](const sql::RowView& r) { ScopeDownloadFromView(r, out.emplace_back()); }));
        return ReadAbortedDetails(out);
      }
      return c_->QueryEach(sql, p, [&](const sql::RowView& r) { out.push_back(DownloadFromView(r)); });
    }));
    return out;
  }

  // Fills in the detail of the aborted rows of a scope (kScopeDetailSelect), by id.
  Status ReadAbortedDetails(std::vector<Download>& rows) {
    std::unordered_map<int64_t, Download*> aborted;
    std::vector<int64_t> ids;
    for (auto& d : rows)
      if (d.outcome == DownloadOutcome::kAborted && aborted.emplace(d.id, &d).second) ids.push_back(d.id);
    return ReadDetails(ids, [&](int64_t id, std::string_view detail) {
      if (auto it = aborted.find(id); it != aborted.end()) it->second->detail = detail;
    });
  }

  // Hands the detail of each download of `ids` (distinct) to `fn`, a few hundred ids per
  // statement; the row may still be in the journal (migration 0009): one statement reads both.
  Status ReadDetails(const std::vector<int64_t>& ids, const std::function<void(int64_t, std::string_view)>& fn) {
    constexpr size_t kPerStatement = 500;
    for (size_t first = 0; first < ids.size(); first += kPerStatement) {
      const size_t n = std::min(kPerStatement, ids.size() - first);
      const std::string in = "(" + sql::RepeatTuple("?", n) + ")";
      std::string sql = std::string(kScopeDetailSelect) + in + " UNION ALL " + kScopeDetailJournalSelect + in;
      std::vector<Param> both;
      both.reserve(2 * n);
      for (int pass = 0; pass < 2; ++pass)
        for (size_t i = first; i < first + n; ++i) both.emplace_back(ids[i]);
      PG_RETURN_IF_ERROR(c_->QueryEach(sql, both, [&](const sql::RowView& r) { fn(IV(r, 0), SV(r, 1)); }));
    }
    return Status::OK();
  }

  Status VisitScopeDownloads(const DownloadQuery& q, const std::function<void(const ScopeRowView&)>& row,
                             const std::function<void(int64_t, std::string_view)>& detail) override {
    DownloadQuery scope = q;
    scope.scope_columns = true;
    std::lock_guard<std::mutex> l(mu_);
    return WithDownloadsSql(scope, [&](const std::string& sql, const std::vector<Param>& p) -> Status {
      // kScopeSelect's columns, read in place: no Download, no string per text.
      std::vector<int64_t> aborted;
      ScopeRowView v;
      PG_RETURN_IF_ERROR(c_->QueryCursor(sql, p, [&](const sql::RowCursor& r) {
        auto text = [&r](int c) { return r.Text(c).value_or(std::string_view()); };
        v.id = r.Int(0);
        v.started_at = r.Int(1);
        v.node = text(2);
        v.username = text(3);
        v.org_id = r.Int(4);
        v.target_path = text(5);
        v.sha256 = text(6);
        v.bytes_sent = static_cast<uint64_t>(r.Int(7));
        v.outcome = ParseDownloadOutcome(text(8)).value_or(DownloadOutcome::kInProgress);
        v.source = text(9);
        v.unknown_user = r.Int(10) != 0;
        v.unknown_target = r.Int(11) != 0;
        if (v.outcome == DownloadOutcome::kAborted) aborted.push_back(v.id);
        row(v);
      }));
      // A download is one row of the UNION (folded or not), so the ids are distinct.
      return ReadDetails(aborted, [&](int64_t id, std::string_view d) {
        if (!d.empty()) detail(id, d);
      });
    });
  }

  Result<std::string> ExplainQueryDownloads(const DownloadQuery& q) override {
    bool sqlite = c_->engine() == "sqlite";
    std::string plan;
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(WithDownloadsSql(q, [&](const std::string& sql, const std::vector<Param>& p) -> Status {
      PG_ASSIGN_OR_RETURN(Rows rows, c_->Query((sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ") + sql, p));
      for (const auto& r : rows) plan += (sqlite ? S(r, r.size() - 1) : S(r, 0)) + "\n";
      return Status::OK();
    }));
    return plan;
  }

  Result<ImportResult> ImportDownloads(const std::vector<Download>& rows) override {
    static const std::vector<std::string> kColumns = {
        "started_at", "ended_at",    "node",        "user_id",      "username",       "org_id",
        "target_path", "sha256",     "range_header", "bytes_sent",  "outcome",        "remote_addr",
        "user_agent", "source",      "http_status", "unknown_user", "unknown_target", "import_key"};
    std::lock_guard<std::mutex> l(mu_);
    // Users are resolved once per distinct name in the batch, not per row.
    std::map<std::string, std::pair<int64_t, int64_t>, std::less<>> users;  // name -> (id, org)
    {
      std::vector<std::string> names;
      for (const auto& d : rows)
        if (!d.username.empty() && users.try_emplace(d.username, 0, 0).second) names.push_back(d.username);
      for (size_t i = 0; i < names.size(); i += 500) {
        std::string sql = "SELECT username, id, org_id FROM users WHERE username IN (";
        std::vector<Param> p;
        for (size_t k = i; k < std::min(names.size(), i + 500); ++k) {
          sql += k == i ? "?" : ", ?";
          p.push_back(names[k]);
        }
        PG_ASSIGN_OR_RETURN(Rows found, c_->Query(sql + ")", p));
        for (const auto& r : found) users[S(r, 0)] = {I(r, 1), I(r, 2)};
      }
    }
    ImportResult res;
    std::deque<std::string> keep;  // escaped or cut copies of the few values that need it
    std::vector<std::vector<Param>> values;
    values.reserve(rows.size());
    for (const auto& d : rows) {
      if (d.import_key.empty()) return InvalidArgument("an imported download needs its import key");
      auto u = users.find(d.username);
      bool known = u != users.end() && u->second.first != 0;
      res.unknown_users += !known;
      auto text = [&keep](const std::string& v, size_t cap) { return StorableParam(v, cap, keep); };
      values.push_back({d.started_at, d.ended_at ? Param(*d.ended_at) : Param(nullptr),
                        text(d.node, kMaxStoredNodeNameBytes), known ? Param(u->second.first) : Param(nullptr),
                        text(d.username, kMaxStoredUsernameBytes), known ? Param(u->second.second) : Param(nullptr),
                        text(d.target_path, kMaxStoredTargetPathBytes), text(d.sha256, kMaxStoredHashBytes),
                        text(d.range, kMaxStoredRangeBytes), static_cast<int64_t>(d.bytes_sent),
                        Param(sql::TextRef{DownloadOutcomeName(d.outcome)}),
                        text(d.remote_addr, kMaxStoredRemoteAddrBytes), text(d.user_agent, kMaxStoredUserAgentBytes),
                        Param(sql::TextRef{"imported"}), int64_t{d.http_status}, int64_t{!known},
                        int64_t{d.unknown_target}, Param(sql::TextRef{d.import_key})});
    }
    PG_RETURN_IF_ERROR(c_->ExecScript("BEGIN"));
    auto inserted = c_->InsertNew("downloads", kColumns, "import_key", values);
    Status st = inserted.ok() ? c_->ExecScript("COMMIT") : inserted.status();
    if (!st.ok()) {
      (void)c_->ExecScript("ROLLBACK");
      return st;
    }
    res.inserted = static_cast<size_t>(*inserted);
    res.duplicates = rows.size() - res.inserted;
    return res;
  }

  // --- incidents and notifications -------------------------------------------------
  Result<int64_t> CreateIncident(const Incident& i) override {
    if (i.window_end < i.window_start) return InvalidArgument("the incident window ends before it starts");
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("INSERT INTO incidents (node, window_start, window_end, cause, detected_at, "
                                             "targets) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                                             {i.node, i.window_start, i.window_end, i.cause, i.detected_at,
                                              Join(i.targets, '\n')}));
    return I(rows[0], 0);
  }

  Result<Incident> GetIncident(int64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT id, node, window_start, window_end, cause, detected_at, targets FROM "
                                             "incidents WHERE id = ?", {id}));
    if (rows.empty()) return NotFound("no incident " + std::to_string(id) + " (see `patchgate incident list`)");
    return IncidentFromRow(rows[0]);
  }

  Result<std::vector<Incident>> ListIncidents() override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT id, node, window_start, window_end, cause, detected_at, targets FROM "
                                             "incidents ORDER BY id", {}));
    std::vector<Incident> out;
    for (const auto& r : rows) out.push_back(IncidentFromRow(r));
    return out;
  }

  Result<Notification> EnsureNotification(int64_t incident_id, int64_t org_id, const std::string& channel,
                                          const std::string& recipients, const std::string& ack_token_hash) override {
    return Ensure("incident:" + std::to_string(incident_id), incident_id, org_id, channel, recipients, ack_token_hash);
  }

  Result<Notification> EnsureSubjectNotification(const std::string& subject, int64_t org_id, const std::string& channel,
                                                 const std::string& recipients, const std::string& ack_token_hash) override {
    if (subject.rfind("incident:", 0) == 0)
      return InvalidArgument("incident notifications go through EnsureNotification");
    return Ensure(subject, 0, org_id, channel, recipients, ack_token_hash);
  }

  Result<std::vector<Notification>> ListSubjectNotifications(const std::string& prefix) override {
    std::lock_guard<std::mutex> l(mu_);
    // Prefix match without LIKE wildcards: the subject's first characters equal the prefix.
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string(kNotificationSelect) +
                                                 " WHERE substr(n.subject, 1, ?) = ? ORDER BY o.name, n.subject, n.channel",
                                             {static_cast<int64_t>(prefix.size()), prefix}));
    std::vector<Notification> out;
    for (const auto& r : rows) out.push_back(NotificationFromRow(r));
    return out;
  }

  Result<bool> ClaimNotification(int64_t id, int64_t now, int64_t until) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(c_->Query("UPDATE notifications SET claimed_until = ? WHERE id = ? AND state <> 'sent' AND "
                                 "claimed_until < ?", {until, id, now}).status());
    return c_->Changes() == 1;
  }

  // --- advisories ------------------------------------------------------------------
  Result<std::string> CreateAdvisory(const AdvisoryRow& a, int year) override {
    std::string prefix = "PG-" + std::to_string(year) + "-";
    std::lock_guard<std::mutex> l(mu_);
    for (int attempt = 0; attempt < 8; ++attempt) {
      PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT COUNT(*) FROM advisories WHERE substr(id, 1, ?) = ?",
                                               {static_cast<int64_t>(prefix.size()), prefix}));
      char num[16];
      std::snprintf(num, sizeof num, "%04lld", static_cast<long long>(I(rows[0], 0) + 1 + attempt));
      std::string id = prefix + num;
      auto r = c_->Query("INSERT INTO advisories (id, product, state, tlp, publish_at, version, data, created_at) "
                         "VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                         {id, a.product, a.state, a.tlp, a.publish_at ? Param(*a.publish_at) : Param(nullptr), a.data,
                          a.created_at});
      if (r.ok()) return id;
      if (r.status().code() != ErrorCode::kAlreadyExists) return r.status();
    }
    return Status(ErrorCode::kConflict, "could not allocate an advisory id; try again");
  }

  Result<AdvisoryRow> GetAdvisory(const std::string& id) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string(kAdvisorySelect) + " WHERE id = ?", {id}));
    if (rows.empty()) return NotFound("no advisory " + id + " (see `patchgate advisory list`)");
    return AdvisoryFromRow(rows[0]);
  }

  Result<std::vector<AdvisoryRow>> ListAdvisories() override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string(kAdvisorySelect) + " ORDER BY id", {}));
    std::vector<AdvisoryRow> out;
    for (const auto& r : rows) out.push_back(AdvisoryFromRow(r));
    return out;
  }

  Status UpdateAdvisory(const AdvisoryRow& a) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(c_->Query("UPDATE advisories SET product = ?, state = ?, tlp = ?, publish_at = ?, data = ?, "
                                 "version = version + 1 WHERE id = ? AND version = ?",
                                 {a.product, a.state, a.tlp, a.publish_at ? Param(*a.publish_at) : Param(nullptr), a.data,
                                  a.id, a.version})
                           .status());
    if (c_->Changes() == 0) return Status(ErrorCode::kConflict, "advisory " + a.id + " changed meanwhile; read it again");
    return Status::OK();
  }

  Result<std::vector<std::string>> OrganisationsThatDownloaded(const std::string& product) override {
    std::lock_guard<std::mutex> l(mu_);
    // The trail and the journal's tail (migration 0009): one statement, one snapshot.
    static const std::string kPart =
        "SELECT o.name FROM downloads d JOIN organisations o ON o.id = d.org_id JOIN targets t ON "
        "t.path = d.target_path WHERE t.product = ? AND ((d.source = 'served' AND (d.outcome = 'in_progress' OR "
        "d.bytes_sent > 0)) OR (d.source = 'imported' AND d.http_status >= 200 AND d.http_status < 300))";
    static const std::string kSql = kPart + " UNION " + OverJournal(kPart) + " ORDER BY 1";
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(kSql, {product, product}));
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(S(r, 0));
    return out;
  }

  Status ResetAckToken(int64_t id, const std::string& hash) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(c_->Query("UPDATE notifications SET ack_token_hash = ? WHERE id = ? AND state <> 'sent'", {hash, id}).status());
    if (c_->Changes() == 0) return Status(ErrorCode::kConflict, "notification already sent; its token stands");
    return Status::OK();
  }

  Status RecordNotificationAttempt(int64_t id, bool sent, const std::string& error, int64_t at) override {
    std::lock_guard<std::mutex> l(mu_);
    if (sent)
      return c_->Query("UPDATE notifications SET state = 'sent', attempts = attempts + 1, sent_at = ?, last_error = '' "
                       "WHERE id = ?", {at, id}).status();
    return c_->Query("UPDATE notifications SET state = 'failed', claimed_until = 0, attempts = attempts + 1, last_error = ? WHERE id = ? "
                     "AND state <> 'sent'", {error, id}).status();
  }

  Result<std::vector<Notification>> ListNotifications(int64_t incident_id) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string(kNotificationSelect) + " WHERE n.incident_id = ? ORDER BY o.name, n.channel",
                                             {incident_id}));
    std::vector<Notification> out;
    for (const auto& r : rows) out.push_back(NotificationFromRow(r));
    return out;
  }

  Status Acknowledge(const std::string& ack_token_hash, int64_t at) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT id FROM notifications WHERE ack_token_hash = ?", {ack_token_hash}));
    if (rows.empty()) return NotFound("unknown acknowledgement token");
    return c_->Query("UPDATE notifications SET acked_at = ? WHERE ack_token_hash = ? AND acked_at IS NULL",
                     {at, ack_token_hash}).status();
  }

  // --- scan cache ------------------------------------------------------------------
  Result<std::optional<ScanVerdict>> GetScanVerdict(const std::string& sha256, const std::string& db_version) override {
    std::lock_guard<std::mutex> l(mu_);
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query("SELECT sha256, db_version, verdict, detections, engine_version, scanned_at "
                                             "FROM scan_verdicts WHERE sha256 = ? AND db_version = ?", {sha256, db_version}));
    if (rows.empty()) return std::optional<ScanVerdict>();
    const Row& r = rows[0];
    return std::optional<ScanVerdict>(ScanVerdict{S(r, 0), S(r, 1), S(r, 2), S(r, 3), S(r, 4), I(r, 5)});
  }

  Status PutScanVerdict(const ScanVerdict& v) override {
    std::lock_guard<std::mutex> l(mu_);
    return c_->Query("INSERT INTO scan_verdicts (sha256, db_version, verdict, detections, engine_version, scanned_at) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256, db_version) DO UPDATE SET verdict = "
                     "excluded.verdict, detections = excluded.detections, engine_version = excluded.engine_version, "
                     "scanned_at = excluded.scanned_at",
                     {v.sha256, v.db_version, v.verdict, v.detections, v.engine_version, v.scanned_at})
        .status();
  }

 private:
  // Whether the text of a served download record is storable and within its caps.
  static bool FitsStore(const DownloadStart& s) {
    auto fits = [](const std::string& v, size_t cap) { return v.size() <= cap && IsStorableText(v); };
    return fits(s.node, kMaxStoredNodeNameBytes) && fits(s.target_path, kMaxStoredTargetPathBytes) &&
           fits(s.sha256, kMaxStoredHashBytes) && fits(s.range, kMaxStoredRangeBytes) &&
           fits(s.remote_addr, kMaxStoredRemoteAddrBytes) && fits(s.user_agent, kMaxStoredUserAgentBytes);
  }
  static void CapForStore(DownloadStart& s) {
    s.node = StorableText(s.node, kMaxStoredNodeNameBytes);
    s.target_path = StorableText(s.target_path, kMaxStoredTargetPathBytes);
    s.sha256 = StorableText(s.sha256, kMaxStoredHashBytes);
    s.range = StorableText(s.range, kMaxStoredRangeBytes);
    s.remote_addr = StorableText(s.remote_addr, kMaxStoredRemoteAddrBytes);
    s.user_agent = StorableText(s.user_agent, kMaxStoredUserAgentBytes);
  }

  // --- audit writes, inside the caller's transaction --------------------------------
  // SQLite runs in-process, so one statement per row costs nothing extra. On PostgreSQL
  // every statement is a network round trip: a batch takes one for its ids and one per
  // kRowsPerStatement rows.
  static constexpr size_t kRowsPerStatement = 1000;
  // SQLite: rows per statement for the audit path's begins and ends (a statement run opens
  // its cursors once; the statements for whole chunks are prepared once and kept).
  static constexpr size_t kMovesPerStatement = 64;

  // Begins go to the journal (migration 0009) with ids of downloads' sequence, so a row
  // keeps its id when folded. SQLite: ids are reserved kIdBlock at a time by advancing that
  // sequence's row (the one counter ImportDownloads' AUTOINCREMENT and every other writer
  // of this store draw from), and handed out from the block by later batches: a batch then
  // appends its journal rows and writes nothing else (one page for a small batch, no index
  // but the id, no sequence page). A reservation commits with the batch that made it, and
  // one rolled back is forgotten (InsertStarts); ids of a block left unused when the
  // process ends are never used (gaps, as a PostgreSQL sequence leaves). A record's id
  // therefore says nothing about its order among other processes' records.
  static constexpr int64_t kIdBlock = 1024;
  Result<std::vector<int64_t>> InsertStartsOneByOne(const std::vector<DownloadStart>& starts) {
    std::vector<int64_t> ids;
    if (starts.empty()) return ids;
    const auto n = static_cast<int64_t>(starts.size());
    if (id_end_ - id_next_ < n) {
      const int64_t block = std::max(n, kIdBlock);
      PG_ASSIGN_OR_RETURN(Rows seq, c_->Query("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'downloads' "
                                              "RETURNING seq", {block}));
      if (seq.size() != 1) return Internal("the store has no id sequence for downloads (migration 0009 not applied?)");
      id_end_ = I(seq[0], 0) + 1;
      id_next_ = id_end_ - block;
    }
    const int64_t first = id_next_;
    id_next_ += n;
    ids.reserve(starts.size());
    for (size_t i = 0; i < starts.size(); ++i) ids.push_back(first + static_cast<int64_t>(i));
    // kMovesPerStatement rows per statement: one statement run (cursors on the journal and
    // users opened once) instead of one per row.
    for (size_t at = 0; at < starts.size(); at += kMovesPerStatement) {
      const size_t k = std::min(kMovesPerStatement, starts.size() - at);
      PG_RETURN_IF_ERROR(c_->Query(JournalInsertSql(k), JournalInsertParams(starts, ids, at, k)).status());
      if (static_cast<size_t>(c_->Changes()) != k)
        return NotFound(k == 1 ? "download for unknown user id " + std::to_string(starts[at].user_id)
                               : std::string("download for an unknown user id in the batch"));
    }
    return ids;
  }
  // The parameters of begins [first, first + n) for the journal inserts below, nine per
  // begin in their column order (id, started_at, node, user_id, target_path, sha256,
  // range_header, remote_addr, user_agent); texts are referenced, not copied.
  static std::vector<Param> JournalInsertParams(const std::vector<DownloadStart>& starts,
                                                const std::vector<int64_t>& ids, size_t first, size_t n) {
    std::vector<Param> p;
    p.reserve(n * 9);
    for (size_t i = first; i < first + n; ++i) {
      const DownloadStart& s = starts[i];
      p.insert(p.end(), {ids[i], s.started_at, sql::TextRef{s.node}, s.user_id, sql::TextRef{s.target_path},
                         sql::TextRef{s.sha256}, sql::TextRef{s.range}, sql::TextRef{s.remote_addr},
                         sql::TextRef{s.user_agent}});
    }
    return p;
  }
  // SQLite: `n` begins into the journal (parameters id, started_at, node, user_id,
  // target_path, sha256, range_header, remote_addr, user_agent per begin), in their order,
  // with the user's name and organisation as they are now.
  static std::string JournalInsertSql(size_t n) {
    static const std::string kHead =
        "WITH v (id, started_at, node, user_id, target_path, sha256, range_header, remote_addr, user_agent) AS (VALUES ";
    static const std::string kTail =
        ") INSERT INTO download_journal (id, started_at, node, user_id, username, org_id, target_path, sha256, "
        "range_header, outcome, remote_addr, user_agent) SELECT v.id, v.started_at, v.node, u.id, u.username, u.org_id, "
        "v.target_path, v.sha256, v.range_header, 'in_progress', v.remote_addr, v.user_agent FROM v JOIN users u ON "
        "u.id = v.user_id";
    static const std::string kTuple = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
    static const std::string kFull = kHead + sql::RepeatTuple(kTuple, kMovesPerStatement) + kTail;
    return n == kMovesPerStatement ? kFull : kHead + sql::RepeatTuple(kTuple, n) + kTail;
  }

  Result<std::vector<int64_t>> InsertStartsBatched(const std::vector<DownloadStart>& starts) {
    if (starts.empty()) return std::vector<int64_t>{};
    // Ids drawn first, in order, so the i-th id is the i-th record's whatever order the
    // server inserts the rows in.
    PG_ASSIGN_OR_RETURN(Rows drawn, c_->Query("SELECT nextval(pg_get_serial_sequence('downloads', 'id')) FROM "
                                              "generate_series(1, ?::bigint) ORDER BY 1",
                                              {static_cast<int64_t>(starts.size())}));
    std::vector<int64_t> ids;
    ids.reserve(drawn.size());
    for (const auto& r : drawn) ids.push_back(I(r, 0));
    if (ids.size() != starts.size()) return Internal("the id sequence returned too few ids");
    for (size_t first = 0; first < starts.size(); first += kRowsPerStatement) {
      size_t n = std::min(kRowsPerStatement, starts.size() - first);
      std::string sql =
          "INSERT INTO download_journal (id, started_at, node, user_id, username, org_id, target_path, sha256, "
          "range_header, outcome, remote_addr, user_agent) SELECT v.id, v.started_at, v.node, u.id, u.username, "
          "u.org_id, v.target_path, v.sha256, v.range_header, 'in_progress', v.remote_addr, v.user_agent FROM (VALUES ";
      sql += sql::RepeatTuple("(?::bigint, ?::bigint, ?::text, ?::bigint, ?::text, ?::text, ?::text, ?::text, ?::text)", n);
      std::vector<Param> p = JournalInsertParams(starts, ids, first, n);
      sql += ") AS v (id, started_at, node, user_id, target_path, sha256, range_header, remote_addr, user_agent) "
             "JOIN users u ON u.id = v.user_id";
      PG_RETURN_IF_ERROR(c_->Query(sql, p).status());
      if (static_cast<size_t>(c_->Changes()) != n) return NotFound("download for an unknown user id in the batch");
    }
    return ids;
  }

  // An end is the moment a record's final row is known: the journal row (its begin) is
  // moved into `downloads` with the end's fields in place, and leaves the journal, in the
  // end's transaction. The row is never rewritten in the journal (no UPDATE of it) and a
  // fold has nothing left to move for it. A record no longer in the journal (folded
  // unfinished once old, FoldDownloads, or written by an older version) is completed in
  // `downloads`.
  //
  // SQLite: kMovesPerStatement ends per statement pair (one INSERT ... SELECT joining the
  // ends to their journal rows, one DELETE of those rows): each statement run opens a
  // cursor on the trail and each of its indexes, which cost more than moving a row.
  Status UpdateFinishesOneByOne(const std::vector<DownloadFinish>& finishes) {
    std::deque<std::string> keep;
    std::vector<const DownloadFinish*> missed;
    for (size_t first = 0; first < finishes.size(); first += kMovesPerStatement) {
      const size_t n = std::min(kMovesPerStatement, finishes.size() - first);
      std::vector<Param> p, ids;
      p.reserve(n * 5);
      ids.reserve(n);
      for (size_t i = first; i < first + n; ++i) {
        const DownloadFinish& f = finishes[i];
        p.insert(p.end(), {f.id, f.ended_at, static_cast<int64_t>(f.bytes_sent), sql::TextRef{DownloadOutcomeName(f.outcome)},
                           StorableParam(f.detail, kMaxStoredDownloadDetailBytes, keep)});
        ids.push_back(f.id);
      }
      PG_RETURN_IF_ERROR(c_->Query(MoveEndedSql(n), p).status());
      const int64_t moved = c_->Changes();
      const std::string in = "(" + sql::RepeatTuple("?", n) + ")";
      if (static_cast<size_t>(moved) != n) {  // some were no longer in the journal: which
        std::set<int64_t> hit;
        PG_ASSIGN_OR_RETURN(Rows still, c_->Query("SELECT id FROM download_journal WHERE id IN " + in, ids));
        for (const auto& r : still) hit.insert(I(r, 0));
        for (size_t i = first; i < first + n; ++i)
          if (!hit.count(finishes[i].id)) missed.push_back(&finishes[i]);
      }
      PG_RETURN_IF_ERROR(c_->Query("DELETE FROM download_journal WHERE id IN " + in, ids).status());
      if (c_->Changes() != moved) return Internal("the ends moved a different number of journal rows than they removed");
    }
    for (const DownloadFinish* f : missed) {
      PG_RETURN_IF_ERROR(c_->Query("UPDATE downloads SET ended_at = ?, bytes_sent = ?, outcome = ?, detail = ? WHERE id = ?",
                                   {f->ended_at, static_cast<int64_t>(f->bytes_sent),
                                    sql::TextRef{DownloadOutcomeName(f->outcome)},
                                    StorableParam(f->detail, kMaxStoredDownloadDetailBytes, keep), f->id})
                             .status());
    }
    return Status::OK();
  }
  // SQLite: the journal rows of `n` ends (parameters id, ended_at, bytes_sent, outcome,
  // detail per end) inserted into `downloads` with their ends.
  static std::string MoveEndedSql(size_t n) {
    static const std::string kHead = "WITH v (id, ended_at, bytes_sent, outcome, detail) AS (VALUES ";
    static const std::string kTail = ") INSERT INTO downloads (" + std::string(kTrailColumns) + ") SELECT " +
                                     EndedRowColumns("j.", "v.") +
                                     " FROM v JOIN download_journal AS j ON j.id = v.id";
    static const std::string kFull = kHead + sql::RepeatTuple("(?, ?, ?, ?, ?)", kMovesPerStatement) + kTail;
    return n == kMovesPerStatement ? kFull : kHead + sql::RepeatTuple("(?, ?, ?, ?, ?)", n) + kTail;
  }
  // The trail's columns in their order, read from a journal row (`row` prefix) with the
  // end's four columns from `end` (prefix).
  static std::string EndedRowColumns(std::string_view row, std::string_view end) {
    std::string out;
    std::string_view cols = kTrailColumns;
    while (!cols.empty()) {
      const size_t comma = cols.find(", ");
      const std::string_view col = cols.substr(0, comma);
      cols = comma == std::string_view::npos ? std::string_view() : cols.substr(comma + 2);
      if (!out.empty()) out += ", ";
      const bool from_end = col == "ended_at" || col == "bytes_sent" || col == "outcome" || col == "detail";
      out.append(from_end ? end : row).append(col);
    }
    return out;
  }

  // One statement per kRowsPerStatement ends moves their journal rows into `downloads`
  // with the ends in place (DELETE ... RETURNING feeding the INSERT: atomic, the row is
  // never rewritten in the journal); the ends it did not find there (folded meanwhile, or
  // written by an older version: a later statement sees the fold's commit) complete their
  // row in `downloads`. A row a folder has locked is waited for, then missed, then
  // completed in `downloads`.
  Status UpdateFinishesBatched(const std::vector<DownloadFinish>& finishes) {
    std::vector<const DownloadFinish*> todo;
    todo.reserve(finishes.size());
    for (const auto& f : finishes) todo.push_back(&f);
    static const std::string moved_cols = EndedRowColumns("j.", "v.");
    for (const bool into_journal_move : {true, false}) {
      std::vector<const DownloadFinish*> missed;
      for (size_t first = 0; first < todo.size(); first += kRowsPerStatement) {
        size_t n = std::min(kRowsPerStatement, todo.size() - first);
        const std::string values = "(VALUES " + sql::RepeatTuple("(?::bigint, ?::bigint, ?::bigint, ?::text, ?::text)", n) +
                                   ") AS v (id, ended_at, bytes_sent, outcome, detail)";
        std::string sql =
            into_journal_move
                ? "WITH moved AS (DELETE FROM download_journal AS j USING " + values + " WHERE j.id = v.id RETURNING " +
                      moved_cols + ") INSERT INTO downloads (" + kTrailColumns + ") SELECT " + kTrailColumns +
                      " FROM moved RETURNING id"
                : "UPDATE downloads AS d SET ended_at = v.ended_at, bytes_sent = v.bytes_sent, outcome = v.outcome, "
                  "detail = v.detail FROM " + values + " WHERE d.id = v.id RETURNING d.id";
        std::vector<Param> p;
        p.reserve(n * 5);
        std::deque<std::string> keep;  // escaped or cut copies of the few details that need it
        for (size_t i = first; i < first + n; ++i) {
          const DownloadFinish& f = *todo[i];
          p.insert(p.end(), {f.id, f.ended_at, static_cast<int64_t>(f.bytes_sent),
                             sql::TextRef{DownloadOutcomeName(f.outcome)},
                             StorableParam(f.detail, kMaxStoredDownloadDetailBytes, keep)});
        }
        PG_ASSIGN_OR_RETURN(Rows found, c_->Query(sql, p));
        if (found.size() == n) continue;
        std::set<int64_t> hit;
        for (const auto& r : found) hit.insert(I(r, 0));
        for (size_t i = first; i < first + n; ++i)
          if (!hit.count(todo[i]->id)) missed.push_back(todo[i]);
      }
      todo.swap(missed);
      if (todo.empty()) break;
    }
    return Status::OK();
  }

  Result<Notification> Ensure(const std::string& subject, int64_t incident_id, int64_t org_id, const std::string& channel,
                              const std::string& recipients, const std::string& ack_token_hash) {
    std::lock_guard<std::mutex> l(mu_);
    PG_RETURN_IF_ERROR(c_->Query("INSERT INTO notifications (subject, incident_id, org_id, channel, recipients, "
                                 "ack_token_hash) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject, org_id, channel) DO NOTHING",
                                 {subject, incident_id ? Param(incident_id) : Param(nullptr), org_id, channel, recipients,
                                  ack_token_hash})
                           .status());
    PG_ASSIGN_OR_RETURN(Rows rows, c_->Query(std::string(kNotificationSelect) +
                                                 " WHERE n.subject = ? AND n.org_id = ? AND n.channel = ?",
                                             {subject, org_id, channel}));
    if (rows.empty()) return Internal("notification row vanished");
    return NotificationFromRow(rows[0]);
  }

  static constexpr char kNotificationSelect[] =
      "SELECT n.id, COALESCE(n.incident_id, 0), n.org_id, o.name, n.channel, n.recipients, n.state, n.attempts, "
      "n.last_error, n.sent_at, n.acked_at, n.subject FROM notifications n JOIN organisations o ON o.id = n.org_id";
  static constexpr char kAdvisorySelect[] =
      "SELECT id, product, state, tlp, publish_at, version, data, created_at FROM advisories";
  static AdvisoryRow AdvisoryFromRow(const Row& r) {
    return AdvisoryRow{S(r, 0), S(r, 1), S(r, 2), S(r, 3), OI(r, 4), I(r, 5), S(r, 6), I(r, 7)};
  }

  static Incident IncidentFromRow(const Row& r) {
    return Incident{I(r, 0), S(r, 1), I(r, 2), I(r, 3), S(r, 4), I(r, 5), Split(S(r, 6), '\n')};
  }
  static Notification NotificationFromRow(const Row& r) {
    Notification n;
    n.id = I(r, 0);
    n.incident_id = I(r, 1);
    n.org_id = I(r, 2);
    n.org_name = S(r, 3);
    n.channel = S(r, 4);
    n.recipients = S(r, 5);
    n.state = S(r, 6);
    n.attempts = static_cast<int>(I(r, 7));
    n.last_error = S(r, 8);
    n.sent_at = OI(r, 9);
    n.acked_at = OI(r, 10);
    n.subject = S(r, 11);
    return n;
  }

  friend std::optional<sql::SharedConnection> sql::ConnectionOf(Store& store);
  std::mutex mu_;
  std::unique_ptr<sql::Connection> c_;
  // SQLite: the download ids reserved and not yet used, [id_next_, id_end_) (guarded by mu_).
  int64_t id_next_ = 0, id_end_ = 0;
};

}  // namespace

std::optional<sql::SharedConnection> sql::ConnectionOf(Store& store) {
  auto* s = dynamic_cast<SqlStore*>(&store);
  if (!s) return std::nullopt;
  return sql::SharedConnection{s->c_.get(), &s->mu_};
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& url) {
  std::unique_ptr<sql::Connection> conn;
  if (url.rfind("sqlite:", 0) == 0) {
    PG_ASSIGN_OR_RETURN(conn, sql::OpenSqlite(url));
  } else if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    PG_ASSIGN_OR_RETURN(conn, sql::OpenPostgres(url));
  } else {
    return InvalidArgument("unknown store URL '" + url + "': use sqlite:///path/to.db or postgresql://user@host/db");
  }
  auto store = std::make_unique<SqlStore>(sql::WithStorableText(std::move(conn)));
  PG_RETURN_IF_ERROR(store->Migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace patchgate
