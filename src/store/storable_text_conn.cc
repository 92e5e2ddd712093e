// The Connection decorator that escapes every text parameter that is not storable.
#include <charconv>
#include <deque>

#include "core/text.h"
#include "store/sql.h"

namespace patchgate::sql {
namespace {

bool NeedsEscape(const Param& p) {
  if (std::holds_alternative<std::nullptr_t>(p) || std::holds_alternative<int64_t>(p)) return false;
  return !IsStorableText(TextOf(p));
}

// Replaces each text parameter that is not storable by its escaped copy, kept alive in `keep`.
void EscapeRow(std::vector<Param>& row, std::deque<std::string>& keep) {
  for (Param& p : row)
    if (NeedsEscape(p)) p = TextRef{keep.emplace_back(EscapeInvalidUtf8(TextOf(p)))};
}

// Calls `run` with `params` as they are when all are storable (no copy), else with an
// escaped copy.
template <typename Run>
auto WithEscaped(const std::vector<Param>& params, Run run) {
  bool clean = true;
  for (const Param& p : params) clean = clean && !NeedsEscape(p);
  if (clean) return run(params);
  std::deque<std::string> keep;
  std::vector<Param> escaped = params;
  EscapeRow(escaped, keep);
  return run(escaped);
}

class StorableTextConnection final : public Connection {
 public:
  explicit StorableTextConnection(std::unique_ptr<Connection> inner) : inner_(std::move(inner)) {}

  std::string engine() const override { return inner_->engine(); }

  Result<Rows> Query(std::string_view sql, const std::vector<Param>& params) override {
    return WithEscaped(params, [&](const std::vector<Param>& p) { return inner_->Query(sql, p); });
  }

  Status QueryEach(std::string_view sql, const std::vector<Param>& params,
                   const std::function<void(const RowView&)>& fn) override {
    return WithEscaped(params, [&](const std::vector<Param>& p) { return inner_->QueryEach(sql, p, fn); });
  }

  Status QueryCursor(std::string_view sql, const std::vector<Param>& params,
                     const std::function<void(const RowCursor&)>& fn) override {
    return WithEscaped(params, [&](const std::vector<Param>& p) { return inner_->QueryCursor(sql, p, fn); });
  }

  Status ExecScript(std::string_view sql) override { return inner_->ExecScript(sql); }
  int64_t Changes() override { return inner_->Changes(); }
  bool SetDeferredSync(bool on) override { return inner_->SetDeferredSync(on); }
  Status SyncCommitted() override { return inner_->SyncCommitted(); }

  Result<int64_t> InsertNew(std::string_view table, const std::vector<std::string>& columns,
                            std::string_view unique_column, const std::vector<std::vector<Param>>& rows) override {
    size_t first_bad = rows.size();
    for (size_t r = 0; r < rows.size() && first_bad == rows.size(); ++r)
      for (const Param& p : rows[r])
        if (NeedsEscape(p)) {
          first_bad = r;
          break;
        }
    if (first_bad == rows.size()) return inner_->InsertNew(table, columns, unique_column, rows);
    // Rare: copy the rows (TextRef copies are views) and escape the few bad values.
    std::deque<std::string> keep;
    std::vector<std::vector<Param>> escaped = rows;
    for (size_t r = first_bad; r < escaped.size(); ++r) EscapeRow(escaped[r], keep);
    return inner_->InsertNew(table, columns, unique_column, escaped);
  }

 private:
  std::unique_ptr<Connection> inner_;
};

}  // namespace

namespace {

// QueryEach's row as a RowCursor: integers parsed from their text.
class RowViewCursor final : public RowCursor {
 public:
  explicit RowViewCursor(const RowView& row) : row_(row) {}
  int64_t Int(int column) const override {
    int64_t v = 0;
    if (const auto& t = row_[static_cast<size_t>(column)]) std::from_chars(t->data(), t->data() + t->size(), v);
    return v;
  }
  std::optional<std::string_view> Text(int column) const override { return row_[static_cast<size_t>(column)]; }

 private:
  const RowView& row_;
};

}  // namespace

Status Connection::QueryCursor(std::string_view sql, const std::vector<Param>& params,
                               const std::function<void(const RowCursor&)>& fn) {
  return QueryEach(sql, params, [&fn](const RowView& row) { fn(RowViewCursor(row)); });
}

std::unique_ptr<Connection> WithStorableText(std::unique_ptr<Connection> conn) {
  return std::make_unique<StorableTextConnection>(std::move(conn));
}

}  // namespace patchgate::sql
