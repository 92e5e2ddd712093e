#include "mirror/policy.h"

#include <gtest/gtest.h>

namespace patchgate::mirror {
namespace {

constexpr int64_t kNow = int64_t{1'000'000} * 1'000'000;

RegisteredNode Node(NodeHeartbeat h) {
  RegisteredNode n;
  n.name = "m2";
  n.role = "mirror";
  h.at = kNow - 5'000'000;
  n.heartbeat = h;
  return n;
}

TEST(Compliance, NoHeartbeatIsStale) {
  RegisteredNode n;
  n.name = "m1";
  EXPECT_EQ(Evaluate(ChainPolicy{}, n, kNow).state, "stale");
  NodeHeartbeat h;
  auto old = Node(h);
  old.heartbeat->at = kNow - int64_t{300} * 1'000'000;
  EXPECT_EQ(Evaluate(ChainPolicy{}, old, kNow).state, "stale");
}

TEST(Compliance, EachRuleIsAReason) {
  ChainPolicy p;
  p.require_scanner = true;
  p.require_watch = true;
  p.max_lag_seconds = 600;
  NodeHeartbeat h;
  h.lag_seconds = 900;
  auto c = Evaluate(p, Node(h), kNow);
  EXPECT_EQ(c.state, "non-compliant");
  ASSERT_EQ(c.reasons.size(), 3u);
  EXPECT_EQ(c.reasons[0], "no scanner");
  EXPECT_EQ(c.reasons[1], "integrity watch not running");
  EXPECT_EQ(c.reasons[2], "behind the origin for 15m (max 10m)");
  h.scanner_loaded = true;
  h.signature_age_seconds = 2 * 86400;
  h.watch_alive = true;
  h.lag_seconds = 0;
  p.max_signature_age_seconds = 86400;
  c = Evaluate(p, Node(h), kNow);
  ASSERT_EQ(c.reasons.size(), 1u);
  EXPECT_EQ(c.reasons[0], "signatures 2d old (max 1d)");
  h.signature_age_seconds = 3600;
  EXPECT_EQ(Evaluate(p, Node(h), kNow).state, "compliant");
}

TEST(Compliance, QuarantineWinsOverReasons) {
  NodeHeartbeat h;
  h.quarantine_pending = 2;
  EXPECT_EQ(Evaluate(ChainPolicy{}, Node(h), kNow).state, "quarantined");
}

TEST(Compliance, RevokedNodeIsNonCompliant) {
  NodeHeartbeat h;
  auto n = Node(h);
  n.revoked = true;
  auto c = Evaluate(ChainPolicy{}, n, kNow);
  EXPECT_EQ(c.state, "non-compliant");
  EXPECT_EQ(c.reasons[0], "node token revoked");
}

TEST(Duration, ParsesAndFormats) {
  EXPECT_EQ(ParseDuration("24h").value_or(0), 86400);
  EXPECT_EQ(ParseDuration("10m").value_or(0), 600);
  EXPECT_EQ(ParseDuration("45").value_or(0), 45);
  EXPECT_FALSE(ParseDuration("10x").ok());
  EXPECT_FALSE(ParseDuration("h").ok());
  EXPECT_EQ(FormatDuration(7200), "2h");
  EXPECT_EQ(FormatDuration(61), "61s");
}

}  // namespace
}  // namespace patchgate::mirror
