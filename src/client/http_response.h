// An HTTP/1.1 response read as it arrives from the network: the bytes are untrusted (any
// server, or anyone between it and us, writes them). Every limit is named; anything a
// strict reading of RFC 9112 does not allow, or that could frame the body two ways
// (Content-Length with Transfer-Encoding, two Content-Length values, a transfer coding
// other than chunked, obsolete line folding, bare CR or LF, NUL and other control bytes in
// a field), is an error rather than a guess. Parses from a buffer (fuzzable, no I/O).
// One parser reads one response; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate::client {

struct HttpResponseLimits {
  size_t max_head_bytes = 16 * 1024;     // status line, header fields and the blank line
  size_t max_header_fields = 64;
  size_t max_chunk_line_bytes = 1024;    // chunk size and extensions, CRLF included
  size_t max_trailer_bytes = 8 * 1024;   // all trailer fields after the last chunk
  int max_interim_responses = 8;         // 1xx heads before the final one
};

struct HttpResponseHead {
  enum class Framing {
    kNone,        // no body (204, 304)
    kLength,      // Content-Length bytes
    kChunked,     // Transfer-Encoding: chunked
    kUntilClose,  // neither: the body ends when the server closes the connection
  };
  int status = 0;
  int minor_version = 1;        // HTTP/1.<minor_version>
  bool keep_alive = false;      // the connection may carry another request afterwards
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;  // kLength only
  // Content-Range: bytes FIRST-LAST/(COMPLETE|*); has_content_range false when absent.
  bool has_content_range = false;
  uint64_t range_first = 0, range_last = 0;
  size_t head_bytes = 0;        // size of the final head, blank line included
};

class HttpResponseParser {
 public:
  using BodySink = std::function<Status(std::string_view chunk)>;

  explicit HttpResponseParser(HttpResponseLimits limits = {}) : limits_(limits) {}

  // Reads the next bytes of the response. Body bytes (after de-chunking) go to `on_body`
  // as views into `data`; its error stops the parse and is returned. Returns how many
  // bytes of `data` were used: fewer than all of them when the head has just been
  // completed (the caller looks at head() and then feeds the rest) or when the response
  // has ended (the rest belongs to no request of ours). Errors: kCorrupt (not HTTP, or
  // ambiguous framing), kTooLarge (over a limit), kUnsupported (a transfer coding or
  // upgrade this client does not speak); after an error the parser accepts nothing more.
  Result<size_t> Feed(std::string_view data, const BodySink& on_body);

  // The connection was closed by the peer. OK when that ends the response (a body read
  // until close, or a response already complete); kNetwork naming what was cut short
  // otherwise (a truncated head, body or chunk).
  Status Eof();

  bool head_done() const { return state_ > State::kHead; }
  bool done() const { return state_ == State::kDone; }
  const HttpResponseHead& head() const { return head_; }
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class State { kHead, kBodyLength, kUntilClose, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone, kFailed };
  Status Fail(Status s);
  Status ParseHead(std::string_view head);
  Status ParseChunkLine(std::string_view line);

  HttpResponseLimits limits_;
  State state_ = State::kHead;
  HttpResponseHead head_;
  std::string line_;            // a head, chunk-size line or trailer section being assembled
  int interim_ = 0;
  uint64_t remaining_ = 0;      // of the Content-Length body or of the current chunk
  uint64_t body_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  Status error_;
};

// The response-head checks alone, for a complete head (status line to the blank line):
// exposed for tests and the fuzzer.
Result<HttpResponseHead> ParseResponseHead(std::string_view head, const HttpResponseLimits& limits);

}  // namespace patchgate::client
