// The one CSV writer (and a strict reader for tests and tools) for every CSV that patchgate
// prints: downloads, incident scope, notification call lists.
//
// Every cell written is safe to open in a spreadsheet (OWASP "CSV injection"): a text cell
// whose first character is = + - @ TAB or CR (or the full-width ＝ ＋ － ＠, which some
// spreadsheet locales read as formula signs) is prefixed with a single quote, so it is shown
// as text and never evaluated. A cell is quoted (RFC 4180, "" for a quote) when it holds
// , ; " CR or LF. Text is valid UTF-8 (bytes that are not are written "\xHH", as the store
// stores them). Rows end in "\n". Numbers are written as they are.
// Pure functions; a CsvWriter is not thread-safe (one per output).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace patchgate {

// One cell of untrusted text, escaped, neutralised and quoted as above.
std::string CsvCell(std::string_view text);

// Whether a spreadsheet could read `cell` (unquoted) as a formula: the test CsvCell neutralises.
bool CsvCellLooksLikeFormula(std::string_view cell);

class CsvWriter {
 public:
  // Appends to *out, which must outlive the writer.
  explicit CsvWriter(std::string* out) : out_(out) {}
  CsvWriter& Text(std::string_view text);  // untrusted text: CsvCell
  CsvWriter& Number(int64_t v);
  CsvWriter& Number(uint64_t v);
  CsvWriter& Row(std::initializer_list<std::string_view> texts);  // Text() each, then EndRow()
  void EndRow();

 private:
  void Separator();
  std::string* out_;
  bool first_ = true;
};

// Strict RFC 4180 reader (rows end in "\n" or "\r\n"; quoted cells may hold separators,
// quotes and newlines). kCorrupt for a stray quote or an unterminated quoted cell. A cap of
// `max_cells` cells in all (kTooLarge past it).
Result<std::vector<std::vector<std::string>>> ParseCsv(std::string_view text, size_t max_cells = 1'000'000);

}  // namespace patchgate
