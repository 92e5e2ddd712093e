#include "tuf/metadata.h"

#include <gtest/gtest.h>

namespace patchgate::tuf {
namespace {

Json SignedTargets(int64_t version) {
  return Json{{"_type", "targets"}, {"spec_version", "1.0.31"}, {"version", version},
              {"expires", "2030-01-01T00:00:00Z"}, {"targets", Json::object()},
              {"x-vendor-field", {{"kept", true}}}};
}

struct Keys {
  std::vector<PrivateKey> priv;
  std::map<std::string, PublicKey> pub;
  RoleKeys Role(int threshold) const {
    RoleKeys r;
    for (const auto& k : priv) r.keyids.push_back(k.KeyId());
    r.threshold = threshold;
    return r;
  }
};

Keys MakeKeys(int n) {
  Keys k;
  for (int i = 0; i < n; ++i) {
    auto p = PrivateKey::Generate(KeyType::kEd25519);
    k.pub.emplace(p->KeyId(), p->public_key());
    k.priv.push_back(std::move(*p));
  }
  return k;
}

TEST(Envelope, RoundTripKeepsUnknownFieldsAndVerifies) {
  Keys k = MakeKeys(1);
  auto env = Envelope::FromSigned(SignedTargets(3));
  ASSERT_TRUE(env->Sign(k.priv[0]).ok());
  auto text = env->Serialize();
  ASSERT_TRUE(text.ok());
  auto back = Envelope::Parse(*text, kMaxTargetsBytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->signed_json["x-vendor-field"]["kept"].get<bool>());
  EXPECT_TRUE(VerifyThreshold(*back, k.pub, k.Role(1), "targets").ok());
  // Pretty-printed (non-canonical) files verify too: signatures cover the canonical form.
  auto pretty = Json::parse(*text).dump(2);
  auto p = Envelope::Parse(pretty, kMaxTargetsBytes);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(VerifyThreshold(*p, k.pub, k.Role(1), "targets").ok());
}

TEST(VerifyThreshold, DuplicateSignaturesFromOneKeyCountOnce) {
  Keys k = MakeKeys(2);
  auto env = Envelope::FromSigned(SignedTargets(1));
  ASSERT_TRUE(env->Sign(k.priv[0]).ok());
  env->signatures.push_back(env->signatures[0]);  // the same key twice
  auto st = VerifyThreshold(*env, k.pub, k.Role(2), "targets");
  EXPECT_EQ(st.code(), ErrorCode::kUnmetThreshold);
  ASSERT_TRUE(env->Sign(k.priv[1]).ok());
  EXPECT_TRUE(VerifyThreshold(*env, k.pub, k.Role(2), "targets").ok());
}

TEST(VerifyThreshold, InvalidAndUnauthorisedSignaturesDoNotCount) {
  Keys k = MakeKeys(1);
  Keys other = MakeKeys(1);
  auto env = Envelope::FromSigned(SignedTargets(1));
  ASSERT_TRUE(env->Sign(other.priv[0]).ok());  // a key the role does not list
  EXPECT_EQ(VerifyThreshold(*env, k.pub, k.Role(1), "targets").code(), ErrorCode::kUnmetThreshold);
  env->signatures = {{k.priv[0].KeyId(), std::string(128, '0')}};  // garbage signature
  EXPECT_EQ(VerifyThreshold(*env, k.pub, k.Role(1), "targets").code(), ErrorCode::kUnmetThreshold);
  // A signature over different bytes (signed content changed after signing).
  ASSERT_TRUE(env->Sign(k.priv[0]).ok());
  env->signed_json["version"] = 2;
  auto tampered = Envelope::Parse(*env->Serialize(), kMaxTargetsBytes);
  ASSERT_TRUE(tampered.ok());
  EXPECT_TRUE(VerifyThreshold(*tampered, k.pub, k.Role(1), "targets").ok());  // signed_bytes unchanged
  std::string text = *env->Serialize();
  auto pos = text.find("\"version\":1");
  text.replace(pos, 11, "\"version\":2");
  auto edited = Envelope::Parse(text, kMaxTargetsBytes);
  ASSERT_TRUE(edited.ok());
  EXPECT_EQ(VerifyThreshold(*edited, k.pub, k.Role(1), "targets").code(), ErrorCode::kUnmetThreshold);
}

TEST(VerifyThreshold, SignatureOverNonCanonicalBytesIsNamed) {
  Keys k = MakeKeys(1);
  Json sj = SignedTargets(2);
  sj["targets"]["a/b.txt"] = {{"length", 3}, {"hashes", {{"sha256", std::string(64, 'a')}}}};
  // The signer signed the pretty-printed "signed" object it wrote, not the canonical form.
  std::string pretty_signed = sj.dump(2);
  std::string sig = *k.priv[0].SignHex(pretty_signed);
  std::string file = "{\n  \"signatures\": [{\"keyid\": \"" + k.priv[0].KeyId() + "\", \"sig\": \"" + sig +
                     "\"}],\n  \"signed\": " + pretty_signed + "\n}\n";
  auto env = Envelope::Parse(file, kMaxTargetsBytes);
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_EQ(env->raw_signed_bytes, pretty_signed);
  EXPECT_EQ(VerifyThreshold(*env, k.pub, k.Role(1), "targets").code(), ErrorCode::kNonCanonical);
  // A key that is not authorised for the role does not turn the failure into kNonCanonical.
  Keys other = MakeKeys(1);
  EXPECT_EQ(VerifyThreshold(*env, other.pub, other.Role(1), "targets").code(), ErrorCode::kUnmetThreshold);
  // The same bytes in a canonical file carry no raw copy; a wrong signature stays unmet.
  auto canon = Envelope::FromSigned(sj);
  canon->signatures.push_back({k.priv[0].KeyId(), sig});
  auto canon_file = Envelope::Parse(*canon->Serialize(), kMaxTargetsBytes);
  ASSERT_TRUE(canon_file.ok());
  EXPECT_TRUE(canon_file->raw_signed_bytes.empty());
  EXPECT_EQ(VerifyThreshold(*canon_file, k.pub, k.Role(1), "targets").code(), ErrorCode::kUnmetThreshold);
  // Members before and after "signed", escaped quotes and nested arrays are skipped correctly.
  std::string tricky = "{ \"x\" : [1, {\"s\\\"}\": \"]\"}], \"signed\" :" + pretty_signed +
                       " , \"signatures\": [{\"keyid\": \"" + k.priv[0].KeyId() + "\", \"sig\": \"" + sig + "\"}] }";
  auto t = Envelope::Parse(tricky, kMaxTargetsBytes);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->raw_signed_bytes, pretty_signed);
}

TEST(ParseCommon, ChecksTypeSpecVersionAndExpiry) {
  Json s = SignedTargets(1);
  EXPECT_EQ(ParseCommon(s, RoleType::kSnapshot).status().code(), ErrorCode::kWrongRole);
  s["spec_version"] = "2.0.0";
  EXPECT_EQ(ParseCommon(s, RoleType::kTargets).status().code(), ErrorCode::kBadSpecVersion);
  s = SignedTargets(1);
  auto c = ParseCommon(s, RoleType::kTargets);
  ASSERT_TRUE(c.ok());
  FakeClock before(1893455999), after(1893456000);
  EXPECT_TRUE(CheckNotExpired(*c, before, "targets").ok());
  EXPECT_EQ(CheckNotExpired(*c, after, "targets").code(), ErrorCode::kExpired);
  s["version"] = 0;
  EXPECT_EQ(ParseCommon(s, RoleType::kTargets).status().code(), ErrorCode::kCorrupt);
}

TEST(Envelope, RejectsMalformedAndOversized) {
  EXPECT_EQ(Envelope::Parse("{", 100).status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Envelope::Parse("[]", 100).status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Envelope::Parse(R"({"signatures":{},"signed":{}})", 100).status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Envelope::Parse(std::string(200, ' '), 100).status().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(Envelope::Parse(R"({"signatures":[],"signed":{"a":1.5}})", 100).status().code(), ErrorCode::kCorrupt);
}

TEST(Delegations, PathPatternsAndHashBins) {
  EXPECT_TRUE(PathPatternMatches("office/*", "office/setup.exe"));
  EXPECT_FALSE(PathPatternMatches("office/*", "office/sub/setup.exe"));
  EXPECT_FALSE(PathPatternMatches("office/*", "mail/setup.exe"));
  EXPECT_TRUE(PathPatternMatches("*/*.exe", "a/b.exe"));
  SuccinctRoles s;
  s.bit_length = 8;
  s.name_prefix = "bins";
  EXPECT_EQ(s.BinName(10), "bins-0a");
  EXPECT_EQ(s.NumBins(), 256);
  std::string bin = s.BinFor("office/setup.exe");
  EXPECT_EQ(bin.rfind("bins-", 0), 0u);
  EXPECT_EQ(bin.size(), 7u);
}

TEST(MetaFile, LengthAndHashChecks) {
  MetaFile m;
  m.version = 1;
  m.length = 3;
  m.hashes["sha256"] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_TRUE(CheckMetaFile(m, "abc", "x").ok());
  EXPECT_EQ(CheckMetaFile(m, "abcd", "x").code(), ErrorCode::kLengthMismatch);
  EXPECT_EQ(CheckMetaFile(m, "abd", "x").code(), ErrorCode::kHashMismatch);
}

// #9.4: a keyid listed twice among the signatures is refused as such when parsing.
TEST(Envelope, RepeatedKeyIdIsRefusedWithItsOwnError) {
  Keys k = MakeKeys(1);
  auto env = Envelope::FromSigned(SignedTargets(1));
  ASSERT_TRUE(env->Sign(k.priv[0]).ok());
  env->signatures.push_back(env->signatures[0]);
  auto parsed = Envelope::Parse(*env->Serialize(), kMaxTargetsBytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), ErrorCode::kDuplicateSignature);
}

// #9.3: a key with a PEM value is written as standard JSON; the signature is over the
// canonical form (raw line breaks), exactly as securesystemslib signs it.
TEST(Envelope, PemKeysAreWrittenAsStandardJson) {
  auto ecdsa = PrivateKey::Generate(KeyType::kEcdsaP256);
  ASSERT_TRUE(ecdsa.ok());
  Json s = SignedTargets(1);
  s["delegations"] = {{"keys", {{ecdsa->KeyId(), ecdsa->public_key().ToJson()}}}, {"roles", Json::array()}};
  auto env = Envelope::FromSigned(s);
  ASSERT_TRUE(env->Sign(*ecdsa).ok());
  EXPECT_NE(env->signed_bytes.find('\n'), std::string::npos);  // canonical: raw newline
  std::string file = *env->Serialize();
  EXPECT_EQ(file.find('\n'), std::string::npos);
  EXPECT_TRUE(Json::accept(file));
  auto back = Envelope::Parse(file, kMaxTargetsBytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->signed_bytes, env->signed_bytes);
  std::map<std::string, PublicKey> pub{{ecdsa->KeyId(), ecdsa->public_key()}};
  EXPECT_TRUE(VerifyThreshold(*back, pub, {{ecdsa->KeyId()}, 1}, "targets").ok());
}

// #12: the lazy reader agrees with the DOM and refuses what it cannot read exactly.
TEST(LazyTargets, MatchesTheDomAndVerifiesTheExactBytes) {
  Keys k = MakeKeys(1);
  Json s = SignedTargets(4);
  for (int i = 0; i < 300; ++i)
    s["targets"]["p/f" + std::to_string(i)] = {{"length", i}, {"hashes", {{"sha256", std::string(64, 'c')}}},
                                                {"custom", {{"n", i}}}};
  s["targets"]["p/quo\"te"] = {{"length", 1}, {"hashes", {{"sha256", std::string(64, 'd')}}}};
  s["delegations"] = {{"keys", Json::object()}, {"roles", Json::array()}};
  auto env = Envelope::FromSigned(s);
  ASSERT_TRUE(env->Sign(k.priv[0]).ok());
  std::string text = *env->Serialize();
  auto lazy = LazyTargets::Parse(text, kMaxTargetsBytes);
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  EXPECT_EQ(lazy->SignedBytes(text), env->signed_bytes);
  EXPECT_EQ(lazy->SignedBytes(text).data(), text.data() + text.find("\"signed\":") + 9);  // a view, not a copy
  EXPECT_TRUE(VerifyThreshold(lazy->SignedBytes(text), lazy->signatures, k.pub, k.Role(1), "targets").ok());
  EXPECT_EQ(lazy->parsed.common.version, 4);
  ASSERT_TRUE(lazy->parsed.delegations.has_value());
  auto dom = Targets::FromSigned(env->signed_json);
  for (const auto& [path, tf] : dom->targets) {
    auto hit = lazy->Find(text, path);
    ASSERT_TRUE(hit.ok() && hit->has_value()) << path;
    EXPECT_EQ((*hit)->length, tf.length);
    EXPECT_EQ((*hit)->hashes, tf.hashes);
    EXPECT_EQ((*hit)->custom, tf.custom);
  }
  EXPECT_FALSE(lazy->Find(text, "p/absent")->has_value());
  EXPECT_FALSE(lazy->Find(text, "a")->has_value());
  EXPECT_FALSE(lazy->Find(text, "zzz")->has_value());
  // A changed byte in a target entry breaks the signature.
  std::string tampered = text;
  tampered[tampered.find("\"length\":7}") + 9] = '8';
  auto t = LazyTargets::Parse(tampered, kMaxTargetsBytes);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(VerifyThreshold(t->SignedBytes(tampered), t->signatures, k.pub, k.Role(1), "targets").code(),
            ErrorCode::kUnmetThreshold);
  // Non-canonical text is left to the DOM path.
  EXPECT_EQ(LazyTargets::Parse(Json::parse(text).dump(1), kMaxTargetsBytes).status().code(), ErrorCode::kUnsupported);
  // Repeated signatures are refused here too.
  env->signatures.push_back(env->signatures[0]);
  EXPECT_EQ(LazyTargets::Parse(*env->Serialize(), kMaxTargetsBytes).status().code(), ErrorCode::kDuplicateSignature);
}

// A signature remembered as verified counts only for the same key material and signature:
// the cache spares a second pass over the same message, never a check.
TEST(VerifiedSignatures, RemembersOnlyWhatVerifiedForTheSameKeyBytes) {
  Keys k = MakeKeys(2);
  auto env = Envelope::FromSigned(SignedTargets(1));
  ASSERT_TRUE(env->Sign(k.priv[0]).ok());
  VerifiedSignatures cache;
  ASSERT_TRUE(VerifyThreshold(*env, k.pub, k.Role(1), "targets", &cache).ok());
  const Signature& sig = env->signatures[0];
  EXPECT_TRUE(cache.Contains(k.pub.at(sig.keyid), sig.sig));
  // The same keyid bound to other key material (another delegator) is checked anew: fails.
  std::map<std::string, PublicKey> other{{sig.keyid, k.pub.at(k.priv[1].KeyId())}};
  EXPECT_FALSE(cache.Contains(other.at(sig.keyid), sig.sig));
  EXPECT_EQ(VerifyThreshold(*env, other, {{sig.keyid}, 1}, "targets", &cache).code(), ErrorCode::kUnmetThreshold);
  // A signature that did not verify is not remembered.
  Envelope bad = *env;
  bad.signatures[0].sig[0] = bad.signatures[0].sig[0] == 'a' ? 'b' : 'a';
  VerifiedSignatures cache2;
  EXPECT_EQ(VerifyThreshold(bad, k.pub, k.Role(1), "targets", &cache2).code(), ErrorCode::kUnmetThreshold);
  EXPECT_FALSE(cache2.Contains(k.pub.at(sig.keyid), bad.signatures[0].sig));
  // Cached or not, the threshold is still counted over distinct authorised keys.
  EXPECT_EQ(VerifyThreshold(*env, k.pub, k.Role(2), "targets", &cache).code(), ErrorCode::kUnmetThreshold);
}

}  // namespace
}  // namespace patchgate::tuf
