#include "server/auth_header.h"

#include <gtest/gtest.h>

#include <vector>

#include "crypto/hash.h"

namespace patchgate::server {
namespace {

TEST(AuthHeaderTest, Bearer) {
  auto c = ParseAuthorization("Bearer abc.DEF_123");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->token, "abc.DEF_123");
  EXPECT_EQ(c->basic_user, "");
  EXPECT_TRUE(ParseAuthorization("bearer x").ok());  // the scheme is case-insensitive
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearerx", "Token abc", "Digest a=b"})
    EXPECT_EQ(ParseAuthorization(bad).status().code(), ErrorCode::kUnauthorized) << bad;
  EXPECT_FALSE(ParseAuthorization("Bearer " + std::string(kMaxTokenBytes + 1, 'a')).ok());
  EXPECT_TRUE(ParseAuthorization("Bearer " + std::string(kMaxTokenBytes, 'a')).ok());
}

TEST(AuthHeaderTest, Basic) {
  auto c = ParseAuthorization("Basic " + Base64Encode("alice:tok:en"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->basic_user, "alice");
  EXPECT_EQ(c->token, "tok:en");  // only the first ':' separates
  EXPECT_FALSE(ParseAuthorization("Basic " + Base64Encode("alice")).ok());
  EXPECT_FALSE(ParseAuthorization("Basic " + Base64Encode(":token")).ok());
  EXPECT_FALSE(ParseAuthorization("Basic " + Base64Encode("alice:")).ok());
  EXPECT_FALSE(ParseAuthorization("Basic !!!!").ok());
}

TEST(AuthHeaderTest, Base64IsStrict) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)}) {
    auto d = Base64DecodeStrict(Base64Encode(s));
    ASSERT_TRUE(d.ok()) << s;
    EXPECT_EQ(*d, s);
  }
  for (const char* bad : {"Zg", "Zg=", "Zg===", "Z===", "Zh==", "Zm9=", "Zm9v\n", "Zm 9v", "Zm=v", "=Zm9",
                          "Zm9v-_==", "****"})
    EXPECT_FALSE(Base64DecodeStrict(bad).ok()) << bad;
}

}  // namespace
}  // namespace patchgate::server
