#include "advisory/cvss.h"

#include <gtest/gtest.h>

namespace patchgate::advisory {
namespace {

TEST(Cvss31, ScoresMatchTheSpecificationCalculator) {
  struct Case {
    const char* vector;
    double score;
    const char* severity;
  } cases[] = {
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "CRITICAL"},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "MEDIUM"},
      {"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, "HIGH"},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, "CRITICAL"},
      {"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "NONE"},
      {"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6, "LOW"},
      {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9, "CRITICAL"},
  };
  for (const auto& c : cases) {
    auto r = ParseCvss31(c.vector);
    ASSERT_TRUE(r.ok()) << c.vector << ": " << r.status().ToString();
    EXPECT_DOUBLE_EQ(r->base_score, c.score) << c.vector;
    EXPECT_EQ(r->severity, c.severity) << c.vector;
  }
}

TEST(Cvss31, NormalisesMetricOrder) {
  auto r = ParseCvss31("CVSS:3.1/A:H/I:H/C:H/S:U/UI:N/PR:N/AC:L/AV:N");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->vector, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H");
}

TEST(Cvss31, RefusesMalformedVectors) {
  for (const char* bad : {"", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
                          "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                          "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:F", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",
                          "CVSS:3.1/AV:NN/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"})
    EXPECT_EQ(ParseCvss31(bad).status().code(), ErrorCode::kInvalidArgument) << bad;
  EXPECT_FALSE(ParseCvss31(std::string(300, 'A')).ok());
}

}  // namespace
}  // namespace patchgate::advisory
