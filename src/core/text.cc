#include "core/text.h"

#include <cstdint>
#include <cstring>

namespace patchgate {

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto u = [&](size_t k) -> int { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : -1; };
  auto cont = [](int c) { return c >= 0x80 && c <= 0xBF; };
  int c0 = u(0);
  if (c0 < 0) return 0;
  if (c0 < 0x80) return 1;
  if (c0 >= 0xC2 && c0 <= 0xDF) return cont(u(1)) ? 2 : 0;
  if (c0 >= 0xE0 && c0 <= 0xEF) {
    int c1 = u(1);
    if (c0 == 0xE0 && !(c1 >= 0xA0 && c1 <= 0xBF)) return 0;  // overlong
    if (c0 == 0xED && !(c1 >= 0x80 && c1 <= 0x9F)) return 0;  // surrogates
    return cont(c1) && cont(u(2)) ? 3 : 0;
  }
  if (c0 >= 0xF0 && c0 <= 0xF4) {
    int c1 = u(1);
    if (c0 == 0xF0 && !(c1 >= 0x90 && c1 <= 0xBF)) return 0;  // overlong
    if (c0 == 0xF4 && !(c1 >= 0x80 && c1 <= 0x8F)) return 0;  // above U+10FFFF
    return cont(c1) && cont(u(2)) && cont(u(3)) ? 4 : 0;
  }
  return 0;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return InvalidArgument("truncated percent-encoding");
    int hi = HexDigitValue(s[i + 1]), lo = HexDigitValue(s[i + 2]);
    if (hi < 0 || lo < 0) return InvalidArgument("invalid percent-encoding");
    out.push_back(static_cast<char>(hi << 4 | lo));
    i += 2;
  }
  return out;
}

bool IsPlainText(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    size_t n = c < 0x80 ? 1 : Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string PercentDecodeLenient(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexDigitValue(s[i + 1]), lo = HexDigitValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

namespace {

void AppendHexByte(std::string& out, unsigned char c) {
  static const char kHex[] = "0123456789ABCDEF";
  out += "\\x";
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 15]);
}

void AppendCodePoint(std::string& out, char32_t cp) {
  static const char kHex[] = "0123456789ABCDEF";
  out += "\\u{";
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(cp >> shift) & 15]);
  out += "}";
}

bool IsBidiControl(char32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
         cp == 0x061C;
}

}  // namespace

char32_t DecodeUtf8At(std::string_view s, size_t i, size_t n) {
  auto b = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
  switch (n) {
    case 1: return b(0);
    case 2: return (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    case 3: return (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    case 4: return (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
    default: return 0xFFFD;
  }
}

bool IsStorableText(std::string_view s) {
  // Checked on every text value the store writes: eight ASCII bytes at a time while it can.
  constexpr uint64_t kHigh = 0x8080808080808080ull, kLow = 0x0101010101010101ull;
  size_t i = 0;
  while (i < s.size()) {
    if (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      bool ascii = (w & kHigh) == 0;
      bool has_nul = ((w - kLow) & ~w & kHigh) != 0;
      if (ascii && !has_nul) {
        i += 8;
        continue;
      }
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string EscapeInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) {
      AppendHexByte(out, c);
      ++i;
      continue;
    }
    size_t n = c < 0x80 ? 1 : Utf8SequenceLength(s, i);
    if (n == 0) {
      AppendHexByte(out, c);
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string_view TruncateUtf8(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  // Step back over continuation bytes to the start of the character the cut falls in.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  // s[end] now starts the character the cap falls in (or right after): it does not fit.
  return s.substr(0, end);
}

std::string StorableText(std::string_view s, size_t max_bytes) {
  std::string escaped = EscapeInvalidUtf8(s);
  if (escaped.size() <= max_bytes) return escaped;
  return std::string(TruncateUtf8(escaped, max_bytes));
}

std::string EscapeForTerminal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) AppendHexByte(out, c);
      else out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      AppendHexByte(out, c);
      ++i;
      continue;
    }
    char32_t cp = DecodeUtf8At(s, i, n);
    if ((cp >= 0x80 && cp <= 0x9F) || IsBidiControl(cp)) AppendCodePoint(out, cp);
    else out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace patchgate
