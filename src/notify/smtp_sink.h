// Test support: a real SMTP server for tests (Debian's python3-aiosmtpd running
// tests/respond/smtp_sink.py) that writes every message it accepts as a .eml file into a
// folder, and helpers to read those messages back. Used by the notification and advisory
// tests; not used by the product.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace patchgate::notify::testing {

// Whether /usr/bin/python3 has aiosmtpd (scripts/deps.sh installs python3-aiosmtpd).
bool SmtpSinkAvailable();

// A free TCP port on 127.0.0.1 at the time of the call.
int FreeLoopbackPort();

class SmtpSink {
 public:
  // Listens on 127.0.0.1:port and stores messages in `dir`; after max_messages (if >= 0)
  // it refuses further ones. `source_dir` is the project's source tree.
  SmtpSink(const std::string& source_dir, const std::string& dir, int port, int max_messages = -1);
  ~SmtpSink();
  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;
  void Stop();  // idempotent
  bool ready() const { return ready_; }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

// The .eml files in `dir`, in name order (the sink names them in arrival order).
std::vector<std::string> Messages(const std::string& dir);

}  // namespace patchgate::notify::testing
