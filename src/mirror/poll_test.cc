#include "mirror/poll.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace patchgate::mirror {
namespace {

// A one-thread HTTP/1.1 server on loopback with keep-alive: answers each request with
// `respond(request head)` and records the heads and the connections it accepted.
class TinyServer {
 public:
  explicit TinyServer(std::function<std::string(const std::string&)> respond) : respond_(std::move(respond)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 8);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TinyServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return base() + "/metadata/timestamp.json"; }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> l(mu_);
    return heads_;
  }
  int connections() const { return connections_.load(); }

 private:
  void Loop() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++connections_;
      std::string buf;
      char tmp[4096];
      for (;;) {
        size_t end = buf.find("\r\n\r\n");
        if (end != std::string::npos) {
          std::string head = buf.substr(0, end + 4);
          buf.erase(0, end + 4);
          {
            std::lock_guard<std::mutex> l(mu_);
            heads_.push_back(head);
          }
          std::string out = respond_(head);
          if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) < 0) break;
          continue;
        }
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) break;
        buf.append(tmp, static_cast<size_t>(n));
      }
      ::close(c);
    }
  }
  std::function<std::string(const std::string&)> respond_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<std::string> heads_;
  std::thread thread_;
};

std::string Reply(int code, const std::string& body, const std::string& etag) {
  std::string reason = code == 200 ? "OK" : code == 304 ? "Not Modified" : code == 401 ? "Unauthorized" : "Error";
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  if (!etag.empty()) out += "ETag: " + etag + "\r\n";
  out += "Content-Length: " + std::to_string(code == 304 ? 0 : body.size()) + "\r\n\r\n";
  if (code != 304) out += body;
  return out;
}

bool HasHeader(const std::string& head, const std::string& line) { return head.find(line + "\r\n") != std::string::npos; }

PollOptions Options(const TinyServer& s) {
  PollOptions o;
  o.url = s.url();
  o.node_token = "pgn_test";
  o.max_bytes = 16 * 1024;
  return o;
}

TEST(TimestampPoller, SendsTheETagItIsGivenAndUnderstands304OnOneConnection) {
  const std::string etag = "\"ts-7\"";
  TinyServer s([&](const std::string& head) {
    if (HasHeader(head, "If-None-Match: " + etag)) return Reply(304, "", etag);
    return Reply(200, "{\"v\":7}", etag);
  });
  TimestampPoller p(Options(s));
  auto first = p.Poll("");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->not_modified);
  EXPECT_EQ(first->body, "{\"v\":7}");
  EXPECT_EQ(first->etag, etag);
  for (int i = 0; i < 3; ++i) {
    auto again = p.Poll(first->etag);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(again->not_modified);
    EXPECT_TRUE(again->body.empty());
  }
  auto heads = s.heads();
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_FALSE(HasHeader(heads[0], "If-None-Match: " + etag));
  EXPECT_TRUE(HasHeader(heads[1], "If-None-Match: " + etag));
  EXPECT_TRUE(HasHeader(heads[0], "Authorization: Bearer pgn_test"));
  EXPECT_EQ(s.connections(), 1);  // kept alive
}

TEST(TimestampPoller, AnUpstreamWithoutETagsAnswers200WithTheBody) {
  TinyServer s([](const std::string&) { return Reply(200, "same bytes", ""); });
  TimestampPoller p(Options(s));
  auto r = p.Poll("\"old\"");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->not_modified);
  EXPECT_EQ(r->body, "same bytes");
  EXPECT_TRUE(r->etag.empty());
}

TEST(TimestampPoller, A304ToAnUnconditionalRequestIsAnError) {
  TinyServer s([](const std::string&) { return Reply(304, "", "\"x\""); });
  TimestampPoller p(Options(s));
  auto r = p.Poll("");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNetwork);
}

TEST(TimestampPoller, RefusedTokenAndOversizedBodyAreErrors) {
  TinyServer s([](const std::string& head) {
    if (head.find("big") != std::string::npos) return Reply(200, std::string(20000, 'x'), "");
    return Reply(401, "no\n", "");
  });
  TimestampPoller p(Options(s));
  EXPECT_EQ(p.Poll("").status().code(), ErrorCode::kUnauthorized);
  PollOptions o = Options(s);
  o.url = s.base() + "/big";
  TimestampPoller big(o);
  EXPECT_EQ(big.Poll("").status().code(), ErrorCode::kTooLarge);
}

TEST(TimestampPoller, OnlyWellFormedETagsAreSentBack) {
  EXPECT_TRUE(TimestampPoller::UsableETag("\"abc\""));
  EXPECT_TRUE(TimestampPoller::UsableETag("W/\"abc\""));
  EXPECT_FALSE(TimestampPoller::UsableETag("abc"));
  EXPECT_FALSE(TimestampPoller::UsableETag("\"a\r\nX-Evil: 1\""));
  EXPECT_FALSE(TimestampPoller::UsableETag("\"a b\""));
  EXPECT_FALSE(TimestampPoller::UsableETag(""));
  EXPECT_FALSE(TimestampPoller::UsableETag("\"" + std::string(300, 'a') + "\""));
}

}  // namespace
}  // namespace patchgate::mirror
