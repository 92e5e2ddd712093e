#include "server/status_pages.h"

#include <gtest/gtest.h>

namespace patchgate::server {
namespace {

TEST(StatusPages, HealthzSaysOkAndHeadHasNoBody) {
  Metrics m;
  PendingSend get, head;
  EXPECT_TRUE(HealthPage(&get, &m, true, false));
  EXPECT_EQ(get.head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(get.head.substr(get.head.size() - 7), "\r\n\r\nok\n");
  EXPECT_FALSE(HealthPage(&head, &m, false, true));  // not kept alive: the connection ends
  EXPECT_EQ(head.head.substr(head.head.size() - 4), "\r\n\r\n");
  EXPECT_NE(head.head.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(m.requests_2xx.load(), 2u);
}

TEST(StatusPages, MetricsArePrometheusTextWithTheExtraLinesAfter) {
  Metrics m;
  m.verify_loads = 3;
  m.connections_open = 7;
  PendingSend out;
  EXPECT_TRUE(MetricsPage(&out, &m, [] { return std::string("patchgate_nodes{state=\"ok\"} 2\n"); }, true, false));
  EXPECT_NE(out.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  auto body = out.head.substr(out.head.find("\r\n\r\n") + 4);
  EXPECT_NE(body.find("patchgate_verify_loads_total 3\n"), std::string::npos) << body;
  EXPECT_NE(body.find("patchgate_connections_open 7\n"), std::string::npos);
  EXPECT_TRUE(body.ends_with("\npatchgate_nodes{state=\"ok\"} 2\n")) << body;
  PendingSend plain;
  MetricsPage(&plain, &m, nullptr, true, false);  // no extra: the counters alone
  EXPECT_EQ(plain.head.find("patchgate_nodes"), std::string::npos);
}

}  // namespace
}  // namespace patchgate::server
