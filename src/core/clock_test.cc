#include "core/clock.h"

#include <gtest/gtest.h>

namespace patchgate {
namespace {

TEST(Rfc3339, FormatAndParseRoundTrip) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1893456000), "2030-01-01T00:00:00Z");
  EXPECT_EQ(*ParseRfc3339("2030-01-01T00:00:00Z"), 1893456000);
  EXPECT_EQ(*ParseRfc3339("2030-01-01T01:00:00+01:00"), 1893456000);
  EXPECT_EQ(*ParseRfc3339Micros("1970-01-01T00:00:01.5Z"), 1'500'000);
  EXPECT_EQ(FormatRfc3339Micros(1'500'000), "1970-01-01T00:00:01.500000Z");
}

TEST(Rfc3339, RejectsGarbage) {
  for (const char* bad : {"", "2030-01-01", "2030-13-01T00:00:00Z", "2030-01-01T00:00:00",
                          "2030-01-01T00:00:00Zjunk", "2030-01-01T00:00:00+1:00"}) {
    auto r = ParseRfc3339(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(FakeClock, Advances) {
  FakeClock c(100);
  c.Advance(50);
  EXPECT_EQ(c.NowUnix(), 150);
}

}  // namespace
}  // namespace patchgate
