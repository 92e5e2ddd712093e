#include "client/http_response.h"

#include <algorithm>

namespace patchgate::client {
namespace {

bool IsTchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}
// Field values, reason phrases and chunk extensions: HTAB, SP, visible ASCII, obs-text.
bool IsFieldChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (Lower(a[i]) != Lower(b[i])) return false;
  return true;
}
std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// 1*DIGIT with no sign, no spaces and no overflow (at most 18 digits: < 10^18).
bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// "bytes FIRST-LAST/COMPLETE" or "bytes FIRST-LAST/*" (RFC 9110 §14.4).
bool ParseContentRange(std::string_view v, uint64_t* first, uint64_t* last) {
  if (v.size() < 6 || !EqualsNoCase(v.substr(0, 6), "bytes ")) return false;
  v.remove_prefix(6);
  size_t dash = v.find('-'), slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return false;
  uint64_t complete = 0;
  if (!ParseDecimal(v.substr(0, dash), first) || !ParseDecimal(v.substr(dash + 1, slash - dash - 1), last)) return false;
  if (*first > *last) return false;
  std::string_view c = v.substr(slash + 1);
  if (c == "*") return true;
  return ParseDecimal(c, &complete) && *last < complete;
}

// A field line "name: value" (no CRLF): its name and value, or false.
bool SplitField(std::string_view line, std::string_view* name, std::string_view* value) {
  size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  for (size_t i = 0; i < colon; ++i)
    if (!IsTchar(static_cast<unsigned char>(line[i]))) return false;  // also: no space before the colon
  for (size_t i = colon + 1; i < line.size(); ++i)
    if (!IsFieldChar(static_cast<unsigned char>(line[i]))) return false;
  *name = line.substr(0, colon);
  *value = TrimOws(line.substr(colon + 1));
  return true;
}

// Bare CR or LF anywhere but in the CRLF pairs that end lines.
bool HasBareCrOrLf(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) return true;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
  }
  return false;
}

}  // namespace

Result<HttpResponseHead> ParseResponseHead(std::string_view head, const HttpResponseLimits& limits) {
  if (head.size() > limits.max_head_bytes)
    return TooLarge("the server's response head is over " + std::to_string(limits.max_head_bytes) + " bytes");
  if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n")
    return Corrupt("the server's response head does not end with an empty line");
  if (HasBareCrOrLf(head)) return Corrupt("the server's response head has a bare CR or LF");
  HttpResponseHead h;
  h.head_bytes = head.size();
  head.remove_suffix(2);  // the blank line's CRLF; every line now ends with "\r\n"

  // Status line: HTTP/1.D SP DDD [SP reason]
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[7] < '0' || status_line[7] > '9' ||
      status_line[8] != ' ')
    return Corrupt("the server did not answer with an HTTP/1.x status line");
  h.minor_version = status_line[7] - '0';
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (status_line[i] < '0' || status_line[i] > '9') return Corrupt("the server's status code is not three digits");
    code = code * 10 + (status_line[i] - '0');
  }
  if (code < 100 || code > 599) return Corrupt("the server's status code " + std::to_string(code) + " is out of range");
  if (status_line.size() > 12) {
    if (status_line[12] != ' ') return Corrupt("the server's status code is not three digits");
    for (size_t i = 13; i < status_line.size(); ++i)
      if (!IsFieldChar(static_cast<unsigned char>(status_line[i])))
        return Corrupt("the server's reason phrase has a control byte");
  }
  h.status = code;

  // Header fields.
  size_t fields = 0;
  int content_lengths = 0, transfer_encodings = 0, content_ranges = 0;
  std::string_view content_length, transfer_encoding, content_range;
  bool close = false;
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (++fields > limits.max_header_fields)
      return TooLarge("the server sent more than " + std::to_string(limits.max_header_fields) + " header fields");
    if (line.empty() || line[0] == ' ' || line[0] == '\t')
      return Corrupt("the server's response head uses obsolete line folding");
    std::string_view name, value;
    if (!SplitField(line, &name, &value)) return Corrupt("the server sent a malformed header field");
    if (EqualsNoCase(name, "content-length")) {
      ++content_lengths;
      content_length = value;
    } else if (EqualsNoCase(name, "transfer-encoding")) {
      ++transfer_encodings;
      transfer_encoding = value;
    } else if (EqualsNoCase(name, "content-range")) {
      ++content_ranges;
      content_range = value;
    } else if (EqualsNoCase(name, "connection")) {
      while (!value.empty()) {
        size_t comma = value.find(',');
        if (EqualsNoCase(TrimOws(value.substr(0, comma)), "close")) close = true;
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
      }
    }
  }

  if (code == 101) return Unsupported("the server switched protocols, which this client never asks for");
  if (content_lengths > 1) return Corrupt("the server sent Content-Length more than once");
  if (transfer_encodings > 1) return Corrupt("the server sent Transfer-Encoding more than once");
  if (content_ranges > 1) return Corrupt("the server sent Content-Range more than once");
  if (code == 206) {
    if (content_ranges == 0 || !ParseContentRange(content_range, &h.range_first, &h.range_last))
      return Corrupt("the server's 206 response has no valid Content-Range");
    h.has_content_range = true;
  }
  uint64_t length = 0;
  if (content_lengths == 1 && !ParseDecimal(content_length, &length))
    return Corrupt("the server's Content-Length is not a decimal number");

  if (code < 200 || code == 204 || code == 304) {
    // No body, whatever the fields say (RFC 9112 §6.3 rule 1).
    h.framing = HttpResponseHead::Framing::kNone;
  } else if (transfer_encodings == 1) {
    if (content_lengths == 1) return Corrupt("the server sent both Content-Length and Transfer-Encoding");
    if (h.minor_version == 0) return Corrupt("the server sent Transfer-Encoding in an HTTP/1.0 response");
    if (!EqualsNoCase(transfer_encoding, "chunked"))
      return Unsupported("the server used a transfer coding other than chunked");
    h.framing = HttpResponseHead::Framing::kChunked;
  } else if (content_lengths == 1) {
    h.framing = HttpResponseHead::Framing::kLength;
    h.content_length = length;
  } else {
    h.framing = HttpResponseHead::Framing::kUntilClose;
  }
  if (h.has_content_range && h.framing == HttpResponseHead::Framing::kLength &&
      h.range_last - h.range_first + 1 != h.content_length)
    return Corrupt("the server's Content-Range and Content-Length disagree");
  h.keep_alive = h.minor_version >= 1 && !close && h.framing != HttpResponseHead::Framing::kUntilClose;
  return h;
}

Status HttpResponseParser::Fail(Status s) {
  state_ = State::kFailed;
  error_ = s;
  return s;
}

Status HttpResponseParser::ParseHead(std::string_view text) {
  auto h = ParseResponseHead(text, limits_);
  if (!h.ok()) return h.status();
  head_ = *h;
  return Status::OK();
}

Status HttpResponseParser::ParseChunkLine(std::string_view line) {
  // chunk-size [BWS ";" extensions] CRLF (the CRLF already checked and removed)
  size_t i = 0;
  uint64_t size = 0;
  while (i < line.size()) {
    char c = line[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else break;
    if (i >= 15) return TooLarge("the server announced a chunk of more than 2^60 bytes");
    size = size * 16 + static_cast<uint64_t>(d);
    ++i;
  }
  if (i == 0) return Corrupt("the server sent a chunk size that is not a hexadecimal number");
  std::string_view rest = line.substr(i);
  rest = TrimOws(rest);
  if (!rest.empty()) {
    if (rest[0] != ';') return Corrupt("the server sent a malformed chunk size line");
    for (char c : rest)
      if (!IsFieldChar(static_cast<unsigned char>(c))) return Corrupt("the server's chunk extension has a control byte");
  }
  remaining_ = size;
  return Status::OK();
}

Result<size_t> HttpResponseParser::Feed(std::string_view data, const BodySink& on_body) {
  if (state_ == State::kFailed) return error_;
  size_t used = 0;
  while (used < data.size()) {
    std::string_view avail = data.substr(used);
    switch (state_) {
      case State::kHead: {
        size_t before = line_.size();
        size_t take = std::min(avail.size(), limits_.max_head_bytes - before);
        line_.append(avail.data(), take);
        if (line_.compare(0, std::min<size_t>(line_.size(), 5), std::string_view("HTTP/").substr(0, std::min<size_t>(line_.size(), 5))) != 0)
          return Fail(Corrupt("the server did not answer with HTTP"));
        size_t end = line_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
        if (end == std::string::npos) {
          used += take;
          if (line_.size() >= limits_.max_head_bytes)
            return Fail(TooLarge("the server's response head is over " + std::to_string(limits_.max_head_bytes) + " bytes"));
          break;
        }
        size_t head_len = end + 4;
        used += head_len - before;
        line_.resize(head_len);
        if (Status st = ParseHead(line_); !st.ok()) return Fail(st);
        line_.clear();
        if (head_.status < 200) {  // an interim response: the final one follows
          if (++interim_ > limits_.max_interim_responses)
            return Fail(TooLarge("the server sent more than " + std::to_string(limits_.max_interim_responses) +
                                 " interim (1xx) responses"));
          head_ = HttpResponseHead{};
          break;
        }
        switch (head_.framing) {
          case HttpResponseHead::Framing::kNone: state_ = State::kDone; break;
          case HttpResponseHead::Framing::kLength:
            remaining_ = head_.content_length;
            state_ = remaining_ == 0 ? State::kDone : State::kBodyLength;
            break;
          case HttpResponseHead::Framing::kChunked: state_ = State::kChunkSize; break;
          case HttpResponseHead::Framing::kUntilClose: state_ = State::kUntilClose; break;
        }
        return used;  // the caller looks at the head before any body byte is passed on
      }
      case State::kBodyLength:
      case State::kChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(avail.size(), remaining_));
        if (Status st = on_body(avail.substr(0, n)); !st.ok()) return Fail(st);
        remaining_ -= n;
        body_bytes_ += n;
        used += n;
        if (remaining_ == 0) state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
        break;
      }
      case State::kUntilClose: {
        if (Status st = on_body(avail); !st.ok()) return Fail(st);
        body_bytes_ += avail.size();
        used += avail.size();
        break;
      }
      case State::kChunkDataEnd: {
        // Exactly CRLF after each chunk's data (line_ holds what arrived of it).
        char want = line_.empty() ? '\r' : '\n';
        if (avail[0] != want) return Fail(Corrupt("the server's chunk is longer than its announced size"));
        ++used;
        if (want == '\n') {
          line_.clear();
          state_ = State::kChunkSize;
        } else {
          line_.push_back('\r');
        }
        break;
      }
      case State::kChunkSize:
      case State::kTrailers: {
        size_t nl = avail.find('\n');
        size_t take = nl == std::string_view::npos ? avail.size() : nl + 1;
        size_t cap = state_ == State::kChunkSize ? limits_.max_chunk_line_bytes : limits_.max_trailer_bytes - trailer_bytes_;
        if (line_.size() + take > cap)
          return Fail(TooLarge(state_ == State::kChunkSize ? "the server's chunk size line is too long"
                                                           : "the server's trailer fields are over " +
                                                                 std::to_string(limits_.max_trailer_bytes) + " bytes"));
        line_.append(avail.data(), take);
        used += take;
        if (nl == std::string_view::npos) break;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r' || HasBareCrOrLf(line_))
          return Fail(Corrupt("the server's chunked body has a line not ended by CRLF"));
        std::string_view line(line_.data(), line_.size() - 2);
        if (state_ == State::kChunkSize) {
          if (Status st = ParseChunkLine(line); !st.ok()) return Fail(st);
          state_ = remaining_ == 0 ? State::kTrailers : State::kChunkData;
        } else {
          trailer_bytes_ += line_.size();
          if (line.empty()) {
            line_.clear();
            state_ = State::kDone;
            return used;
          }
          std::string_view name, value;
          if (line[0] == ' ' || line[0] == '\t' || !SplitField(line, &name, &value))
            return Fail(Corrupt("the server sent a malformed trailer field"));
        }
        line_.clear();
        break;
      }
      case State::kDone:
        return used;
      case State::kFailed:
        return error_;
    }
  }
  return used;
}

Status HttpResponseParser::Eof() {
  switch (state_) {
    case State::kDone: return Status::OK();
    case State::kUntilClose: state_ = State::kDone; return Status::OK();
    case State::kFailed: return error_;
    case State::kHead:
      return Fail(NetworkError(line_.empty() && interim_ == 0 ? "the server closed the connection without answering"
                                                              : "the server closed the connection inside the response head"));
    case State::kBodyLength:
      return Fail(NetworkError("the server closed the connection after " + std::to_string(body_bytes_) + " of " +
                               std::to_string(head_.content_length) + " body bytes"));
    default:
      return Fail(NetworkError("the server closed the connection inside a chunked body, after " +
                               std::to_string(body_bytes_) + " bytes"));
  }
}

}  // namespace patchgate::client
