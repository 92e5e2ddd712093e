#include "server/http_response.h"

#include <gtest/gtest.h>

namespace patchgate::server {
namespace {

TEST(ResponseHead, StatusLineHeadersLengthAndConnection) {
  std::string h = ResponseHead(206, {{"ETag", "\"x\""}}, 10, true);
  EXPECT_EQ(h.rfind("HTTP/1.1 206 Partial Content\r\nServer: patchgate\r\nDate: ", 0), 0u);
  EXPECT_NE(h.find("\r\nETag: \"x\"\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n"), std::string::npos);
  EXPECT_NE(ResponseHead(503, {}, 0, false).find("Connection: close\r\n\r\n"), std::string::npos);
  EXPECT_STREQ(ReasonPhrase(304), "Not Modified");
}

TEST(HttpDate, IsAnImfFixdate) {
  const std::string& d = HttpDate();  // e.g. "Wed, 02 Dec 2026 00:20:10 GMT"
  ASSERT_EQ(d.size(), 29u);
  EXPECT_EQ(d.substr(3, 2), ", ");
  EXPECT_EQ(d.substr(25), " GMT");
}

}  // namespace
}  // namespace patchgate::server
