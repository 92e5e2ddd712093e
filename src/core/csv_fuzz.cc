// libFuzzer target: the CSV writer. Any bytes, split into cells at 0x1F, must come back from
// the strict reader as the same number of cells, each valid UTF-8, none a spreadsheet formula,
// each equal to its input (escaped) with at most the neutralising quote in front. The reader
// itself is fuzzed on the raw input too.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/csv.h"
#include "core/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)ParseCsv(in, 10'000);
  std::vector<std::string_view> cells;
  for (size_t start = 0;;) {
    size_t end = in.find('\x1f', start);
    cells.push_back(in.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  std::string out;
  CsvWriter w(&out);
  for (auto c : cells) w.Text(c);
  w.EndRow();
  auto rows = ParseCsv(out, 1'000'000);
  if (!rows.ok() || rows->size() != 1 || (*rows)[0].size() != cells.size()) std::abort();
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::string& got = (*rows)[0][i];
    if (!IsValidUtf8(got) || CsvCellLooksLikeFormula(got)) std::abort();
    std::string want = EscapeInvalidUtf8(cells[i]);
    if (got != want && got != "'" + want) std::abort();
  }
  return 0;
}
