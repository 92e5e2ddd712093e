#include "core/json_output.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/text.h"

namespace patchgate {
namespace {

TEST(JsonText, ValidDocumentsAreDumpedAsNlohmannDoes) {
  nlohmann::json j = {{"name", "M\xC3\xBCller"}, {"n", 3}, {"list", {"a", "b"}}};
  EXPECT_EQ(JsonText(j), j.dump(2));
  EXPECT_EQ(JsonText(j, -1), j.dump());
}

TEST(JsonText, InvalidUtf8AnywhereIsEscapedNotFatal) {
  nlohmann::json j = nlohmann::json::array();
  j.push_back({{"user_agent", "evil\xFF\xFE"}, {"ok", "fine"}});
  j.push_back({{"k\xC0", {"nested \xE2\x82", 1}}});
  std::string out = JsonText(j, -1);  // nlohmann's dump() would throw type_error 316 here
  ASSERT_TRUE(IsValidUtf8(out));
  auto back = nlohmann::json::parse(out);
  EXPECT_EQ(back[0]["user_agent"], "evil\\xFF\\xFE");
  EXPECT_EQ(back[0]["ok"], "fine");
  EXPECT_EQ(back[1]["k\\xC0"][0], "nested \\xE2\\x82");
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what JsonText protects from
}

TEST(JsonText, OrderedDocumentsKeepTheirOrder) {
  nlohmann::ordered_json j;
  j["z"] = "last\xFF";
  j["a"] = "first";
  std::string out = JsonText(j, -1);
  EXPECT_EQ(out, "{\"z\":\"last\\\\xFF\",\"a\":\"first\"}");
}

}  // namespace
}  // namespace patchgate
