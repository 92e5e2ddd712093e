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

}  // namespace
}  // namespace patchgate
