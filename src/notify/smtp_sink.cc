#include "notify/smtp_sink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "core/fs.h"

namespace patchgate::notify::testing {

bool SmtpSinkAvailable() { return std::system("/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null") == 0; }

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

SmtpSink::SmtpSink(const std::string& source_dir, const std::string& dir, int port, int max_messages) {
  std::string script = source_dir + "/tests/respond/smtp_sink.py";
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], 1);
    std::string p = std::to_string(port), m = std::to_string(max_messages);
    if (max_messages < 0)
      ::execl("/usr/bin/python3", "python3", script.c_str(), dir.c_str(), p.c_str(), static_cast<char*>(nullptr));
    else
      ::execl("/usr/bin/python3", "python3", script.c_str(), dir.c_str(), p.c_str(), "--max-messages", m.c_str(),
              static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(out[1]);
  // The sink prints "ready\n" once it listens; read the whole line (the newline may come in
  // a write of its own, and a sink that cannot write it dies of a broken pipe).
  std::string line;
  char c;
  while (pid_ > 0 && line.size() < 64 && ::read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  ready_ = line == "ready";
  ::close(out[0]);
}

SmtpSink::~SmtpSink() { Stop(); }

void SmtpSink::Stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

std::vector<std::string> Messages(const std::string& dir) {
  std::vector<std::string> out;
  auto names = RealFileSystem::Get().ListDir(dir);
  if (!names.ok()) return out;
  std::sort(names->begin(), names->end());
  for (const auto& n : *names) {
    if (n.size() <= 4 || n.compare(n.size() - 4, 4, ".eml") != 0) continue;
    auto text = RealFileSystem::Get().ReadFile(dir + "/" + n, 1 << 24);
    if (text.ok()) out.push_back(std::move(*text));
  }
  return out;
}

}  // namespace patchgate::notify::testing
