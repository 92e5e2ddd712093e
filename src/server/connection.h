// Transport of one accepted connection: plain TCP or TLS over a non-blocking socket.
//
// Two ways to use it:
//   - non-blocking steps for the event loop (TryRead, TryWrite, Handshake): they never
//     wait, and say kWouldBlock with the readiness to wait for (WantsWrite());
//   - blocking helpers for a worker thread that owns the connection for one response
//     (Write, SendFile, LingeringClose): they wait with poll(2), and give up when the peer
//     takes nothing for the send timeout (a client that does not read is dropped then).
// One owner at a time (the loop, or the worker handling its request); not thread-safe.
// OpenSSL stays out of this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace patchgate::server {

enum class Io { kOk, kWouldBlock, kEof, kError };

class Conn {
 public:
  virtual ~Conn();  // closes the socket (a TLS connection sends its close_notify first)
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int fd() const { return fd_; }
  void set_send_timeout_ms(int ms) { send_timeout_ms_ = ms; }

  // TLS: one step of the handshake (kOk when done); plain TCP: kOk at once.
  virtual Io Handshake() { return Io::kOk; }
  // Reads what is there: kOk with *got > 0, kEof, kWouldBlock or kError.
  virtual Io TryRead(char* buf, size_t n, size_t* got) = 0;
  // Writes `a` then `b` as far as the socket takes them now; *wrote counts bytes of a+b
  // taken. `more`: more bytes follow (they may share a TCP segment). kOk when all taken.
  virtual Io TryWrite(std::string_view a, std::string_view b, bool more, size_t* wrote) = 0;
  // Sends [off, off+len) of `file_fd` as far as the socket takes it now (sendfile(2));
  // kError where the transport cannot (TLS in user space): the caller writes instead.
  virtual bool CanSendFile() const { return false; }
  virtual Io TrySendFile(int file_fd, uint64_t off, size_t len, size_t* wrote) {
    (void)file_fd, (void)off, (void)len, *wrote = 0;
    return Io::kError;
  }
  // After kWouldBlock: the step waits for writability (else readability).
  bool WantsWrite() const { return want_write_; }
  // Whether input may already sit above the socket (TLS: a record read whole but not yet
  // handed out), so readability of the socket alone does not tell that nothing is there.
  virtual bool MayHoldInput() const { return false; }

  // Blocking: writes all of `data`; false if the peer took nothing for the send timeout,
  // or on error. `written` (if given) counts the bytes taken, also when it returns false.
  bool Write(std::string_view data, bool more_follows, uint64_t* written = nullptr);
  bool WriteAll(std::string_view data) { return Write(data, false); }
  // Sends [offset, offset+len) of `file_fd` without looking at the bytes (only for files
  // the kernel verifies on read: fs-verity); returns bytes sent (short on error).
  virtual uint64_t SendFile(int file_fd, uint64_t offset, uint64_t len);
  // Closes after a response that said "Connection: close": stops sending, then reads and
  // discards what the client still sends (briefly), so a pipelined request left unread
  // does not turn the close into a reset that could destroy the response in flight.
  void LingeringClose();
  // Stops sending (the loop then discards what arrives until EOF or a deadline).
  virtual void ShutdownWrite();
  // Blocking: waits for the readiness the last kWouldBlock asked for; false after the send
  // timeout without it.
  bool WaitReady();

 protected:
  explicit Conn(int fd) : fd_(fd) {}
  int fd_;
  int send_timeout_ms_ = 30000;
  bool want_write_ = false;
};

// Takes ownership of `fd` (a connected, non-blocking socket).
std::unique_ptr<Conn> MakePlainConn(int fd);
// For a long body sent by sendfile (plain TCP): the SO_SNDBUF to ask for, given the
// socket's buffer now and the system's limits (net.ipv4.tcp_wmem's maximum, which
// autotuning reaches; net.core.wmem_max, what a process may set): > 0 ask for that; 0 leave
// it (it would not grow past what autotuning gives); -1 not yet (autotuning is still growing it).
int SendBufferToAskFor(int current, int autotune_max, int settable_max);
// Takes ownership of `fd`; the handshake runs through Handshake().
std::unique_ptr<Conn> MakeTlsConn(int fd, ssl_ctx_st* ctx);

}  // namespace patchgate::server
