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

}  // namespace
}  // namespace patchgate
