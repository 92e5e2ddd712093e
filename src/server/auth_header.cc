#include "server/auth_header.h"

#include <strings.h>

namespace patchgate::server {

namespace {

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool HasScheme(std::string_view v, std::string_view scheme) {
  return v.size() > scheme.size() && strncasecmp(v.data(), scheme.data(), scheme.size()) == 0 &&
         v[scheme.size()] == ' ';
}

}  // namespace

Result<std::string> Base64DecodeStrict(std::string_view in) {
  if (in.size() % 4 != 0) return InvalidArgument("Base64 length is not a multiple of 4");
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    int v = Base64Value(in[i]);
    if (v < 0) return InvalidArgument("invalid Base64 character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // What is left must be padding bits only, and zero.
  if ((acc & ((1u << bits) - 1)) != 0) return InvalidArgument("non-zero Base64 padding bits");
  return out;
}

Result<Credentials> ParseAuthorization(std::string_view v) {
  Credentials c;
  if (HasScheme(v, "Bearer")) {
    c.token = std::string(v.substr(7));
  } else if (HasScheme(v, "Basic")) {
    auto dec = Base64DecodeStrict(v.substr(6));
    if (!dec.ok()) return Unauthorized("malformed basic credentials: " + dec.status().message());
    auto colon = dec->find(':');
    if (colon == std::string::npos || colon == 0) return Unauthorized("malformed basic credentials: want user:token");
    c.basic_user = dec->substr(0, colon);
    c.token = dec->substr(colon + 1);
  } else {
    return Unauthorized("unsupported authorization scheme (use Bearer <token> or Basic)");
  }
  if (c.token.empty() || c.token.size() > kMaxTokenBytes) return Unauthorized("malformed token");
  return c;
}

}  // namespace patchgate::server
