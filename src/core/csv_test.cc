#include "core/csv.h"

#include <gtest/gtest.h>

#include "core/text.h"

namespace patchgate {
namespace {

TEST(CsvCell, PlainTextIsWrittenAsItIs) {
  EXPECT_EQ(CsvCell("office/setup.exe"), "office/setup.exe");
  EXPECT_EQ(CsvCell("M\xC3\xBCller GmbH"), "M\xC3\xBCller GmbH");
  EXPECT_EQ(CsvCell(""), "");
  EXPECT_EQ(CsvCell("2026-11-23T18:00:00Z"), "2026-11-23T18:00:00Z");
  EXPECT_EQ(CsvCell("a=b"), "a=b");  // only the first character matters
}

TEST(CsvCell, FormulaCellsAreNeutralisedAsOwaspRecommends) {
  EXPECT_EQ(CsvCell("=HYPERLINK(\"http://evil.example\")"), "\"'=HYPERLINK(\"\"http://evil.example\"\")\"");
  EXPECT_EQ(CsvCell("=1+1"), "'=1+1");
  EXPECT_EQ(CsvCell("+1"), "'+1");
  EXPECT_EQ(CsvCell("-1"), "'-1");
  EXPECT_EQ(CsvCell("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(CsvCell("\tcmd"), "'\tcmd");
  EXPECT_EQ(CsvCell("\rcmd"), "\"'\rcmd\"");
  EXPECT_EQ(CsvCell("\xEF\xBC\x9D" "1+1"), "'\xEF\xBC\x9D" "1+1");  // full-width equals
  EXPECT_EQ(CsvCell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
}

TEST(CsvCell, SeparatorsQuotesAndNewlinesAreQuoted) {
  EXPECT_EQ(CsvCell("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvCell("a;b"), "\"a;b\"");
  EXPECT_EQ(CsvCell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvCell("two\nlines"), "\"two\nlines\"");
}

TEST(CsvCell, InvalidUtf8IsEscaped) {
  EXPECT_EQ(CsvCell("ua\xFF"), "ua\\xFF");
  EXPECT_EQ(CsvCell("\xE2\x82"), "\\xE2\\x82");
}

TEST(CsvWriter, RowsRoundTripThroughTheReader) {
  std::string out;
  CsvWriter w(&out);
  w.Row({"organisation", "user", "bytes"});
  w.Text("Contoso, Ltd").Text("=evil()").Number(uint64_t{42}).EndRow();
  w.Text("").Text("x\"y\nz").Number(int64_t{-3}).EndRow();
  EXPECT_EQ(out, "organisation,user,bytes\n\"Contoso, Ltd\",'=evil(),42\n,\"x\"\"y\nz\",-3\n");
  auto rows = ParseCsv(out);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[1], (std::vector<std::string>{"Contoso, Ltd", "'=evil()", "42"}));
  EXPECT_EQ((*rows)[2], (std::vector<std::string>{"", "x\"y\nz", "-3"}));
}

TEST(ParseCsv, RefusesMalformedInput) {
  EXPECT_EQ(ParseCsv("\"open").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(ParseCsv("a\"b").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(ParseCsv("\"a\"b").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(ParseCsv("a,b,c", 2).status().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(ParseCsv("a,\r\nb")->size(), 2u);
  EXPECT_EQ((*ParseCsv("a,"))[0].size(), 2u);
}

TEST(CsvCell, NoCellOfAnyOneOrTwoBytesIsAFormulaOrInvalid) {
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; b += 7) {
      std::string in{static_cast<char>(a), static_cast<char>(b)};
      std::string line = CsvCell(in) + "\n";
      auto rows = ParseCsv(line);
      ASSERT_TRUE(rows.ok()) << a << "," << b;
      ASSERT_EQ(rows->size(), 1u);
      ASSERT_EQ((*rows)[0].size(), 1u) << a << "," << b;
      const std::string& cell = (*rows)[0][0];
      EXPECT_FALSE(CsvCellLooksLikeFormula(cell)) << a << "," << b;
      EXPECT_TRUE(IsValidUtf8(cell));
    }
}

}  // namespace
}  // namespace patchgate
