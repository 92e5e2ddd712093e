#include "server/range.h"

#include <gtest/gtest.h>

namespace patchgate::server {
namespace {

using K = ByteRange::Kind;

TEST(RangeTest, SingleRanges) {
  auto r = ParseRange("bytes=10-19", 100);
  EXPECT_EQ(r.kind, K::kRange);
  EXPECT_EQ(r.first, 10u);
  EXPECT_EQ(r.last, 19u);
  r = ParseRange("bytes=90-", 100);
  EXPECT_EQ(r.kind, K::kRange);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  r = ParseRange("bytes=95-99999999999999999", 100);  // clamped
  EXPECT_EQ(r.last, 99u);
  r = ParseRange("bytes=0-0", 1);
  EXPECT_EQ(r.kind, K::kRange);
  EXPECT_EQ(r.last, 0u);
}

TEST(RangeTest, Suffixes) {
  auto r = ParseRange("bytes=-5", 100);
  EXPECT_EQ(r.kind, K::kRange);
  EXPECT_EQ(r.first, 95u);
  EXPECT_EQ(r.last, 99u);
  r = ParseRange("bytes=-500", 100);  // longer than the file: all of it
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  EXPECT_EQ(ParseRange("bytes=-0", 100).kind, K::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-1", 0).kind, K::kUnsatisfiable);
}

TEST(RangeTest, UnsatisfiableAndIgnored) {
  EXPECT_EQ(ParseRange("bytes=100-", 100).kind, K::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=0-", 0).kind, K::kUnsatisfiable);
  for (const char* v : {"", "bytes=", "bytes=-", "bytes=5-1", "bytes=0-1,5-6", "lines=1-2", "bytes=a-b", "bytes= 1-2",
                        "bytes=99999999999999999999-", "bytes=1-2-3", "BYTES=1-2", "bytes=+1-2", "bytes=1--2"})
    EXPECT_EQ(ParseRange(v, 100).kind, K::kWhole) << v;
}

TEST(RangeTest, NeverOutsideTheFile) {
  for (uint64_t len : {1u, 2u, 7u, 1000u})
    for (const char* v : {"bytes=0-", "bytes=-1", "bytes=3-5", "bytes=0-18446744073709551615", "bytes=-18446744073709551615"}) {
      auto r = ParseRange(v, len);
      if (r.kind != K::kRange) continue;
      EXPECT_LE(r.first, r.last) << v;
      EXPECT_LT(r.last, len) << v;
    }
}

}  // namespace
}  // namespace patchgate::server
