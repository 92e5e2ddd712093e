#include "json/canonical_scan.h"

#include <gtest/gtest.h>

#include "json/canonical_json.h"

namespace patchgate {
namespace {

TEST(IsCanonicalFast, AgreesWithParseAndEncode) {
  const char* cases[] = {
      R"({"a":1,"b":[true,false,null],"c":{"d":"e"}})", R"({"b":1,"a":2})", R"({"a":1,"a":1})",
      R"({"a": 1})", "[1.5]", "[-0]", "[007]", "[0]", "[-12]", "\"a\\\"b\\\\c\"", "\"a\\nb\"",
      "\"\xc3\xa9\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "[18446744073709551615]", "[18446744073709551616]",
      "[-9223372036854775808]", "[-9223372036854775809]", "", "{}", "[]", "[1,]", "{\"a\":1}x",
      "tru", "\"\x01\"", "[1e5]", "{\"\":0,\"a\":1}", "{\"a\\\"\":1,\"a\\\\\":2}",
  };
  for (const char* c : cases) EXPECT_EQ(cjson::IsCanonicalFast(c), cjson::IsCanonical(c)) << c;
  std::string deep = std::string(64, '[') + std::string(64, ']');
  EXPECT_EQ(cjson::IsCanonicalFast(deep), cjson::IsCanonical(deep));
  deep = "[" + deep + "]";
  EXPECT_EQ(cjson::IsCanonicalFast(deep), cjson::IsCanonical(deep));
}

TEST(MemberSlice, FindsRawValues) {
  std::string doc = R"({"a":{"x":[1,"]}"]},"b":"s\"t","c":3})";
  ASSERT_TRUE(cjson::IsCanonicalFast(doc));
  EXPECT_EQ(*cjson::MemberSlice(doc, "a"), R"({"x":[1,"]}"]})");
  EXPECT_EQ(*cjson::MemberSlice(doc, "b"), R"("s\"t")");
  EXPECT_EQ(*cjson::MemberSlice(doc, "c"), "3");
  EXPECT_EQ(cjson::MemberSlice(doc, "bb").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cjson::MemberSlice(doc, "z").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cjson::MemberSlice("[1]", "a").status().code(), ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace patchgate
