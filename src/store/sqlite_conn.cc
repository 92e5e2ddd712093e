#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>

#include "store/sql.h"

namespace patchgate::sql {

namespace {

// The current row of a stepped statement. A text that SQLite cannot give (out of memory:
// NULL for a value that is not NULL) marks the cursor; the query then fails.
class StatementCursor final : public RowCursor {
 public:
  explicit StatementCursor(sqlite3_stmt* st) : st_(st) {}
  int64_t Int(int column) const override { return sqlite3_column_int64(st_, column); }
  std::optional<std::string_view> Text(int column) const override {
    const unsigned char* t = sqlite3_column_text(st_, column);
    if (!t) {
      if (sqlite3_column_type(st_, column) != SQLITE_NULL) out_of_memory = true;
      return std::nullopt;
    }
    return std::string_view(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(st_, column)));
  }
  mutable bool out_of_memory = false;

 private:
  sqlite3_stmt* st_;
};

class SqliteConnection : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [_, st] : cache_) sqlite3_finalize(st);
    sqlite3_close_v2(db_);
    if (wal_fd_ >= 0) ::close(wal_fd_);
  }

  // In WAL mode a commit appends its pages to the -wal file; synchronous=FULL flushes that
  // file in every commit. With synchronous=NORMAL (deferred) SQLite flushes it only around
  // checkpoints (the WAL before its pages are copied, the database file after), so a
  // commit is durable once the WAL is flushed: SyncCommitted() does that on the same file.
  // `wal_path`: the database's -wal file, when the database is in WAL mode.
  void UseWal(std::string wal_path) { wal_path_ = std::move(wal_path); }

  bool SetDeferredSync(bool on) override {
    if (wal_path_.empty()) return false;
    return ExecScript(on ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL").ok();
  }

  Status SyncCommitted() override {
    if (wal_path_.empty()) return Status::OK();  // every commit synced by itself
    std::lock_guard<std::mutex> l(wal_mu_);
    // The WAL this connection writes exists as long as the connection is open (SQLite
    // removes it only when the last connection closes). Held open here and checked by
    // identity, so a file put in its place is flushed instead of the old one.
    //
    // The identity is asked for without the file's times (statx, STATX_INO only). A stat
    // that reads ctime/mtime marks them "queried" on filesystems with multigrain timestamps
    // (ext4, xfs, btrfs since Linux 6.13): the next write then stamps a fine-grained time,
    // which dirties the inode every time, and every fdatasync had to write the inode block
    // too (one more synchronous disk write per download, measured on ext4).
    struct statx stx {};
    if (::statx(AT_FDCWD, wal_path_.c_str(), 0, STATX_INO, &stx) != 0)
      return Unavailable("sqlite: cannot find the write-ahead log " + wal_path_ + ": " + std::strerror(errno));
    const dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    if (wal_fd_ < 0 || dev != wal_dev_ || stx.stx_ino != wal_ino_) {
      if (wal_fd_ >= 0) ::close(wal_fd_);
      wal_fd_ = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd_ < 0) return Unavailable("sqlite: cannot open the write-ahead log " + wal_path_ + ": " + std::strerror(errno));
      struct statx opened {};
      if (::statx(wal_fd_, "", AT_EMPTY_PATH, STATX_INO, &opened) != 0)
        return Unavailable("sqlite: cannot stat the write-ahead log " + wal_path_);
      wal_dev_ = makedev(opened.stx_dev_major, opened.stx_dev_minor);
      wal_ino_ = opened.stx_ino;
      // A WAL file created since: its name must be durable too (what SQLite's own first
      // sync of a new file does).
      std::string dir = wal_path_.substr(0, wal_path_.rfind('/') == std::string::npos ? 0 : wal_path_.rfind('/'));
      int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      bool dir_ok = dfd >= 0 && ::fsync(dfd) == 0;
      if (dfd >= 0) ::close(dfd);
      if (!dir_ok) return Unavailable("sqlite: cannot flush the directory of " + wal_path_ + ": " + std::strerror(errno));
    }
    if (::fdatasync(wal_fd_) != 0)
      return Unavailable("sqlite: flushing the write-ahead log " + wal_path_ + " failed: " + std::strerror(errno) +
                         "; the last records may not be on disk");
    return Status::OK();
  }
  std::string engine() const override { return "sqlite"; }

  Result<Rows> Query(std::string_view sql, const std::vector<Param>& params) override {
    Rows rows;
    PG_RETURN_IF_ERROR(QueryEach(sql, params, [&rows](const RowView& view) {
      Row& row = rows.emplace_back(view.size());
      for (size_t c = 0; c < view.size(); ++c)
        if (view[c]) row[c] = std::string(*view[c]);
    }));
    return rows;
  }

  Status QueryEach(std::string_view sql, const std::vector<Param>& params,
                   const std::function<void(const RowView&)>& fn) override {
    PG_ASSIGN_OR_RETURN(sqlite3_stmt * st, Prepared(sql));
    Bind(st, params);
    RowView row;
    // Integers are written out here (the same decimal text SQLite would give), not by
    // sqlite3_column_text, which converts the value in place inside SQLite: a sixth of
    // reading a busy scope's rows, six integers a row.
    std::vector<std::array<char, 24>> numbers;
    return StepRows(st, [&]() -> Status {
      int n = sqlite3_column_count(st);
      row.assign(static_cast<size_t>(n), std::nullopt);
      numbers.resize(static_cast<size_t>(n));
      for (int c = 0; c < n; ++c) {
        if (sqlite3_column_type(st, c) == SQLITE_INTEGER) {
          auto& buf = numbers[static_cast<size_t>(c)];
          auto end = std::to_chars(buf.data(), buf.data() + buf.size(), sqlite3_column_int64(st, c)).ptr;
          row[static_cast<size_t>(c)] = std::string_view(buf.data(), static_cast<size_t>(end - buf.data()));
          continue;
        }
        // NULL text is a NULL value (or out of memory, told apart by the type only then).
        const unsigned char* t = sqlite3_column_text(st, c);
        if (!t) {
          if (sqlite3_column_type(st, c) == SQLITE_NULL) continue;
          return Err("column");
        }
        row[static_cast<size_t>(c)] = std::string_view(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(st, c)));
      }
      fn(row);
      return Status::OK();
    });
  }

  // Each column read straight from the statement: sqlite3_column_int64 for integers, the
  // text in place for texts (no copy, no vector of columns per row).
  Status QueryCursor(std::string_view sql, const std::vector<Param>& params,
                     const std::function<void(const RowCursor&)>& fn) override {
    PG_ASSIGN_OR_RETURN(sqlite3_stmt * st, Prepared(sql));
    Bind(st, params);
    StatementCursor cursor(st);
    return StepRows(st, [&]() -> Status {
      fn(cursor);
      return cursor.out_of_memory ? Internal("sqlite: column: out of memory") : Status::OK();
    });
  }

  // Steps `st` to its end, calling on_row() at each row (a Status other than OK ends it
  // there); the statement is reset whatever happens, after the error was read.
  template <class OnRow>
  Status StepRows(sqlite3_stmt* st, OnRow on_row) {
    for (;;) {
      int rc = sqlite3_step(st);
      if (rc == SQLITE_DONE) break;
      Status s = rc == SQLITE_ROW ? on_row() : Err("step");
      if (!s.ok()) {
        sqlite3_reset(st);
        return s;
      }
    }
    sqlite3_reset(st);
    return Status::OK();
  }

  Status ExecScript(std::string_view sql) override {
    // One short statement (BEGIN, COMMIT, a PRAGMA: every audit transaction runs four) is
    // prepared once and kept, not parsed again on each call.
    if (sql.size() <= kMaxCachedScript && sql.find(';') == std::string_view::npos) {
      PG_ASSIGN_OR_RETURN(sqlite3_stmt * st, Prepared(sql));
      int rc;
      while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      }
      Status s = rc == SQLITE_DONE ? Status::OK() : Err("exec");
      sqlite3_reset(st);
      return s;
    }
    char* msg = nullptr;
    if (sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return Map(sqlite3_extended_errcode(db_), m);
    }
    return Status::OK();
  }

  int64_t Changes() override { return sqlite3_changes64(db_); }

  Result<int64_t> InsertNew(std::string_view table, const std::vector<std::string>& columns,
                            std::string_view unique_column, const std::vector<std::vector<Param>>& rows) override {
    // Several rows per statement: one VDBE program run for up to kRowsPerStatement rows.
    constexpr size_t kRowsPerStatement = 64;
    std::string head = "INSERT INTO " + std::string(table) + " (", tuple = "(";
    for (size_t i = 0; i < columns.size(); ++i) {
      head += (i ? ", " : "") + columns[i];
      tuple += i ? ", ?" : "?";
    }
    head += ") VALUES ";
    tuple += ")";
    const std::string tail = " ON CONFLICT (" + std::string(unique_column) + ") DO NOTHING";
    const std::string full = head + RepeatTuple(tuple, kRowsPerStatement) + tail;  // built once, not per chunk
    int64_t inserted = 0;
    for (size_t first = 0; first < rows.size(); first += kRowsPerStatement) {
      size_t n = std::min(kRowsPerStatement, rows.size() - first);
      PG_ASSIGN_OR_RETURN(sqlite3_stmt * st, Prepared(n == kRowsPerStatement ? full : head + RepeatTuple(tuple, n) + tail));
      int idx = 1;
      for (size_t r = first; r < first + n; ++r) {
        if (rows[r].size() != columns.size()) return InvalidArgument("bulk insert row has the wrong number of values");
        for (const Param& p : rows[r]) BindOne(st, idx++, p);
      }
      if (sqlite3_step(st) != SQLITE_DONE) {
        Status s = Err("bulk insert");
        sqlite3_reset(st);
        return s;
      }
      inserted += sqlite3_changes64(db_);
      sqlite3_reset(st);
    }
    return inserted;
  }

 private:
  // The cached prepared statement for `sql`, reset and with its bindings cleared.
  Result<sqlite3_stmt*> Prepared(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      sqlite3_reset(it->second);
      sqlite3_clear_bindings(it->second);
      return it->second;
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &st, nullptr) !=
        SQLITE_OK)
      return Err("prepare");
    cache_.emplace(std::string(sql), st);
    return st;
  }

  // Binds by reference: the parameters must outlive the step.
  static void Bind(sqlite3_stmt* st, const std::vector<Param>& params) {
    for (size_t i = 0; i < params.size(); ++i) BindOne(st, static_cast<int>(i + 1), params[i]);
  }
  static void BindOne(sqlite3_stmt* st, int idx, const Param& p) {
    if (std::holds_alternative<std::nullptr_t>(p)) sqlite3_bind_null(st, idx);
    else if (auto* v = std::get_if<int64_t>(&p)) sqlite3_bind_int64(st, idx, *v);
    else {
      std::string_view s = TextOf(p);
      sqlite3_bind_text(st, idx, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
    }
  }

  Status Err(const char* what) { return Map(sqlite3_extended_errcode(db_), std::string(what) + ": " + sqlite3_errmsg(db_)); }
  static Status Map(int code, const std::string& msg) {
    int primary = code & 0xff;
    if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
      return AlreadyExists("sqlite: " + msg);
    if (primary == SQLITE_CONSTRAINT) return InvalidArgument("sqlite: " + msg);
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_IOERR || primary == SQLITE_FULL ||
        primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY || primary == SQLITE_PERM)
      return Unavailable("sqlite: " + msg);
    // A file that is not a database is a store that cannot be used (exit 5), like one that
    // cannot be opened: most often a wrong --store path.
    if (primary == SQLITE_NOTADB)
      return Unavailable("sqlite: " + msg + ": the store file is not an SQLite database; check --store or "
                         "$PATCHGATE_STORE");
    if (primary == SQLITE_CORRUPT) return Corrupt("sqlite: " + msg);
    return Internal("sqlite: " + msg);
  }

  static constexpr size_t kMaxCachedScript = 64;
  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
  std::string wal_path_;  // empty: not in WAL mode (or in memory)
  std::mutex wal_mu_;     // guards the fields below (SyncCommitted runs beside statements)
  int wal_fd_ = -1;
  dev_t wal_dev_ = 0;
  ino_t wal_ino_ = 0;
};

}  // namespace

Result<std::unique_ptr<Connection>> OpenSqlite(const std::string& url) {
  std::string path;
  if (url == "sqlite::memory:") path = ":memory:";
  else if (url.rfind("sqlite://", 0) == 0) path = url.substr(9);
  else return InvalidArgument("not an sqlite URL: " + url);
  if (path.empty()) return InvalidArgument("sqlite URL has no path: use sqlite:///absolute/path.db or sqlite://relative.db");
  // No global allocation statistics (they take a process-wide mutex around every
  // allocation of every connection); only takes effect before SQLite's first use.
  static const bool no_memstatus = [] { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK; }();
  (void)no_memstatus;
  sqlite3* db = nullptr;
  // No per-call mutex inside SQLite (SQLITE_OPEN_NOMUTEX): a Connection is not thread-safe
  // anyway (its statement cache) and its owner serialises every call (SqlStore and
  // NodeRegistry hold their mutex around each use). The serialised mode took and released
  // the connection's mutex on each sqlite3_column_* call: a third of reading a scope's rows.
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return Unavailable("cannot open SQLite store " + path + ": " + m);
  }
  sqlite3_busy_timeout(db, 5000);
  auto conn = std::make_unique<SqliteConnection>(db);
  // WAL for concurrent readers; FULL sync so a committed download record survives a crash;
  // a 64 MiB page cache keeps the hot ends of the audit indexes in memory.
  PG_RETURN_IF_ERROR(conn->ExecScript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                                      "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"));
  // Split durability only where the database really is in WAL mode on a file.
  auto mode = conn->Query("PRAGMA journal_mode", {});
  const char* file = sqlite3_db_filename(db, "main");
  if (mode.ok() && !mode->empty() && (*mode)[0][0] && *(*mode)[0][0] == "wal" && file && *file)
    conn->UseWal(std::string(file) + "-wal");
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace patchgate::sql
