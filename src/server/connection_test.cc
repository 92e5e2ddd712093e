#include "server/connection.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace patchgate::server {
namespace {

TEST(PlainConn, NonBlockingStepsAndTheSendTimeout) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  int small = 4096;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  auto c = MakePlainConn(sv[0]);
  char buf[64];
  size_t got = 0;
  EXPECT_EQ(c->TryRead(buf, sizeof buf, &got), Io::kWouldBlock);
  EXPECT_FALSE(c->WantsWrite());
  ASSERT_EQ(::write(sv[1], "hello", 5), 5);
  EXPECT_EQ(c->TryRead(buf, sizeof buf, &got), Io::kOk);
  EXPECT_EQ(std::string(buf, got), "hello");
  // Head and body in one call; the peer reads nothing, so the socket fills up.
  std::string head = "HEAD", body(1 << 20, 'b');
  size_t wrote = 0;
  EXPECT_EQ(c->TryWrite(head, body, false, &wrote), Io::kWouldBlock);
  EXPECT_TRUE(c->WantsWrite());
  EXPECT_GT(wrote, head.size());
  EXPECT_LT(wrote, head.size() + body.size());
  // The blocking helper gives up after the send timeout, counting what was taken.
  c->set_send_timeout_ms(300);
  uint64_t taken = 0;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c->Write(body, false, &taken));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
  EXPECT_LT(taken, body.size());
  ::close(sv[1]);
  EXPECT_EQ(c->TryWrite("x", {}, false, &wrote), Io::kError);  // peer gone
}

}  // namespace
}  // namespace patchgate::server
