#include <libpq-fe.h>

#include <cstdlib>
#include <vector>

#include "store/sql.h"

namespace patchgate::sql {

namespace {

// Rewrites '?' placeholders to $1, $2, ... (our SQL has no '?' inside literals).
std::string Numbered(std::string_view sql) {
  std::string out;
  int n = 0;
  for (char c : sql) {
    if (c == '?') out += "$" + std::to_string(++n);
    else out.push_back(c);
  }
  return out;
}

class PgConnection : public Connection {
 public:
  explicit PgConnection(std::string url) : url_(std::move(url)) {}
  ~PgConnection() override {
    if (conn_) PQfinish(conn_);
  }
  std::string engine() const override { return "postgresql"; }

  Status Connect() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return Status::OK();
    if (conn_) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    // Session settings travel in the startup packet (no extra round trip): no NOTICE
    // chatter, no parallel query and no JIT. The store's queries are index look-ups; a
    // parallel plan only adds worker start-up (tens of ms) and makes plans depend on the
    // server's max_parallel_workers settings. JIT (on by default since PostgreSQL 12, where
    // the server has its LLVM package) compiles any plan whose estimated cost passes
    // jit_above_cost (100,000): a scope window of a few days over a 10-million-row trail
    // does, and then loads LLVM into the server process and compiles for ~40 ms of JIT time
    // and ~150 ms more of execution on the project's VM (EXPLAIN ANALYZE, a 30-day window
    // with jit_above_cost lowered), to save microseconds on an index-only scan. A URL that
    // sets its own options keeps them, and gets the same settings with one SET instead.
    const bool own_options = url_.find("options=") != std::string::npos;
    static constexpr char kSession[] = "-c client_min_messages=warning -c max_parallel_workers_per_gather=0 -c jit=off";
    // GSSAPI encryption is off unless asked for (gssencmode in the URL, or PGGSSENCMODE).
    // libpq's default, "prefer", looks for Kerberos credentials before every connection
    // (loading the GSS mechanisms, reading the Kerberos configuration and credential
    // cache) and, where a ticket exists, tries a GSS-encrypted session first: a round trip
    // a server without GSS refuses. TLS is untouched: sslmode stays libpq's default
    // ("prefer"), or what the URL or PGSSLMODE says, so a server that requires TLS gets it.
    // A value given here comes before the URL, which overrides it.
    const bool own_gss = url_.find("gssencmode=") != std::string::npos || std::getenv("PGGSSENCMODE") != nullptr;
    std::vector<const char*> keys, values;
    if (!own_gss) {
      keys.push_back("gssencmode");
      values.push_back("disable");
    }
    keys.push_back("dbname");
    values.push_back(url_.c_str());
    if (!own_options) {
      keys.push_back("options");
      values.push_back(kSession);
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectdbParams(keys.data(), values.data(), 1);
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string m = PQerrorMessage(conn_);
      PQfinish(conn_);
      conn_ = nullptr;
      while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
      return Unavailable("cannot reach PostgreSQL: " + m);
    }
    if (own_options)
      PQclear(PQexec(conn_, "SET client_min_messages TO warning; SET max_parallel_workers_per_gather TO 0; SET jit TO off"));
    return Status::OK();
  }

  Result<Rows> Query(std::string_view sql, const std::vector<Param>& params) override {
    PG_ASSIGN_OR_RETURN(PGresult * r, Execute(sql, params));
    return Collect(r);
  }

  Status QueryEach(std::string_view sql, const std::vector<Param>& params,
                   const std::function<void(const RowView&)>& fn) override {
    PG_ASSIGN_OR_RETURN(PGresult * r, Execute(sql, params));
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return Collect(r).status();
    int n = PQntuples(r), m = PQnfields(r);
    RowView row;
    for (int i = 0; i < n; ++i) {
      row.assign(static_cast<size_t>(m), std::nullopt);
      for (int c = 0; c < m; ++c)
        if (!PQgetisnull(r, i, c))
          row[static_cast<size_t>(c)] = std::string_view(PQgetvalue(r, i, c), static_cast<size_t>(PQgetlength(r, i, c)));
      fn(row);
    }
    PQclear(r);
    return Status::OK();
  }

  Status ExecScript(std::string_view sql) override {
    PG_RETURN_IF_ERROR(Connect());
    PGresult* r = PQexec(conn_, std::string(sql).c_str());
    auto rows = Collect(r);
    return rows.status();
  }

  int64_t Changes() override { return changes_; }

  Result<int64_t> InsertNew(std::string_view table, const std::vector<std::string>& columns,
                            std::string_view unique_column, const std::vector<std::vector<Param>>& rows) override {
    PG_RETURN_IF_ERROR(Connect());
    std::string cols;
    for (size_t i = 0; i < columns.size(); ++i) cols += (i ? ", " : "") + columns[i];
    // A temporary table lives as long as the session; creating it inside the caller's
    // transaction means a rollback also drops it, so it is (re)created on every call.
    const std::string stage = "patchgate_stage_" + std::string(table);
    PG_RETURN_IF_ERROR(ExecScript("CREATE TEMP TABLE IF NOT EXISTS " + stage + " AS SELECT " + cols + " FROM " +
                                  std::string(table) + " WITH NO DATA; TRUNCATE " + stage));
    PG_RETURN_IF_ERROR(CopyIn(stage, cols, columns.size(), rows));
    PG_RETURN_IF_ERROR(Query("INSERT INTO " + std::string(table) + " (" + cols + ") SELECT " + cols + " FROM " + stage +
                                 " ON CONFLICT (" + std::string(unique_column) + ") DO NOTHING",
                             {})
                           .status());
    return changes_;
  }

 private:
  // COPY ... FROM STDIN in text format: tab-separated, \N for NULL, backslash escapes.
  Status CopyIn(const std::string& table, const std::string& cols, size_t width, const std::vector<std::vector<Param>>& rows) {
    PGresult* r = PQexec(conn_, ("COPY " + table + " (" + cols + ") FROM STDIN").c_str());
    if (PQresultStatus(r) != PGRES_COPY_IN) return Collect(r).status();
    PQclear(r);
    std::string buf, problem;
    auto send = [&]() {
      if (!buf.empty() && PQputCopyData(conn_, buf.data(), static_cast<int>(buf.size())) != 1)
        problem = PQerrorMessage(conn_);
      buf.clear();
    };
    for (const auto& row : rows) {
      if (row.size() != width) {
        problem = "bulk insert row has the wrong number of values";
        break;
      }
      for (size_t c = 0; c < row.size(); ++c) {
        if (c) buf.push_back('\t');
        const Param& p = row[c];
        if (std::holds_alternative<std::nullptr_t>(p)) buf += "\\N";
        else if (auto* v = std::get_if<int64_t>(&p)) buf += std::to_string(*v);
        else
          for (char ch : TextOf(p)) {
            switch (ch) {
              case '\\': buf += "\\\\"; break;
              case '\n': buf += "\\n"; break;
              case '\r': buf += "\\r"; break;
              case '\t': buf += "\\t"; break;
              case '\0': problem = "a value holds a NUL byte, which PostgreSQL text cannot store"; break;
              default: buf.push_back(ch);
            }
          }
      }
      buf.push_back('\n');
      if (buf.size() >= (1 << 20)) send();
      if (!problem.empty()) break;
    }
    if (problem.empty()) send();
    if (PQputCopyEnd(conn_, problem.empty() ? nullptr : problem.c_str()) != 1 && problem.empty())
      problem = PQerrorMessage(conn_);
    Status st = Status::OK();
    while (PGresult* res = PQgetResult(conn_)) {
      auto collected = Collect(res);
      if (!collected.ok() && st.ok()) st = collected.status();
    }
    if (!problem.empty()) return InvalidArgument("postgresql COPY: " + problem);
    return st;
  }

  // Runs one statement with its parameters bound as text; the caller owns the result.
  Result<PGresult*> Execute(std::string_view sql, const std::vector<Param>& params) {
    PG_RETURN_IF_ERROR(Connect());
    std::string q = Numbered(sql);
    std::vector<std::string> storage(params.size());
    std::vector<const char*> values(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<std::nullptr_t>(params[i])) {
        values[i] = nullptr;
        continue;
      }
      if (auto* v = std::get_if<int64_t>(&params[i])) storage[i] = std::to_string(*v);
      else storage[i] = std::string(TextOf(params[i]));
      values[i] = storage[i].c_str();
    }
    return PQexecParams(conn_, q.c_str(), static_cast<int>(params.size()), nullptr, values.data(), nullptr,
                        nullptr, 0);
  }

  Result<Rows> Collect(PGresult* r) {
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      std::string state = PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "";
      std::string msg = PQresultErrorMessage(r);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      PQclear(r);
      if (PQstatus(conn_) != CONNECTION_OK) {
        PQfinish(conn_);
        conn_ = nullptr;
        return Unavailable("PostgreSQL connection lost: " + msg);
      }
      if (state == "23505") return AlreadyExists("postgresql: " + msg);
      if (state.rfind("23", 0) == 0) return InvalidArgument("postgresql: " + msg);
      if (state.rfind("08", 0) == 0 || state.rfind("57", 0) == 0 || state.rfind("53", 0) == 0)
        return Unavailable("postgresql: " + msg);
      return Internal("postgresql: " + msg);
    }
    const char* tuples = PQcmdTuples(r);
    changes_ = (tuples && *tuples) ? std::stoll(tuples) : 0;
    Rows rows;
    int n = PQntuples(r), m = PQnfields(r);
    rows.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      Row row(static_cast<size_t>(m));
      for (int c = 0; c < m; ++c)
        if (!PQgetisnull(r, i, c)) row[static_cast<size_t>(c)] = std::string(PQgetvalue(r, i, c), PQgetlength(r, i, c));
      rows.push_back(std::move(row));
    }
    PQclear(r);
    return rows;
  }

  std::string url_;
  PGconn* conn_ = nullptr;
  int64_t changes_ = 0;
};

}  // namespace

Result<std::unique_ptr<Connection>> OpenPostgres(const std::string& url) {
  auto c = std::make_unique<PgConnection>(url);
  PG_RETURN_IF_ERROR(c->Connect());
  return std::unique_ptr<Connection>(std::move(c));
}

}  // namespace patchgate::sql
