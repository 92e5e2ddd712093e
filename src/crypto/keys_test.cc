#include "crypto/keys.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "crypto/hash.h"

namespace patchgate {
namespace {

// RFC 8032 section 7.1, TEST 1 (empty message).
TEST(PublicKey, VerifiesRfc8032Ed25519Vector) {
  Json kj = {{"keytype", "ed25519"}, {"scheme", "ed25519"},
             {"keyval", {{"public", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}}}};
  auto k = PublicKey::FromJson(kj);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  const std::string sig =
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
  EXPECT_TRUE(k->Verify("", sig).ok());
  EXPECT_EQ(k->Verify("x", sig).code(), ErrorCode::kBadSignature);
  EXPECT_EQ(k->Verify("", "zz").code(), ErrorCode::kBadSignature);
  EXPECT_EQ(k->KeyId(), Sha256Hex(*cjson::Encode(kj)));
}

class KeyTypes : public ::testing::TestWithParam<KeyType> {};

TEST_P(KeyTypes, SignVerifyAndTamper) {
  auto k = PrivateKey::Generate(GetParam());
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  auto sig = k->SignHex("signed bytes");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(k->public_key().Verify("signed bytes", *sig).ok());
  EXPECT_EQ(k->public_key().Verify("signed bytez", *sig).code(), ErrorCode::kBadSignature);
  // A public key survives a JSON round trip with the same keyid.
  auto again = PublicKey::FromJson(k->public_key().ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->KeyId(), k->KeyId());
  EXPECT_TRUE(again->Verify("signed bytes", *sig).ok());
}

TEST_P(KeyTypes, EncryptedSerialisation) {
  auto k = PrivateKey::Generate(GetParam());
  ASSERT_TRUE(k.ok());
  auto blob = k->Serialize("correct horse", false);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(blob->find("BEGIN PRIVATE KEY"), std::string::npos);  // encrypted PEM only
  auto back = PrivateKey::Deserialize(*blob, "correct horse", false);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->KeyId(), k->KeyId());
  auto sig = back->SignHex("m");
  EXPECT_TRUE(k->public_key().Verify("m", *sig).ok());
  EXPECT_EQ(PrivateKey::Deserialize(*blob, "wrong", false).status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(PrivateKey::Deserialize(*blob, "", false).status().code(), ErrorCode::kUnauthorized);
}

INSTANTIATE_TEST_SUITE_P(All, KeyTypes,
                         ::testing::Values(KeyType::kEd25519, KeyType::kEcdsaP256, KeyType::kRsaPss));

TEST(PrivateKey, PlaintextOnlyWhenAllowed) {
  auto k = PrivateKey::Generate(KeyType::kEd25519);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->Serialize("", false).status().code(), ErrorCode::kInvalidArgument);
  auto blob = k->Serialize("", true);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(PrivateKey::Deserialize(*blob, "", false).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(PrivateKey::Deserialize(*blob, "", true).ok());
  EXPECT_EQ(PrivateKey::Deserialize("{}", "", true).status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(PrivateKey::Deserialize("not json", "", true).status().code(), ErrorCode::kCorrupt);
}

TEST(PublicKey, RejectsMalformed) {
  EXPECT_EQ(PublicKey::FromJson(Json::array()).status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(PublicKey::FromJson({{"keytype", "ed25519"}}).status().code(), ErrorCode::kCorrupt);
  auto odd = PublicKey::FromJson({{"keytype", "ed25519"}, {"scheme", "ed25519"}, {"keyval", {{"public", "abcd"}}}});
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->Verify("m", "00").code(), ErrorCode::kBadSignature);
  auto unk = PublicKey::FromJson({{"keytype", "dsa"}, {"scheme", "dsa"}, {"keyval", {{"public", "x"}}}});
  ASSERT_TRUE(unk.ok());
  EXPECT_EQ(unk->Verify("m", "00").code(), ErrorCode::kBadSignature);
}

// The message of a key OpenSSL cannot read (an ecdsa key whose public value is no PEM).
std::string UnreadableKeyMessage() {
  auto k = PublicKey::FromJson({{"keytype", "ecdsa"}, {"scheme", "ecdsa-sha2-nistp256"}, {"keyval", {{"public", "x"}}}});
  if (!k.ok()) return "FromJson failed: " + k.status().ToString();
  return k->Verify("m", "00").ToString();
}

// In a fresh copy of this program whose OpenSSL was started without its error texts (as
// patchgate-client starts it): prints the message.
TEST(PublicKey, DISABLED_UnreadableKeyWithoutErrorTexts) {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, nullptr);
  std::printf("message=%s\n", UnreadableKeyMessage().c_str());
}

TEST(PublicKey, AnOpensslErrorWithoutItsTextsSaysHowToReadIt) {
  std::string cmd = "/proc/" + std::to_string(::getpid()) +
                    "/exe --gtest_also_run_disabled_tests --gtest_filter=PublicKey.DISABLED_UnreadableKeyWithoutErrorTexts 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  ::pclose(f);
  auto at = out.find("message=");
  ASSERT_NE(at, std::string::npos) << out;
  std::string bare = out.substr(at, out.find('\n', at) - at);
  std::printf("without the texts: %s\n", bare.c_str());
  EXPECT_NE(bare.find("unusable ecdsa public key"), std::string::npos) << bare;
  EXPECT_NE(bare.find("(`openssl errstr "), std::string::npos) << bare;

  // With the texts loaded (this test process: the first error loads them) the text is there
  // and no hint.
  std::string full = UnreadableKeyMessage();
  std::printf("with the texts: %s\n", full.c_str());
  EXPECT_NE(full.find("routines"), std::string::npos) << full;
  EXPECT_EQ(full.find("openssl errstr"), std::string::npos) << full;
}

TEST(ParseKeyType, Names) {
  EXPECT_EQ(*ParseKeyType("rsa"), KeyType::kRsaPss);
  EXPECT_EQ(ParseKeyType("dsa").status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace patchgate
