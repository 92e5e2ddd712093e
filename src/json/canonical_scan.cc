#include "json/canonical_scan.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/text.h"

namespace patchgate::cjson {

namespace {

class Scanner {
 public:
  Scanner(std::string_view t, size_t max_depth) : p_(t.data()), end_(t.data() + t.size()), max_depth_(max_depth) {}
  // Record members into `out` (see ScanCanonical).
  void Record(std::string_view nested_key, ScannedMembers* out) {
    nested_key_ = nested_key;
    out_ = out;
  }

  bool Document() {
    if (!Value(0)) return false;
    return p_ == end_;
  }

 private:
  bool Value(size_t depth) {
    if (p_ >= end_) return false;
    switch (*p_) {
      case '{': return Object(depth);
      case '[': return Array(depth);
      case '"': return String(nullptr);
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: return Integer();
    }
  }

  bool Literal(const char* lit) {
    size_t n = std::strlen(lit);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, lit, n) != 0) return false;
    p_ += n;
    return true;
  }

  bool Integer() {
    bool neg = false;
    if (*p_ == '-') {
      neg = true;
      ++p_;
    }
    const char* start = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    size_t n = static_cast<size_t>(p_ - start);
    if (n == 0) return false;
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;  // floats
    if (start[0] == '0' && (n > 1 || neg)) return false;                         // 007, -0
    std::string_view digits(start, n);
    std::string_view limit = neg ? "9223372036854775808" : "18446744073709551615";
    if (n > limit.size() || (n == limit.size() && digits > limit)) return false;
    return true;
  }

  // Scans a string starting at '"'. When `decoded` is given, appends the decoded bytes.
  bool String(std::string* decoded) {
    ++p_;  // opening quote
    while (p_ < end_) {
      if (!decoded) {
#if defined(__SSE2__)
        // Fast path: skip plain printable ASCII sixteen bytes at a time, stopping at the first
        // quote, backslash, control byte (< 0x20) or non-ASCII byte (>= 0x80: negative as a
        // signed byte, so "less than 0x20" too), which the byte-wise code below handles.
        while (end_ - p_ >= 16) {
          __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
          __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                         _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
          int mask = _mm_movemask_epi8(special);
          if (mask != 0) {
            p_ += __builtin_ctz(static_cast<unsigned>(mask));
            break;
          }
          p_ += 16;
        }
#endif
        // Then eight bytes at a time.
        while (end_ - p_ >= 8) {
          uint64_t w;
          std::memcpy(&w, p_, 8);
          constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
          uint64_t quote = w ^ (kOnes * '"'), bslash = w ^ (kOnes * '\\');
          uint64_t special = ((quote - kOnes) & ~quote) | ((bslash - kOnes) & ~bslash) |
                             ((w - kOnes * 0x20) & ~w) | w;
          if (special & kHigh) break;
          p_ += 8;
        }
        if (p_ >= end_) break;
      }
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c == '\\') {
        if (p_ + 1 >= end_ || (p_[1] != '"' && p_[1] != '\\')) return false;
        if (decoded) decoded->push_back(p_[1]);
        p_ += 2;
        continue;
      }
      if (c < 0x20) return false;  // not valid JSON (and so not canonical here)
      if (c < 0x80) {
        if (decoded) decoded->push_back(static_cast<char>(c));
        ++p_;
        continue;
      }
      size_t len = Utf8SequenceLength(std::string_view(p_, static_cast<size_t>(end_ - p_)), 0);
      if (len == 0) return false;
      if (decoded) decoded->append(p_, len);
      p_ += len;
    }
    return false;
  }

  static std::string Decode(std::string_view raw) {
    std::string out;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      out.push_back(raw[i]);
    }
    return out;
  }

  bool Array(size_t depth) {
    if (depth >= max_depth_) return false;
    ++p_;
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      if (!Value(depth + 1)) return false;
      if (p_ >= end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      return false;
    }
  }

  bool Object(size_t depth) {
    if (depth >= max_depth_) return false;
    ++p_;
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    std::string_view prev_raw;
    bool first = true;
    for (;;) {
      if (p_ >= end_ || *p_ != '"') return false;
      const char* kstart = p_ + 1;
      if (!String(nullptr)) return false;
      std::string_view raw(kstart, static_cast<size_t>(p_ - 1 - kstart));
      // Keys sorted by their decoded bytes and unique. Escapes are rare: compare raw
      // bytes unless either key has one.
      if (!first) {
        bool escaped = raw.find('\\') != std::string_view::npos ||
                       prev_raw.find('\\') != std::string_view::npos;
        if (escaped ? !(Decode(prev_raw) < Decode(raw)) : !(prev_raw < raw)) return false;
      }
      first = false;
      prev_raw = raw;
      if (p_ >= end_ || *p_ != ':') return false;
      ++p_;
      const char* vstart = p_;
      bool nested = out_ && depth == 0 && raw == nested_key_;
      if (nested) in_nested_ = true;
      if (!Value(depth + 1)) return false;
      if (nested) in_nested_ = false;
      if (out_ && (depth == 0 || (depth == 1 && in_nested_))) {
        RawMember m{raw, std::string_view(vstart, static_cast<size_t>(p_ - vstart))};
        (depth == 0 ? out_->top : out_->nested).push_back(m);
      }
      if (p_ >= end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      return false;
    }
  }

  const char* p_;
  const char* end_;
  size_t max_depth_;
  std::string_view nested_key_;
  ScannedMembers* out_ = nullptr;
  bool in_nested_ = false;
};

// Skips one value of already-validated canonical text starting at p; returns the end.
const char* SkipValue(const char* p, const char* end) {
  if (p >= end) return end;
  if (*p == '"') {
    ++p;
    for (;;) {
      const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
      if (!q) return end;
      // The quote is escaped if preceded by an odd number of backslashes.
      size_t bs = 0;
      while (q - bs > p && q[-1 - static_cast<ptrdiff_t>(bs)] == '\\') ++bs;
      if (bs % 2 == 0) return q + 1;
      p = q + 1;
    }
  }
  if (*p == '{' || *p == '[') {
    static const auto kInteresting = [] {
      std::array<bool, 256> t{};
      for (unsigned char c : std::string_view("\"{}[]")) t[c] = true;
      return t;
    }();
    int depth = 0;
    while (p < end) {
      while (p < end && !kInteresting[static_cast<unsigned char>(*p)]) ++p;
      if (p >= end) break;
      char c = *p;
      if (c == '"') {
        p = SkipValue(p, end);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      else if (--depth == 0) return p + 1;
      ++p;
    }
    return end;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']') ++p;
  return p;
}

}  // namespace

bool IsCanonicalFast(std::string_view text, size_t max_depth) {
  if (text.empty()) return false;
  return Scanner(text, max_depth).Document();
}

bool ScanCanonical(std::string_view text, std::string_view nested_key, ScannedMembers* out, size_t max_depth) {
  ScannedMembers got;
  if (text.empty()) return false;
  Scanner s(text, max_depth);
  s.Record(nested_key, &got);
  if (!s.Document()) return false;
  *out = std::move(got);
  return true;
}

Result<std::string_view> MemberSlice(std::string_view object_text, std::string_view key) {
  const char* p = object_text.data();
  const char* end = p + object_text.size();
  if (p >= end || *p != '{') return Corrupt("expected a JSON object");
  ++p;
  std::string k;
  while (p < end && *p == '"') {
    const char* kstart = p + 1;
    p = SkipValue(p, end);
    if (p > end || p - 1 < kstart) break;
    std::string_view raw(kstart, static_cast<size_t>(p - 1 - kstart));
    k.clear();
    // Decode the key (only \" and \\ can appear in canonical text).
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      k.push_back(raw[i]);
    }
    if (p >= end || *p != ':') break;
    ++p;
    const char* vend = SkipValue(p, end);
    if (k == key) return std::string_view(p, static_cast<size_t>(vend - p));
    // Keys are sorted: once past `key`, it is absent.
    if (std::string_view(k) > key) return NotFound("no member \"" + std::string(key) + "\"");
    p = vend;
    if (p < end && *p == ',') ++p;
  }
  return NotFound("no member \"" + std::string(key) + "\"");
}

}  // namespace patchgate::cjson
