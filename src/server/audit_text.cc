#include "server/audit_text.h"

#include "core/text.h"

namespace patchgate::server {

std::string CaptureText(std::string_view raw, size_t max_bytes) {
  static constexpr std::string_view kCut = "...";
  static constexpr char kHex[] = "0123456789ABCDEF";
  const size_t keep = max_bytes >= kCut.size() ? max_bytes - kCut.size() : 0;
  std::string out;
  size_t cut_at = 0;  // the last piece boundary within `keep` bytes
  auto escape = [&](unsigned char c) {
    out += {'\\', 'x', kHex[c >> 4], kHex[c & 0xF]};
  };
  for (size_t i = 0; i < raw.size();) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    size_t n = c < 0x80 ? 1 : Utf8SequenceLength(raw, i);
    if (c == '\\') {
      out += "\\\\";
    } else if (n == 0 || c < 0x20 || c == 0x7f) {
      escape(c);
      n = 1;
    } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(raw[i + 1]) < 0xA0) {
      escape(c);  // a C1 control character (U+0080..U+009F)
      escape(static_cast<unsigned char>(raw[i + 1]));
    } else {
      out.append(raw.substr(i, n));
    }
    i += n;
    if (out.size() <= keep) cut_at = out.size();
    if (out.size() > max_bytes) break;  // the rest cannot fit: cut below
  }
  if (out.size() <= max_bytes) return out;
  out.resize(cut_at);
  if (max_bytes >= kCut.size()) out += kCut;
  return out;
}

}  // namespace patchgate::server
