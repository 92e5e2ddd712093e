// The route table, request by request: method and target in, route out.
#include "server/routes.h"

#include <gtest/gtest.h>

namespace patchgate::server {
namespace {

RouteMatch Match(const std::string& method, const std::string& target, bool extra = false) {
  ParseOutcome p = ParseRequestHead(method + " " + target + " HTTP/1.1\r\nHost: h\r\n\r\n", HttpLimits{});
  EXPECT_TRUE(p.head.has_value()) << method << " " << target;
  return p.head ? MatchRoute(*p.head, extra) : RouteMatch{};
}

TEST(RoutesTest, EachBuiltInRoute) {
  EXPECT_EQ(Match("GET", "/healthz").route, Route::kHealth);
  EXPECT_EQ(Match("HEAD", "/metrics").route, Route::kMetrics);
  auto m = Match("GET", "/metadata/timestamp.json");
  EXPECT_EQ(m.route, Route::kMetadata);
  EXPECT_EQ(m.rel, "timestamp.json");
  m = Match("GET", "/targets/office/abc.setup.exe");
  EXPECT_EQ(m.route, Route::kTarget);
  EXPECT_EQ(m.rel, "office/abc.setup.exe");
  m = Match("GET", "/ack/tok123");
  EXPECT_EQ(m.route, Route::kAckPage);
  EXPECT_EQ(m.rel, "tok123");
  EXPECT_TRUE(NeedsToken(Route::kMetadata));
  EXPECT_TRUE(NeedsToken(Route::kTarget));
  EXPECT_FALSE(NeedsToken(Route::kHealth));
  EXPECT_FALSE(NeedsToken(Route::kAckPage));
}

TEST(RoutesTest, OnlyTheAcknowledgementTakesAPost) {
  auto m = Match("POST", "/ack/tok123");
  EXPECT_EQ(m.route, Route::kAckConfirm);
  EXPECT_EQ(m.rel, "tok123");
  EXPECT_EQ(Match("POST", "/targets/office/abc.setup.exe").route, Route::kMethodNotAllowed);
  EXPECT_EQ(Match("PUT", "/ack/tok123").route, Route::kMethodNotAllowed);
  EXPECT_EQ(Match("DELETE", "/healthz").route, Route::kMethodNotAllowed);
}

TEST(RoutesTest, PathsThatCannotBeServed) {
  EXPECT_EQ(Match("GET", "/").route, Route::kNotFound);
  EXPECT_EQ(Match("GET", "/etc/passwd").route, Route::kNotFound);
  Route dots = Match("GET", "/targets/../metadata/root.json").route;
  EXPECT_TRUE(dots == Route::kBadPath || dots == Route::kNotFound) << static_cast<int>(dots);
  EXPECT_NE(Match("GET", "/targets/a/%2e%2e/b").route, Route::kTarget);
}

TEST(RoutesTest, ExtraRoutesAreAskedFirstOnlyUnderWellKnown) {
  auto m = Match("GET", "/.well-known/csaf/provider-metadata.json", /*extra=*/true);
  EXPECT_TRUE(m.extra_first);
  EXPECT_EQ(m.route, Route::kNotFound);  // what answers when they decline
  EXPECT_FALSE(Match("GET", "/.well-known/csaf/provider-metadata.json", /*extra=*/false).extra_first);
  EXPECT_FALSE(Match("GET", "/metadata/timestamp.json", /*extra=*/true).extra_first);
  EXPECT_FALSE(Match("POST", "/.well-known/x", /*extra=*/true).extra_first);  // 405 first
}

TEST(RoutesTest, AbsoluteFormForOurOwnHost) {
  ParseOutcome p = ParseRequestHead("GET http://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", HttpLimits{});
  ASSERT_TRUE(p.head.has_value());
  EXPECT_EQ(MatchRoute(*p.head, false).route, Route::kHealth);
}

}  // namespace
}  // namespace patchgate::server
