#include "server/connection.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

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

// A connected TCP pair on 127.0.0.1: [0] the server's side (non-blocking), [1] the client's.
bool TcpPair(int fds[2]) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0 ||
      ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al) != 0)
    return false;
  fds[1] = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fds[1], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  fds[0] = ::accept4(ls, nullptr, nullptr, SOCK_NONBLOCK);
  ::close(ls);
  return fds[0] >= 0;
}

int SendBuffer(int fd) {
  int v = 0;
  socklen_t l = sizeof v;
  ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l);
  return v;
}

int ProcInt(const char* path, int field) {
  int v[3] = {0, 0, 0};
  if (FILE* f = std::fopen(path, "r")) {
    if (std::fscanf(f, "%d %d %d", &v[0], &v[1], &v[2]) < field + 1) v[field] = 0;
    std::fclose(f);
  }
  return v[field];
}

// The send buffer a long body asks for: only past what autotuning gives, never less than
// the socket has (a system whose wmem_max is below autotuning's maximum keeps autotuning),
// and only once autotuning has grown it to its maximum.
TEST(PlainConn, ALongBodyAsksForALargerSendBufferOnlyWhereItGrows) {
  constexpr int k4M = 4 << 20, k8M = 8 << 20;
  EXPECT_EQ(SendBufferToAskFor(k4M, k4M, k4M), k4M);           // this machine's limits: 8 MiB
  EXPECT_EQ(SendBufferToAskFor(k4M, k4M, 16 << 20), k4M);      // capped at 8 MiB
  EXPECT_EQ(SendBufferToAskFor(1 << 20, k4M, k4M), -1);        // autotuning not there yet
  EXPECT_EQ(SendBufferToAskFor(k4M, k4M, 212992), 0);          // Debian's wmem_max: would shrink it
  EXPECT_EQ(SendBufferToAskFor(k4M, 6 << 20, 3 << 20), 0);     // 6 MiB: no more than autotuning's
  EXPECT_EQ(SendBufferToAskFor(k8M, k4M, k4M), 0);             // already that large
  EXPECT_EQ(SendBufferToAskFor(k4M, 0, k4M), 0);               // limits unknown
  EXPECT_EQ(SendBufferToAskFor(k4M, k4M, 0), 0);
}

// A long body by sendfile from a memfd: a client that reads gets every byte, in order, with
// the send buffer raised on the way where the system lets it; one that reads nothing is
// handed only what its socket takes (the loop then waits, and drops it at the send timeout).
TEST(PlainConn, ALongSendfileArrivesWholeWithTheSendBufferRaised) {
  const size_t n = 24 << 20;
  int mfd = ::memfd_create("body", MFD_CLOEXEC);
  ASSERT_GE(mfd, 0);
  ASSERT_EQ(::ftruncate(mfd, static_cast<off_t>(n)), 0);
  char* m = static_cast<char*>(::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
  ASSERT_NE(m, MAP_FAILED);
  for (size_t i = 0; i < n; ++i) m[i] = static_cast<char>(i * 7 + (i >> 13));
  const int autotune_max = ProcInt("/proc/sys/net/ipv4/tcp_wmem", 2);
  const int raised = 2 * std::min(4 << 20, ProcInt("/proc/sys/net/core/wmem_max", 0));
  std::cout << "tcp_wmem max " << autotune_max << ", a raised buffer " << raised << "\n";

  {  // a client that reads nothing
    int fds[2];
    ASSERT_TRUE(TcpPair(fds));
    auto c = MakePlainConn(fds[0]);
    size_t wrote = 0;
    for (int i = 0; i < 20; ++i) {  // several wake-ups' worth, as the loop would make
      size_t w = 0;
      Io r = c->TrySendFile(mfd, wrote, n - wrote, &w);
      wrote += w;
      ASSERT_NE(r, Io::kError);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_LT(wrote, n);
    int buf = SendBuffer(fds[0]);
    std::cout << "non-reading client: send buffer " << buf << ", " << wrote << " bytes taken\n";
    ::close(fds[1]);
  }
  {  // a client that reads everything
    int fds[2];
    ASSERT_TRUE(TcpPair(fds));
    std::string got;
    std::thread reader([&] {
      std::string b(1 << 20, '\0');
      for (;;) {
        ssize_t r = ::recv(fds[1], b.data(), b.size(), 0);
        if (r <= 0) break;
        got.append(b.data(), static_cast<size_t>(r));
      }
    });
    {
      auto c = MakePlainConn(fds[0]);
      size_t wrote = 0;
      int most = 0;
      while (wrote < n) {
        size_t w = 0;
        Io r = c->TrySendFile(mfd, wrote, n - wrote, &w);
        wrote += w;
        ASSERT_NE(r, Io::kError);
        if (r == Io::kWouldBlock) {
          ASSERT_TRUE(c->WaitReady());
        }
        most = std::max(most, SendBuffer(fds[0]));
      }
      std::cout << "reading client: largest send buffer " << most << "\n";
    }  // closes the server's side: the reader sees the end
    reader.join();
    ::close(fds[1]);
    EXPECT_TRUE(got == std::string_view(m, n)) << "the body arrived changed or incomplete: " << got.size();
  }
  ::munmap(m, n);
  ::close(mfd);
}

}  // namespace
}  // namespace patchgate::server
