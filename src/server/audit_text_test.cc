#include "server/audit_text.h"

#include <gtest/gtest.h>

#include "core/text.h"

namespace patchgate::server {
namespace {

TEST(AuditTextTest, ValidTextIsKept) {
  EXPECT_EQ(CaptureText("curl/8.5.0", 256), "curl/8.5.0");
  EXPECT_EQ(CaptureText("Zoë 😀 client", 256), "Zoë 😀 client");
  EXPECT_EQ(CaptureText("", 256), "");
}

TEST(AuditTextTest, InvalidBytesAreEscapedUnambiguously) {
  EXPECT_EQ(CaptureText("a\xff" "b", 256), "a\\xFFb");
  EXPECT_EQ(CaptureText("a\\xFFb", 256), "a\\\\xFFb");  // a literal backslash stays distinct
  EXPECT_EQ(CaptureText("\xc3", 256), "\\xC3");           // a multi-byte character cut short
  EXPECT_EQ(CaptureText("\xc0\xaf", 256), "\\xC0\\xAF");  // overlong '/'
  EXPECT_EQ(CaptureText("\xed\xa0\x80", 256), "\\xED\\xA0\\x80");  // a surrogate
  EXPECT_EQ(CaptureText("tab\there\x1b[31m", 256), "tab\\x09here\\x1B[31m");
  EXPECT_EQ(CaptureText("\xc2\x85", 256), "\\xC2\\x85");  // C1 control
}

TEST(AuditTextTest, CutsAtCharacterBoundariesWithinTheCap) {
  EXPECT_EQ(CaptureText("abcde", 5), "abcde");  // fits exactly: no marker
  EXPECT_EQ(CaptureText("abcdef", 5), "ab...");
  std::string euros;
  for (int i = 0; i < 100; ++i) euros += "\xe2\x82\xac";  // 300 bytes of '€'
  std::string c = CaptureText(euros, 256);
  EXPECT_LE(c.size(), 256u);
  EXPECT_TRUE(IsValidUtf8(c));
  EXPECT_EQ(c.substr(c.size() - 3), "...");
  EXPECT_EQ((c.size() - 3) % 3, 0u);  // whole characters only
  std::string escapes(100, '\xff');
  c = CaptureText(escapes, 256);
  EXPECT_LE(c.size(), 256u);
  EXPECT_EQ((c.size() - 3) % 4, 0u);  // whole escapes only
}

TEST(AuditTextTest, EveryByteSequenceBecomesValidUtf8) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t cap : {0u, 1u, 3u, 4u, 7u, 64u, 256u, 4096u})
    for (size_t start = 0; start < all.size(); start += 37) {
      std::string c = CaptureText(std::string_view(all).substr(start), cap);
      EXPECT_TRUE(IsValidUtf8(c));
      EXPECT_LE(c.size(), cap);
    }
}

}  // namespace
}  // namespace patchgate::server
