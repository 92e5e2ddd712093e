#include "server/range.h"

namespace patchgate::server {

namespace {

// A decimal number of at most 19 digits (fits in uint64_t), nothing else.
bool ParseNumber(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = x;
  return true;
}

}  // namespace

ByteRange ParseRange(std::string_view v, uint64_t length) {
  ByteRange whole;
  if (v.substr(0, 6) != "bytes=") return whole;
  v.remove_prefix(6);
  if (v.find(',') != std::string_view::npos) return whole;
  size_t dash = v.find('-');
  if (dash == std::string_view::npos) return whole;
  std::string_view a = v.substr(0, dash), b = v.substr(dash + 1);
  ByteRange r;
  if (a.empty()) {  // suffix: the last y bytes
    uint64_t y = 0;
    if (!ParseNumber(b, &y)) return whole;
    if (y == 0 || length == 0) {
      r.kind = ByteRange::Kind::kUnsatisfiable;
      return r;
    }
    r.kind = ByteRange::Kind::kRange;
    r.first = y >= length ? 0 : length - y;
    r.last = length - 1;
    return r;
  }
  uint64_t x = 0, y = UINT64_MAX;
  if (!ParseNumber(a, &x)) return whole;
  if (!b.empty() && (!ParseNumber(b, &y) || y < x)) return whole;
  if (x >= length) {
    r.kind = ByteRange::Kind::kUnsatisfiable;
    return r;
  }
  r.kind = ByteRange::Kind::kRange;
  r.first = x;
  r.last = y < length - 1 ? y : length - 1;
  return r;
}

}  // namespace patchgate::server
