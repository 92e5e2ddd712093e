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

TEST(ScanCanonical, RecordsTheTopAndOneNestedObjectsMembersInOnePass) {
  std::string doc = R"({"a":[{"x":1}],"s\"q":{"k":{"deep":1},"l":"v"},"signed":{"_type":"t","t":{"p":{"q":2}},"v":3},"z":{"y":0}})";
  cjson::ScannedMembers m;
  ASSERT_TRUE(cjson::ScanCanonical(doc, "signed", &m));
  ASSERT_EQ(m.top.size(), 4u);
  EXPECT_EQ(m.top[0].key, "a");
  EXPECT_EQ(m.top[0].value, R"([{"x":1}])");
  EXPECT_EQ(m.top[1].key, R"(s\"q)");  // as written
  EXPECT_EQ(m.top[2].key, "signed");
  EXPECT_EQ(m.top[2].value, *cjson::MemberSlice(doc, "signed"));
  EXPECT_EQ(m.top[3].value, R"({"y":0})");
  ASSERT_EQ(m.nested.size(), 3u);  // only the members of "signed", not of deeper or other objects
  EXPECT_EQ(m.nested[0].key, "_type");
  EXPECT_EQ(m.nested[0].value, R"("t")");
  EXPECT_EQ(m.nested[1].key, "t");
  EXPECT_EQ(m.nested[1].value, R"({"p":{"q":2}})");
  EXPECT_EQ(m.nested[2].value, "3");
  // Not canonical: false, and nothing recorded.
  cjson::ScannedMembers none;
  EXPECT_FALSE(cjson::ScanCanonical(R"({"signed":{"b":1,"a":2}})", "signed", &none));
  EXPECT_TRUE(none.top.empty() && none.nested.empty());
  EXPECT_FALSE(cjson::ScanCanonical("", "signed", &none));
  // A nested key whose value is not an object records no nested members.
  ASSERT_TRUE(cjson::ScanCanonical(R"({"signed":[{"a":1}]})", "signed", &none));
  EXPECT_EQ(none.top.size(), 1u);
  EXPECT_TRUE(none.nested.empty());
}

}  // namespace
}  // namespace patchgate

// The string fast paths (sixteen, then eight bytes at a time) stop at every byte the
// byte-wise code must see, wherever it falls in a block: the verdict is the one of
// parse+encode for each special byte at each offset.
namespace patchgate::cjson {
namespace {
TEST(IsCanonicalFast, StringFastPathsStopAtEverySpecialByteAtEveryOffset) {
  const char* specials[] = {"\"", "\\\"", "\\\\", "\\n", "\\u0001", "\x01", "\x1f", "\x7f", "\xc3\xa9",
                            "\xff", "\xe2\x82", "\xf0\x9f\x98\x80", "\x80"};
  int checked = 0;
  for (size_t pos = 0; pos < 40; ++pos) {
    for (const char* sp : specials) {
      std::string text = "\"" + std::string(pos, 'a') + sp + std::string(21, 'b') + "\"";
      ASSERT_EQ(IsCanonicalFast(text), IsCanonical(text)) << pos << " " << sp;
      std::string doc = "{\"signed\":{\"k\":" + text + "}}";
      ScannedMembers m;
      ASSERT_EQ(ScanCanonical(doc, "signed", &m), IsCanonical(doc)) << pos << " " << sp;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 40 * 13);
  // Sanity: a long plain string is canonical, one with a raw control byte late in it is not.
  EXPECT_TRUE(IsCanonicalFast("\"" + std::string(100, 'x') + "\""));
  EXPECT_FALSE(IsCanonicalFast("\"" + std::string(37, 'x') + "\x02" + "\""));
}
}  // namespace
}  // namespace patchgate::cjson
