// The Authorization request header, parsed from a buffer: "Bearer <token>" or
// "Basic base64(user:token)" (RFC 6750, RFC 7617). Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate::server {

struct Credentials {
  std::string token;
  std::string basic_user;  // empty for Bearer
};

// Largest token accepted (a patchgate token is 43 characters).
inline constexpr size_t kMaxTokenBytes = 512;

// kUnauthorized (with the reason) for an unknown scheme, malformed Base64, Basic without
// ':', an empty or oversized token, or a Basic user that is empty.
Result<Credentials> ParseAuthorization(std::string_view value);

// Strict standard Base64 (RFC 4648 §4): length a multiple of 4, '=' only as the last one
// or two characters, unused trailing bits zero. kInvalidArgument otherwise.
Result<std::string> Base64DecodeStrict(std::string_view in);

}  // namespace patchgate::server
