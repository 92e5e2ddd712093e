#include "crypto/hash.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

namespace patchgate {
namespace {

TEST(Hash, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha512Hex(""),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
  auto h = Hasher::Create("sha256");
  ASSERT_TRUE(h.ok());
  h->Update("a");
  h->Update("bc");
  EXPECT_EQ(h->FinalHex(), Sha256Hex("abc"));
  EXPECT_EQ(Hasher::Create("md5").status().code(), ErrorCode::kUnsupported);
}

TEST(Hash, File) {
  char tmpl[] = "/tmp/pghashXXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::string data(3 << 20, 'x');
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
  auto d = Sha256File(tmpl);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->sha256, Sha256Hex(data));
  EXPECT_EQ(d->length, data.size());
  unlink(tmpl);
  EXPECT_EQ(Sha256File(tmpl).status().code(), ErrorCode::kNotFound);
}

TEST(Hex, RoundTripAndErrors) {
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*HexDecode("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(HexDecode("abc").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(HexDecode("zz").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
}

TEST(Hmac, Rfc4231Case2) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(ConstantTimeEquals, Compares) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_EQ(RandomBytes(16).size(), 16u);
  EXPECT_NE(RandomBytes(16), RandomBytes(16));
}

}  // namespace
}  // namespace patchgate
