#include "json/canonical_json.h"

#include <gtest/gtest.h>

namespace patchgate {
namespace {

std::string Enc(std::string_view text) {
  auto j = cjson::Parse(text);
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  auto e = cjson::Encode(*j);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? *e : "";
}

TEST(CanonicalJson, SortsKeysAndDropsWhitespace) {
  EXPECT_EQ(Enc(R"({ "b" : 1, "a" : [ true, false, null ], "c": {"z": -5, "y": "s"} })"),
            R"({"a":[true,false,null],"b":1,"c":{"y":"s","z":-5}})");
}

// Vectors matching securesystemslib.formats.encode_canonical: only '"' and '\' are
// escaped; control characters and UTF-8 pass through as raw bytes.
TEST(CanonicalJson, EscapesOnlyQuoteAndBackslash) {
  Json j = Json::object();
  j["k"] = std::string("a\"b\\c\nd\te\x01 \xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(*cjson::Encode(j), std::string("{\"k\":\"a\\\"b\\\\c\nd\te\x01 \xc3\xa9 \xe2\x82\xac\"}"));
  EXPECT_EQ(Enc(R"(["\u00e9\n/"])"), std::string("[\"\xc3\xa9\n/\"]"));
}

TEST(CanonicalJson, SortsByUtf8Bytes) {
  Json j = Json::object();
  j["\xc3\xa9"] = 1;  // U+00E9 sorts after ASCII
  j["z"] = 2;
  j["A"] = 3;
  EXPECT_EQ(*cjson::Encode(j), "{\"A\":3,\"z\":2,\"\xc3\xa9\":1}");
}

TEST(CanonicalJson, RefusesFloats) {
  auto j = cjson::Parse(R"({"x": 1.5})");
  ASSERT_TRUE(j.ok());
  auto e = cjson::Encode(*j);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kInvalidArgument);
}

TEST(CanonicalJson, LargeIntegers) {
  EXPECT_EQ(Enc("[18446744073709551615,-9223372036854775808,0]"),
            "[18446744073709551615,-9223372036854775808,0]");
}

TEST(CanonicalJson, RejectsMalformedDuplicateAndDeep) {
  for (const char* bad : {"{", "{\"a\":1,}", "[1 2]", "{\"a\":1,\"a\":2}", "\"\xff\"", ""}) {
    auto r = cjson::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << bad;
    }
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_EQ(cjson::Parse(deep).status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(cjson::Parse("[1]", {.max_bytes = 2}).status().code(), ErrorCode::kTooLarge);
}

TEST(CanonicalJson, IsCanonical) {
  EXPECT_TRUE(cjson::IsCanonical(R"({"a":1,"b":[2]})"));
  EXPECT_FALSE(cjson::IsCanonical(R"({"b":1,"a":2})"));
  EXPECT_FALSE(cjson::IsCanonical(R"({"a": 1})"));
}

// #9.3: the encoder refuses what JSON cannot carry instead of writing it.
TEST(CanonicalJson, RefusesInvalidUtf8InValuesAndKeys) {
  for (std::string bad : {std::string("a\xff"), std::string("\xc3"), std::string("\xed\xa0\x80"),
                          std::string("\xc0\xaf")}) {
    Json v = Json::object();
    v["k"] = bad;
    EXPECT_EQ(cjson::Encode(v).status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(cjson::EncodeStandard(v).status().code(), ErrorCode::kInvalidArgument);
    Json k = Json::object();
    k[bad] = 1;
    EXPECT_EQ(cjson::Encode(k).status().code(), ErrorCode::kInvalidArgument);
    Json arr = Json::array({1, Json::array({bad})});
    EXPECT_FALSE(cjson::Encode(arr).ok());
  }
}

// The on-disk form is standard JSON whose parse canonicalises to the signed bytes.
TEST(CanonicalJson, StandardFormEscapesControlCharacters) {
  Json j = Json::object();
  j["pem"] = std::string("-----BEGIN PUBLIC KEY-----\nAB\tC\x01\x1f\r\n\"q\"\\");
  j["b"] = "plain \xc3\xa9";
  auto std_form = cjson::EncodeStandard(j);
  ASSERT_TRUE(std_form.ok());
  EXPECT_EQ(*std_form, "{\"b\":\"plain \xc3\xa9\",\"pem\":\"-----BEGIN PUBLIC KEY-----\\nAB\\tC\\u0001\\u001f\\r\\n"
                       "\\\"q\\\"\\\\\"}");
  for (char c : *std_form) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  auto back = cjson::Parse(*std_form);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*cjson::Encode(*back), *cjson::Encode(j));
  Json plain = {{"a", "x"}, {"n", 3}};
  EXPECT_EQ(*cjson::EncodeStandard(plain), *cjson::Encode(plain));
}

}  // namespace
}  // namespace patchgate
