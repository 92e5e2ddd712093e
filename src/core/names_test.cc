#include "core/names.h"

#include <gtest/gtest.h>

#include <string>

namespace patchgate {
namespace {

TEST(ProductName, AcceptsSafePathSegments) {
  for (const char* ok : {"office", "Office-2024", "a", "7zip", "tool_x.y", "a.b-c_d", "x..y", "A1"})
    EXPECT_TRUE(ValidateProductName(ok).ok()) << ok;
  EXPECT_TRUE(ValidateProductName(std::string(64, 'p')).ok());
}

TEST(ProductName, RefusesWhatCannotBeASinglePlainSegment) {
  for (const char* bad : {"", ".", "..", ".hidden", "-rf", "_x", "office.", "a/b", "a\\b", "a%2fb", "a b", "a:b",
                          "caf\xC3\xA9", "a\xFF", "a\nb", "a?b", "a#b", "a+b", "a~b"})
    EXPECT_EQ(ValidateProductName(bad).code(), ErrorCode::kInvalidArgument) << bad;
  EXPECT_FALSE(ValidateProductName(std::string(65, 'p')).ok());
  EXPECT_FALSE(ValidateProductName(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(IsValidProductName("office."));
  EXPECT_TRUE(IsValidProductName("office"));
}

TEST(ProductName, MessageSaysWhatToDoAndCarriesNoRawBytes) {
  Status st = ValidateProductName("a\x1b[31mred");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().find('\x1b'), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("\\x1B"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("starts with a letter or digit"), std::string::npos) << st.message();
  EXPECT_NE(ValidateProductName("office.").message().find("ends in '.'"), std::string::npos);
}

TEST(DisplayName, AcceptsOrdinaryNamesInAnyScript) {
  for (const char* ok : {"Example Ltd", "M\xC3\xBCller & S\xC3\xB6hne GmbH", "\xE6\x9D\xB1\xE4\xBA\xAC", "a",
                         "O'Brien (IT)", "\xF0\x9F\x94\x92 vault", "Acme: EMEA"})
    EXPECT_TRUE(ValidateOrganisationName(ok).ok()) << ok;
  for (const char* ok : {"alice", "alice.smith@example.com", "j\xC3\xBCrgen", "\xE6\x9D\xB1", "u-1_2"})
    EXPECT_TRUE(ValidateUserName(ok).ok()) << ok;
}

TEST(DisplayName, UserNamesAreOneWordWithoutColon) {
  for (const char* bad : {"alice smith", "alice:x", "a\xC2\xA0" "b", "a\xE3\x80\x80" "b"})
    EXPECT_EQ(ValidateUserName(bad).code(), ErrorCode::kInvalidArgument) << bad;
  EXPECT_TRUE(ValidateOrganisationName("alice smith").ok());
}

TEST(DisplayName, RefusesControlsInvalidUtf8AndEdgeSpaces) {
  const std::string bad[] = {"",
                             "a\xFF",
                             "cut \xE2\x82",             // cut through a euro sign
                             "\xC0\xAF",                 // overlong
                             std::string("a\0b", 3),     // NUL
                             "a\tb",
                             "a\nb",
                             "\x1b[2J wipe",             // ESC (C0)
                             "a\x7f",                    // DEL
                             "a\xC2\x9B" "31m",          // C1 CSI
                             "a\xC2\x85",                // C1 NEL
                             "evil\xE2\x80\xAEgpj.exe",  // right-to-left override
                             " leading",
                             "trailing ",
                             "\xC2\xA0nbsp",
                             "ideographic\xE3\x80\x80"};
  for (const auto& s : bad) {
    EXPECT_FALSE(ValidateOrganisationName(s).ok()) << s;
    EXPECT_FALSE(ValidateUserName(s).ok()) << s;
    // Messages never carry the raw control or invalid byte.
    std::string m = ValidateOrganisationName(s).message();
    for (unsigned char c : m) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << m;
  }
  EXPECT_EQ(ValidateOrganisationName(" x").code(), ErrorCode::kInvalidArgument);
}

TEST(DisplayName, NamedByteCaps) {
  EXPECT_TRUE(ValidateOrganisationName(std::string(kMaxOrganisationNameBytes, 'o')).ok());
  EXPECT_EQ(ValidateOrganisationName(std::string(kMaxOrganisationNameBytes + 1, 'o')).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(ValidateUserName(std::string(kMaxUserNameBytes, 'u')).ok());
  EXPECT_EQ(ValidateUserName(std::string(kMaxUserNameBytes + 1, 'u')).code(), ErrorCode::kInvalidArgument);
  Status st = ValidateUserName(std::string(kMaxUserNameBytes + 1, 'u'));
  EXPECT_NE(st.message().find("limit is 100 bytes"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace patchgate
