#include "core/csv.h"

#include "core/text.h"

namespace patchgate {

bool CsvCellLooksLikeFormula(std::string_view cell) {
  if (cell.empty()) return false;
  switch (cell[0]) {
    case '=': case '+': case '-': case '@': case '\t': case '\r': return true;
    default: break;
  }
  // Full-width equals, plus, hyphen-minus and commercial at (U+FF1D, U+FF0B, U+FF0D, U+FF20).
  for (std::string_view wide : {"\xEF\xBC\x9D", "\xEF\xBC\x8B", "\xEF\xBC\x8D", "\xEF\xBC\xA0"})
    if (cell.substr(0, wide.size()) == wide) return true;
  return false;
}

std::string CsvCell(std::string_view text) {
  std::string value = EscapeInvalidUtf8(text);
  if (CsvCellLooksLikeFormula(value)) value.insert(0, 1, '\'');
  if (value.find_first_of(",;\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  out.reserve(value.size() + 2);
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

void CsvWriter::Separator() {
  if (!first_) out_->push_back(',');
  first_ = false;
}

CsvWriter& CsvWriter::Text(std::string_view text) {
  Separator();
  *out_ += CsvCell(text);
  return *this;
}

CsvWriter& CsvWriter::Number(int64_t v) {
  Separator();
  *out_ += std::to_string(v);
  return *this;
}

CsvWriter& CsvWriter::Number(uint64_t v) {
  Separator();
  *out_ += std::to_string(v);
  return *this;
}

CsvWriter& CsvWriter::Row(std::initializer_list<std::string_view> texts) {
  for (std::string_view t : texts) Text(t);
  EndRow();
  return *this;
}

void CsvWriter::EndRow() {
  out_->push_back('\n');
  first_ = true;
}

Result<std::vector<std::vector<std::string>>> ParseCsv(std::string_view text, size_t max_cells) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string cell;
  size_t cells = 0;
  size_t i = 0;
  auto end_cell = [&]() -> Status {
    if (++cells > max_cells) return TooLarge("CSV has more than " + std::to_string(max_cells) + " cells");
    row.push_back(std::move(cell));
    cell.clear();
    return Status::OK();
  };
  while (i < text.size()) {
    // At the start of a cell.
    if (text[i] == '"') {
      ++i;
      for (;;) {
        if (i >= text.size()) return Corrupt("CSV: a quoted cell is not closed");
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            cell += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        cell += text[i++];
      }
      if (i < text.size() && text[i] != ',' && text[i] != '\n' && text.substr(i, 2) != "\r\n")
        return Corrupt("CSV: text after the closing quote of a cell (byte " + std::to_string(i) + ")");
    } else {
      while (i < text.size() && text[i] != ',' && text[i] != '\n' && text.substr(i, 2) != "\r\n") {
        if (text[i] == '"') return Corrupt("CSV: a quote inside an unquoted cell (byte " + std::to_string(i) + ")");
        cell += text[i++];
      }
    }
    PG_RETURN_IF_ERROR(end_cell());
    if (i >= text.size()) break;
    if (text[i] == ',') {
      ++i;
      if (i == text.size()) PG_RETURN_IF_ERROR(end_cell());  // trailing empty cell
      continue;
    }
    i += text[i] == '\r' ? 2 : 1;  // end of row
    rows.push_back(std::move(row));
    row.clear();
  }
  if (!row.empty()) rows.push_back(std::move(row));
  return rows;
}

}  // namespace patchgate
