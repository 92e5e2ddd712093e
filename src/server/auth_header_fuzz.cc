// libFuzzer target: Authorization header values (Bearer, Basic + Base64).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/hash.h"
#include "server/auth_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate::server;
  std::string_view v(reinterpret_cast<const char*>(data), size);
  auto c = ParseAuthorization(v);
  if (c.ok() && (c->token.empty() || c->token.size() > kMaxTokenBytes)) std::abort();
  // Whatever decodes re-encodes to the same text (strict Base64 has one spelling).
  auto d = Base64DecodeStrict(v);
  if (d.ok() && patchgate::Base64Encode(*d) != v) std::abort();
  return 0;
}
