#include "core/text.h"

#include <gtest/gtest.h>

namespace patchgate {
namespace {

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("setup.exe"));
  EXPECT_TRUE(IsValidUtf8("Gr\xC3\xBC\xC3\x9F"));             // two-byte
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));                   // euro sign
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x94\x92 lock"));          // four-byte
  EXPECT_EQ(Utf8SequenceLength("a\xE2\x82\xAC", 1), 3u);
}

TEST(Utf8, RefusesMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("abc\xE2\x82"));       // truncated at the end
  EXPECT_EQ(Utf8SequenceLength("ab", 2), 0u);     // past the end
}

TEST(PlainText, RefusesControlBytesAndMalformedUtf8) {
  EXPECT_TRUE(IsPlainText("Gr\xC3\xBC\xC3\x9F setup.exe"));
  EXPECT_FALSE(IsPlainText(std::string("a\0b", 3)));
  EXPECT_FALSE(IsPlainText("a\tb"));
  EXPECT_FALSE(IsPlainText("a\x7f"));
  EXPECT_FALSE(IsPlainText("a\xFF"));
}

TEST(PercentDecode, DecodesPairsAndKeepsStrayPercents) {
  EXPECT_EQ(PercentDecodeLenient("%41b%2f"), "Ab/");
  EXPECT_EQ(PercentDecodeLenient("100%"), "100%");
  EXPECT_EQ(PercentDecodeLenient("%4"), "%4");
  EXPECT_EQ(PercentDecodeLenient("%zz%41"), "%zzA");
  EXPECT_EQ(PercentDecodeLenient("%41"), "A");
  EXPECT_EQ(*PercentDecode("%41b%2f"), "Ab/");
  EXPECT_EQ(PercentDecode("100%").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(PercentDecode("%4").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(PercentDecode("%zz").status().code(), ErrorCode::kInvalidArgument);
}

TEST(EscapeInvalidUtf8, EscapesEachInvalidByteAndKeepsValidText) {
  EXPECT_EQ(EscapeInvalidUtf8("Gr\xC3\xBC\xC3\x9F \xE2\x82\xAC"), "Gr\xC3\xBC\xC3\x9F \xE2\x82\xAC");
  EXPECT_EQ(EscapeInvalidUtf8("a\xFF" "b"), "a\\xFFb");
  EXPECT_EQ(EscapeInvalidUtf8("\xE2\x82"), "\\xE2\\x82");           // truncated euro sign
  EXPECT_EQ(EscapeInvalidUtf8("\xC0\xAF"), "\\xC0\\xAF");           // overlong
  EXPECT_EQ(EscapeInvalidUtf8("\xED\xA0\x80"), "\\xED\\xA0\\x80");  // surrogate
  EXPECT_EQ(EscapeInvalidUtf8(std::string("a\0b", 3)), "a\\x00b");  // PostgreSQL text cannot hold NUL
  EXPECT_EQ(EscapeInvalidUtf8("tab\tok"), "tab\tok");                // controls are valid UTF-8: kept
  for (int b = 0; b < 256; ++b) {
    std::string s = "x" + std::string(1, static_cast<char>(b)) + "\xE2\x82";
    EXPECT_TRUE(IsValidUtf8(EscapeInvalidUtf8(s))) << b;
  }
}

TEST(IsStorableText, AgreesWithItsDefinitionAtEveryOffset) {
  // Valid UTF-8 without NUL, whatever the position of the bad byte relative to 8-byte words.
  const std::string base = "abcdefghijklmnopqrstuvwxyz0123456789";
  EXPECT_TRUE(IsStorableText(base));
  EXPECT_TRUE(IsStorableText(""));
  EXPECT_TRUE(IsStorableText(base + "\xE2\x82\xAC" + base));
  for (size_t pos = 0; pos <= base.size(); ++pos) {
    for (std::string bad : {std::string(1, '\0'), std::string("\xFF"), std::string("\xE2\x82"), std::string("\x80")}) {
      std::string s = base;
      s.insert(pos, bad);
      EXPECT_FALSE(IsStorableText(s)) << pos;
      EXPECT_EQ(IsStorableText(s), s.find('\0') == std::string::npos && IsValidUtf8(s)) << pos;
    }
    std::string ok = base;
    ok.insert(pos, "\xC3\xA9");
    EXPECT_TRUE(IsStorableText(ok)) << pos;
  }
}

TEST(TruncateUtf8, NeverCutsThroughACharacter) {
  const std::string euro = "\xE2\x82\xAC";
  std::string s = "ab" + euro + "c";
  EXPECT_EQ(TruncateUtf8(s, 100), s);
  EXPECT_EQ(TruncateUtf8(s, 5), "ab" + euro);
  EXPECT_EQ(TruncateUtf8(s, 4), "ab");
  EXPECT_EQ(TruncateUtf8(s, 3), "ab");
  EXPECT_EQ(TruncateUtf8(s, 2), "ab");
  EXPECT_EQ(TruncateUtf8(s, 0), "");
  std::string lock = "\xF0\x9F\x94\x92";
  std::string many;
  for (int i = 0; i < 100; ++i) many += lock;
  for (size_t cap = 0; cap < 20; ++cap) {
    auto t = TruncateUtf8(many, cap);
    EXPECT_TRUE(IsValidUtf8(t)) << cap;
    EXPECT_EQ(t.size(), cap / 4 * 4) << cap;
  }
}

TEST(StorableText, EscapesThenCapsAtACharacterBoundary) {
  EXPECT_EQ(StorableText("ab\xFF", 100), "ab\\xFF");
  EXPECT_EQ(StorableText("ab\xFF", 4), "ab\\x");  // the escape is ASCII: any cut is a boundary
  EXPECT_EQ(StorableText(std::string(255, 'a') + "\xE2\x82\xAC", 256), std::string(255, 'a'));
  EXPECT_TRUE(IsValidUtf8(StorableText(std::string(255, 'a') + "\xE2\x82\xAC\xFF", 256)));
}

TEST(EscapeForTerminal, NoEscapeSequenceOrReorderingReachesTheTerminal) {
  EXPECT_EQ(EscapeForTerminal("Example Ltd \xC3\xBC"), "Example Ltd \xC3\xBC");
  EXPECT_EQ(EscapeForTerminal("\x1b[2Jx"), "\\x1B[2Jx");
  EXPECT_EQ(EscapeForTerminal("a\r\nb\x7f"), "a\\x0D\\x0Ab\\x7F");
  EXPECT_EQ(EscapeForTerminal("\xC2\x9B" "31m"), "\\u{009B}31m");  // C1 CSI
  EXPECT_EQ(EscapeForTerminal("x\xE2\x80\xAEy"), "x\\u{202E}y");   // right-to-left override
  EXPECT_EQ(EscapeForTerminal("\xFF"), "\\xFF");
}

}  // namespace
}  // namespace patchgate
