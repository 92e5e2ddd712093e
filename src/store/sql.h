// Internal to the store: a minimal SQL connection (bound parameters only) that the one
// Store implementation runs on, with an SQLite and a PostgreSQL engine underneath.
// Statements use '?' placeholders; the PostgreSQL engine rewrites them to $1, $2, ...
// A SqlConnection is NOT thread-safe; the Store serialises access.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace patchgate::sql {

using Param = std::variant<std::nullptr_t, int64_t, std::string>;
using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;

class Connection {
 public:
  virtual ~Connection() = default;
  virtual std::string engine() const = 0;  // "sqlite" | "postgresql"
  // Runs one statement with bound parameters; returns its rows (empty for DML).
  virtual Result<Rows> Query(std::string_view sql, const std::vector<Param>& params) = 0;
  // Runs a script of several statements without parameters (migrations).
  virtual Status ExecScript(std::string_view sql) = 0;
  // Number of rows changed by the last INSERT/UPDATE/DELETE.
  virtual int64_t Changes() = 0;
};

// url "sqlite:///abs/path.db" or "sqlite://rel.db" or "sqlite::memory:".
Result<std::unique_ptr<Connection>> OpenSqlite(const std::string& url);
// url "postgresql://..." or "postgres://..." (libpq connection URI).
Result<std::unique_ptr<Connection>> OpenPostgres(const std::string& url);

}  // namespace patchgate::sql
