#include "client/http_response.h"

#include <gtest/gtest.h>

#include <string>

namespace patchgate::client {
namespace {

struct Parsed {
  Status status;           // the first error, or OK
  std::string body;
  bool done = false;
  HttpResponseHead head;
  size_t unused = 0;       // bytes left after the response ended
};

// Feeds `wire` in pieces of `step` bytes (every split point is exercised by step 1), then
// the end of the connection when `eof`.
Parsed Parse(const std::string& wire, size_t step = 1 << 20, bool eof = false, HttpResponseLimits limits = {}) {
  HttpResponseParser p(limits);
  Parsed out;
  auto sink = [&](std::string_view c) {
    out.body.append(c);
    return Status::OK();
  };
  std::string_view rest = wire;
  while (!rest.empty() && !p.done()) {
    std::string_view piece = rest.substr(0, step);
    while (!piece.empty() && !p.done()) {
      auto used = p.Feed(piece, sink);
      if (!used.ok()) {
        out.status = used.status();
        return out;
      }
      piece.remove_prefix(*used);
      rest.remove_prefix(*used);
    }
  }
  out.unused = rest.size();
  if (eof) out.status = p.Eof();
  out.done = p.done();
  out.head = p.head();
  return out;
}

TEST(HttpResponse, ContentLengthBodyAtEverySplitPoint) {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
  for (size_t step : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, wire.size()}) {
    Parsed r = Parse(wire, step);
    ASSERT_TRUE(r.status.ok()) << step << " " << r.status.ToString();
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.body, "hello");
    EXPECT_EQ(r.head.status, 200);
    EXPECT_TRUE(r.head.keep_alive);
  }
}

TEST(HttpResponse, FeedStopsAfterTheHeadSoTheCallerCanLookAtIt) {
  HttpResponseParser p;
  std::string body;
  std::string wire = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
  auto used = p.Feed(wire, [&](std::string_view c) {
    body.append(c);
    return Status::OK();
  });
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, wire.size() - 3);
  EXPECT_TRUE(p.head_done());
  EXPECT_EQ(p.head().status, 404);
  EXPECT_TRUE(body.empty());
}

TEST(HttpResponse, ChunkedBodyWithExtensionsAndTrailers) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n1A \r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{4}, wire.size()}) {
    Parsed r = Parse(wire, step);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.body, "helloabcdefghijklmnopqrstuvwxyz");
    EXPECT_EQ(r.unused, 0u);
  }
}

TEST(HttpResponse, BodyUntilCloseEndsOnlyAtEofAndIsNotKeptAlive) {
  Parsed r = Parse("HTTP/1.1 200 OK\r\n\r\nall of it", 1 << 20, /*eof=*/true);
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "all of it");
  EXPECT_FALSE(r.head.keep_alive);
}

TEST(HttpResponse, InterimResponsesAreSkippedUpToALimit) {
  Parsed r = Parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.head.status, 200);
  EXPECT_EQ(r.body, "x");
  std::string many;
  for (int i = 0; i < 9; ++i) many += "HTTP/1.1 103 Early Hints\r\n\r\n";
  EXPECT_EQ(Parse(many + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").status.code(), ErrorCode::kTooLarge);
}

TEST(HttpResponse, NoBodyFor204And304WhateverTheFieldsSay) {
  Parsed r = Parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200");
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.unused, 12u);
}

TEST(HttpResponse, ConnectionCloseAndHttp10AreNotKeptAlive) {
  EXPECT_FALSE(Parse("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(Parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").head.keep_alive);
}

TEST(HttpResponse, OversizeHeadIsRefusedWithoutWaitingForItsEnd) {
  HttpResponseLimits limits;
  limits.max_head_bytes = 256;
  std::string wire = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(300, 'a') + "\r\n\r\n";
  Parsed r = Parse(wire, 16, false, limits);
  EXPECT_EQ(r.status.code(), ErrorCode::kTooLarge);
  // A head that never ends (no blank line) stops at the cap too.
  r = Parse("HTTP/1.1 200 OK\r\n" + std::string(1 << 20, 'x'), 4096);
  EXPECT_EQ(r.status.code(), ErrorCode::kTooLarge);
}

TEST(HttpResponse, TooManyHeaderFieldsAreRefused) {
  std::string wire = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 65; ++i) wire += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(Parse(wire + "\r\n").status.code(), ErrorCode::kTooLarge);
}

TEST(HttpResponse, AmbiguousFramingIsRefused) {
  // Both Content-Length and Transfer-Encoding (response splitting / smuggling).
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").status.code(),
            ErrorCode::kCorrupt);
  // Two Content-Length fields, even equal ones, and a list.
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").status.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").status.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n").status.code(), ErrorCode::kCorrupt);
  // Content-Length that is not plain decimal or would overflow.
  for (const char* cl : {"-1", "+3", "0x10", "3 3", "", "99999999999999999999", "1e3"})
    EXPECT_EQ(Parse(std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + cl + "\r\n\r\n").status.code(), ErrorCode::kCorrupt)
        << cl;
  // A coding other than chunked, chunked not last, and TE in HTTP/1.0.
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(Parse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").status.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n").status.code(),
            ErrorCode::kCorrupt);
}

TEST(HttpResponse, HeaderInjectionShapesAreRefused) {
  // Bare LF, bare CR, obsolete folding, space before the colon, NUL and other controls.
  for (const char* wire : {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nX: a\rContent-Length: 5\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nX: a\r\n Content-Length: 5\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
                           "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nX: a\x01z\r\n\r\n",
                           "HTTP/1.1 200 O\x02K\r\n\r\n"})
    EXPECT_EQ(Parse(wire).status.code(), ErrorCode::kCorrupt) << wire;
  std::string nul("HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n", 46);
  EXPECT_EQ(Parse(nul).status.code(), ErrorCode::kCorrupt);
}

TEST(HttpResponse, MalformedStatusLinesAreRefused) {
  for (const char* wire : {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                           "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 600 High\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n",
                           "http/1.1 200 OK\r\n\r\n"})
    EXPECT_FALSE(Parse(wire).status.ok()) << wire;
  // Not HTTP at all: refused at the first bytes, not after 16 KiB.
  HttpResponseParser p;
  auto used = p.Feed("SSH-2.0-OpenSSH_9.2\r\n", [](std::string_view) { return Status::OK(); });
  EXPECT_EQ(used.status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Parse("HTTP/1.1 101 Switching Protocols\r\n\r\n").status.code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(Parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").status.ok());  // no reason phrase
}

TEST(HttpResponse, BadChunkSizesAreRefused) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* chunks : {"-1\r\n", "+5\r\nhello\r\n", "0x5\r\nhello\r\n", " 5\r\nhello\r\n", "\r\n", "zz\r\n",
                             "5 junk\r\nhello\r\n", "5\nhello\r\n"})
    EXPECT_EQ(Parse(head + chunks).status.code(), ErrorCode::kCorrupt) << chunks;
  // Overflowing sizes, and a size line that never ends.
  EXPECT_EQ(Parse(head + "10000000000000000\r\n").status.code(), ErrorCode::kTooLarge);
  EXPECT_EQ(Parse(head + "fffffffffffffffff\r\n").status.code(), ErrorCode::kTooLarge);
  EXPECT_EQ(Parse(head + "5;" + std::string(4096, 'e')).status.code(), ErrorCode::kTooLarge);
  // A chunk longer than announced (its CRLF is not where it should be).
  EXPECT_EQ(Parse(head + "3\r\nhello\r\n0\r\n\r\n").status.code(), ErrorCode::kCorrupt);
  // Trailers: malformed, and endless.
  EXPECT_EQ(Parse(head + "0\r\nnot a field\r\n\r\n").status.code(), ErrorCode::kCorrupt);
  std::string endless = head + "0\r\n";
  for (int i = 0; i < 1000; ++i) endless += "X-T: " + std::string(20, 't') + "\r\n";
  EXPECT_EQ(Parse(endless).status.code(), ErrorCode::kTooLarge);
}

TEST(HttpResponse, TruncatedBodiesAreNetworkErrorsNotSuccess) {
  // Fewer bytes than Content-Length, then the connection closes.
  Parsed r = Parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 1 << 20, true);
  EXPECT_EQ(r.status.code(), ErrorCode::kNetwork);
  EXPECT_NE(r.status.message().find("5 of 10"), std::string::npos) << r.status.message();
  // A chunked body cut inside a chunk, before the last chunk, and inside the trailers.
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* cut : {"5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n", "5\r\nhello\r\n0\r\nX: y\r\n"})
    EXPECT_EQ(Parse(head + cut, 1 << 20, true).status.code(), ErrorCode::kNetwork) << cut;
  // A head cut short, and no answer at all.
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nContent-Le", 1 << 20, true).status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(Parse("", 1 << 20, true).status.code(), ErrorCode::kNetwork);
}

TEST(HttpResponse, BytesBeyondContentLengthAreNotBody) {
  Parsed r = Parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA");
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.body, "abc");
  EXPECT_EQ(r.unused, 5u);
}

TEST(HttpResponse, ContentRangeOf206IsParsedAndChecked) {
  Parsed r = Parse("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-199/200\r\nContent-Length: 100\r\n\r\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.head.has_content_range);
  EXPECT_EQ(r.head.range_first, 100u);
  EXPECT_EQ(r.head.range_last, 199u);
  EXPECT_TRUE(Parse("HTTP/1.1 206 P\r\nContent-Range: bytes 5-9/*\r\nContent-Length: 5\r\n\r\n").status.ok());
  for (const char* cr : {"bytes 9-5/10", "bytes 5-9/9", "bytes */10", "items 0-1/2", "bytes 5-9/10, bytes 1-2/10"})
    EXPECT_EQ(Parse(std::string("HTTP/1.1 206 P\r\nContent-Range: ") + cr + "\r\n\r\n").status.code(), ErrorCode::kCorrupt)
        << cr;
  EXPECT_EQ(Parse("HTTP/1.1 206 P\r\n\r\n").status.code(), ErrorCode::kCorrupt);  // 206 without a range
  // The range and the length must agree.
  EXPECT_EQ(Parse("HTTP/1.1 206 P\r\nContent-Range: bytes 0-9/20\r\nContent-Length: 5\r\n\r\n").status.code(),
            ErrorCode::kCorrupt);
}

TEST(HttpResponse, TheSinksErrorStopsTheParse) {
  HttpResponseParser p;
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  auto used = p.Feed(wire, [](std::string_view) { return Status::OK(); });
  ASSERT_TRUE(used.ok());
  auto r = p.Feed(std::string_view(wire).substr(*used), [](std::string_view) { return IOError("disk full"); });
  EXPECT_EQ(r.status().code(), ErrorCode::kIOError);
  EXPECT_EQ(p.Feed("x", [](std::string_view) { return Status::OK(); }).status().code(), ErrorCode::kIOError);
}

}  // namespace
}  // namespace patchgate::client
