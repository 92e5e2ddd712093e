#include "server/connection.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>

namespace patchgate::server {

Conn::~Conn() { ::close(fd_); }

bool Conn::WaitReady() {
  pollfd p{fd_, static_cast<short>(want_write_ ? POLLOUT : POLLIN), 0};
  for (;;) {
    int r = ::poll(&p, 1, send_timeout_ms_ > 0 ? send_timeout_ms_ : -1);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 && !(p.revents & (POLLERR | POLLNVAL));
  }
}

bool Conn::Write(std::string_view data, bool more_follows, uint64_t* written) {
  while (!data.empty()) {
    size_t w = 0;
    Io r = TryWrite(data, {}, more_follows, &w);
    data.remove_prefix(w);
    if (written) *written += w;
    if (r == Io::kOk) return true;
    if (r != Io::kWouldBlock) return false;
    if (w == 0 && !WaitReady()) return false;  // nothing taken for send_timeout: drop the client
  }
  return true;
}

uint64_t Conn::SendFile(int file_fd, uint64_t offset, uint64_t len) {
  std::string buf(256 * 1024, '\0');
  uint64_t sent = 0;
  while (sent < len) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(len - sent, buf.size()));
    ssize_t r = ::pread(file_fd, buf.data(), want, static_cast<off_t>(offset + sent));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    uint64_t w = 0;
    bool ok = Write(std::string_view(buf.data(), static_cast<size_t>(r)), sent + r < len, &w);
    sent += w;
    if (!ok) break;
  }
  return sent;
}

void Conn::ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

void Conn::LingeringClose() {
  ShutdownWrite();
  char sink[4096];
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  size_t total = 0;
  while (std::chrono::steady_clock::now() < until && total < (256u << 10)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t r = ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT);
    if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) break;
    if (r > 0) total += static_cast<size_t>(r);
  }
}

namespace {

// The largest send buffer TCP's autotuning gives a socket (net.ipv4.tcp_wmem's third field)
// and the largest one a process may set (net.core.wmem_max); read once, 0 if unknown.
struct SendBufferLimits {
  int autotune_max = 0, settable_max = 0;
};
const SendBufferLimits& Limits() {
  static const SendBufferLimits limits = [] {
    SendBufferLimits l;
    if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_wmem", "r")) {
      int lo = 0, mid = 0, hi = 0;
      if (std::fscanf(f, "%d %d %d", &lo, &mid, &hi) == 3) l.autotune_max = hi;
      std::fclose(f);
    }
    if (FILE* f = std::fopen("/proc/sys/net/core/wmem_max", "r")) {
      if (std::fscanf(f, "%d", &l.settable_max) != 1) l.settable_max = 0;
      std::fclose(f);
    }
    return l;
  }();
  return limits;
}

// A body this long, sent by sendfile, may get a send buffer past autotuning's (below).
constexpr size_t kLongBody = 4 << 20;
// What is asked for then (the kernel doubles it for its own overhead): 8 MiB of buffer.
constexpr int kLongBodySendBuffer = 4 << 20;

}  // namespace

int SendBufferToAskFor(int current, int autotune_max, int settable_max) {
  const int want = std::min(kLongBodySendBuffer, settable_max);
  // Unknown limits, or a buffer no larger than autotuning's: setting it would end
  // autotuning for nothing, or shrink the buffer (wmem_max is often 208 KiB).
  if (autotune_max <= 0 || want <= 0 || 2 * want <= autotune_max) return 0;
  if (current < autotune_max) return -1;
  return 2 * want > current ? want : 0;
}

namespace {

class PlainConn final : public Conn {
 public:
  explicit PlainConn(int fd) : Conn(fd) {}
  Io TryRead(char* buf, size_t n, size_t* got) override {
    *got = 0;
    for (;;) {
      ssize_t r = ::recv(fd_, buf, n, 0);
      if (r > 0) {
        *got = static_cast<size_t>(r);
        return Io::kOk;
      }
      if (r == 0) return Io::kEof;
      if (errno == EINTR) continue;
      want_write_ = false;
      return (errno == EAGAIN || errno == EWOULDBLOCK) ? Io::kWouldBlock : Io::kError;
    }
  }
  Io TryWrite(std::string_view a, std::string_view b, bool more, size_t* wrote) override {
    *wrote = 0;
    while (!a.empty() || !b.empty()) {
      ssize_t w;
      if (!a.empty() && !b.empty()) {
        iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
        msghdr mh{};
        mh.msg_iov = iov;
        mh.msg_iovlen = 2;
        w = ::sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
      } else {
        std::string_view d = a.empty() ? b : a;
        w = ::send(fd_, d.data(), d.size(), MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        want_write_ = true;
        return Io::kWouldBlock;
      }
      if (w <= 0) return Io::kError;
      size_t n = static_cast<size_t>(w);
      *wrote += n;
      size_t from_a = std::min(n, a.size());
      a.remove_prefix(from_a);
      b.remove_prefix(n - from_a);
    }
    return Io::kOk;
  }
  bool CanSendFile() const override { return true; }
  Io TrySendFile(int file_fd, uint64_t off, size_t len, size_t* wrote) override {
    *wrote = 0;
    if (len >= kLongBody && !buffer_raised_) RaiseSendBuffer();
    off_t o = static_cast<off_t>(off);
    while (*wrote < len) {
      ssize_t w = ::sendfile(fd_, file_fd, &o, len - *wrote);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        want_write_ = true;
        return Io::kWouldBlock;
      }
      if (w <= 0) return Io::kError;
      *wrote += static_cast<size_t>(w);
    }
    return Io::kOk;
  }
  // A long body: once autotuning has grown the send buffer to its maximum, the buffer is
  // raised past it, to 8 MiB where the system lets a process (wmem_max): each wake-up of
  // the loop then hands the kernel twice as much. At 50 MiB over 8 connections: 40-42 ->
  // 27-29 context switches and 129-133 -> 88-92 system calls per download (perf stat,
  // bench/serve_cpu.sh PERF=stat). Never lowers a buffer: setting one also ends
  // autotuning, so it is set only when that gives more than autotuning could
  // (SendBufferToAskFor). The bytes queued are the memfd's pages, not copies; a client that
  // does not read is dropped at the send timeout as before.
  void RaiseSendBuffer() {
    const SendBufferLimits& l = Limits();
    int cur = 0;
    socklen_t cl = sizeof cur;
    if (::getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &cur, &cl) != 0) cur = 0;
    int want = SendBufferToAskFor(cur, l.autotune_max, l.settable_max);
    if (want < 0) return;  // not yet: autotuning is still growing it
    if (want > 0) ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    buffer_raised_ = true;
  }
  uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len) override {
    uint64_t sent = 0;
    off_t off = static_cast<off_t>(offset);
    while (sent < len) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(len - sent, 1 << 20));
      ssize_t w = ::sendfile(fd_, file_fd, &off, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        want_write_ = true;
        if (!WaitReady()) break;
        continue;
      }
      if (w <= 0) break;
      sent += static_cast<uint64_t>(w);
    }
    return sent;
  }

 private:
  bool buffer_raised_ = false;  // or found not worth raising
};

class TlsConn final : public Conn {
 public:
  TlsConn(int fd, SSL* ssl) : Conn(fd), ssl_(ssl) {}
  ~TlsConn() override {
    if (handshake_done_) SSL_shutdown(ssl_);  // best effort close_notify; never waits
    ERR_clear_error();
    SSL_free(ssl_);
  }
  Io Handshake() override {
    if (handshake_done_) return Io::kOk;
    int r = SSL_accept(ssl_);
    if (r == 1) {
      handshake_done_ = true;
      return Io::kOk;
    }
    return Failed(r);
  }
  Io TryRead(char* buf, size_t n, size_t* got) override {
    *got = 0;
    int r = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (r > 0) {
      *got = static_cast<size_t>(r);
      return Io::kOk;
    }
    return Failed(r);
  }
  Io TryWrite(std::string_view a, std::string_view b, bool /*more*/, size_t* wrote) override {
    *wrote = 0;
    for (std::string_view d : {a, b}) {
      while (!d.empty()) {
        // Partial writes and a moving buffer are allowed (modes set at creation), so a
        // write that would block may be resumed later with the rest of the data.
        int w = SSL_write(ssl_, d.data(), static_cast<int>(std::min<size_t>(d.size(), 1 << 30)));
        if (w <= 0) return Failed(w);
        d.remove_prefix(static_cast<size_t>(w));
        *wrote += static_cast<size_t>(w);
      }
    }
    return Io::kOk;
  }
  bool MayHoldInput() const override { return true; }
  void ShutdownWrite() override {
    if (handshake_done_) SSL_shutdown(ssl_);
    ERR_clear_error();
    ::shutdown(fd_, SHUT_WR);
  }

 private:
  Io Failed(int r) {
    int e = SSL_get_error(ssl_, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) {
      want_write_ = false;
      return Io::kWouldBlock;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      want_write_ = true;
      return Io::kWouldBlock;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return Io::kEof;
    return Io::kError;
  }
  SSL* ssl_;
  bool handshake_done_ = false;
};

}  // namespace

std::unique_ptr<Conn> MakePlainConn(int fd) { return std::make_unique<PlainConn>(fd); }

std::unique_ptr<Conn> MakeTlsConn(int fd, ssl_ctx_st* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) {
    ::close(fd);
    return nullptr;
  }
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_set_fd(ssl, fd);
  SSL_set_accept_state(ssl);
  return std::make_unique<TlsConn>(fd, ssl);
}

}  // namespace patchgate::server
