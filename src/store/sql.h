// Internal to the store: a minimal SQL connection (bound parameters only) that the one
// Store implementation runs on, with an SQLite and a PostgreSQL engine underneath.
// Statements use '?' placeholders; the PostgreSQL engine rewrites them to $1, $2, ...
// A SqlConnection is NOT thread-safe; the Store serialises access.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace patchgate {
class Store;
}

namespace patchgate::sql {

// Text the caller keeps alive until the call returns (bulk loads bind without copying).
struct TextRef {
  std::string_view text;
};
using Param = std::variant<std::nullptr_t, int64_t, std::string, TextRef>;

// `tuple` repeated `n` times, comma-separated: the VALUES list of a multi-row statement,
// e.g. RepeatTuple("(?, ?)", 3) == "(?, ?), (?, ?), (?, ?)".
inline std::string RepeatTuple(std::string_view tuple, size_t n) {
  std::string out;
  out.reserve(n * (tuple.size() + 2));
  for (size_t i = 0; i < n; ++i) {
    if (i) out += ", ";
    out += tuple;
  }
  return out;
}

// The text of a string or TextRef parameter.
inline std::string_view TextOf(const Param& p) {
  if (const auto* r = std::get_if<TextRef>(&p)) return r->text;
  return std::get<std::string>(p);
}
using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;
// A row seen in place: each column's text (nullopt for NULL), valid during the callback only.
using RowView = std::vector<std::optional<std::string_view>>;

// A row seen in place, one column at a time, valid during the callback only. Integers are
// read as integers where the engine holds them so (SQLite), without a round trip through
// decimal text; on an engine that hands over text (PostgreSQL) the text is parsed.
class RowCursor {
 public:
  virtual ~RowCursor() = default;
  virtual int64_t Int(int column) const = 0;                         // 0 for NULL
  virtual std::optional<std::string_view> Text(int column) const = 0;  // nullopt for NULL
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual std::string engine() const = 0;  // "sqlite" | "postgresql"
  // Runs one statement with bound parameters; returns its rows (empty for DML).
  virtual Result<Rows> Query(std::string_view sql, const std::vector<Param>& params) = 0;
  // Runs one statement and hands each row to `fn` in place, without copying it into Rows
  // (large results: a scope of tens of thousands of rows).
  virtual Status QueryEach(std::string_view sql, const std::vector<Param>& params,
                           const std::function<void(const RowView&)>& fn) = 0;
  // The same, each row seen through a RowCursor (a scope's rows: no per-row vector of
  // columns, no integer written out as text and parsed back). The default reads QueryEach's
  // rows.
  virtual Status QueryCursor(std::string_view sql, const std::vector<Param>& params,
                             const std::function<void(const RowCursor&)>& fn);
  // Runs a script of several statements without parameters (migrations).
  virtual Status ExecScript(std::string_view sql) = 0;
  // Number of rows changed by the last INSERT/UPDATE/DELETE.
  virtual int64_t Changes() = 0;
  // Bulk load inside the caller's transaction: inserts `rows` (values in `columns` order)
  // into `table`, skipping every row whose `unique_column` value already exists (or repeats
  // within `rows`). Returns the number of rows inserted. SQLite steps one prepared statement
  // per row; PostgreSQL streams the rows with COPY into a temporary staging table and
  // inserts them with one INSERT ... SELECT ... ON CONFLICT DO NOTHING.
  virtual Result<int64_t> InsertNew(std::string_view table, const std::vector<std::string>& columns,
                                    std::string_view unique_column, const std::vector<std::vector<Param>>& rows) = 0;
  // Split durability (the audit pipeline): while on, a COMMIT on this connection makes its
  // changes visible at once but durable only once a later SyncCommitted() has returned OK,
  // so one flush to disk can cover several commits and run beside the next one. Returns
  // false (and every commit stays durable by itself) where the engine or the database
  // cannot split the two. Serialised like every other call.
  virtual bool SetDeferredSync(bool on) {
    (void)on;
    return false;
  }
  // Makes durable every commit that returned before this call. Thread-safe: may run on
  // another thread while statements run on this connection (it never touches them).
  virtual Status SyncCommitted() { return Status::OK(); }
};

// Wraps `conn` so that no text parameter that is not storable (invalid UTF-8, or NUL) ever
// reaches the engine: such a parameter is bound as EscapeInvalidUtf8(text) ("\xHH" per bad
// byte), in every statement and bulk load. Valid text passes through without a copy. This is
// why one request's bytes can never make PostgreSQL reject a statement that carries others'.
std::unique_ptr<Connection> WithStorableText(std::unique_ptr<Connection> conn);

// url "sqlite:///abs/path.db" or "sqlite://rel.db" or "sqlite::memory:".
Result<std::unique_ptr<Connection>> OpenSqlite(const std::string& url);
// url "postgresql://..." or "postgres://..." (libpq connection URI).
Result<std::unique_ptr<Connection>> OpenPostgres(const std::string& url);

// The connection a Store opened by Store::Open runs on, with the lock that serialises its
// statements (a caller holds `mu` around every call on `conn`, and for a transaction around
// all of its statements). Lets another role (NodeRegistry::OpenBeside) share the store's
// connection instead of opening a second one. Both live as long as the Store.
struct SharedConnection {
  Connection* conn = nullptr;
  std::mutex* mu = nullptr;
};
// nullopt for a Store that is not the SQL store (e.g. a test's ForwardingStore).
std::optional<SharedConnection> ConnectionOf(Store& store);

}  // namespace patchgate::sql
