// The HTTP Range request header (RFC 9110 §14), parsed from a buffer. Pure; thread-safe.
// One byte range is honoured; anything else is "serve the whole file", as RFC 9110 allows.
#pragma once

#include <cstdint>
#include <string_view>

namespace patchgate::server {

struct ByteRange {
  enum class Kind { kWhole, kRange, kUnsatisfiable };
  Kind kind = Kind::kWhole;
  uint64_t first = 0, last = 0;  // inclusive, kRange only; last < length
};

// `value` is the header value; `length` the representation's length.
//   absent/malformed/several ranges/other unit -> kWhole (the range is ignored);
//   a range starting at or beyond the end, or a zero-length suffix -> kUnsatisfiable (416);
//   otherwise kRange with `last` clamped to length - 1.
ByteRange ParseRange(std::string_view value, uint64_t length);

}  // namespace patchgate::server
