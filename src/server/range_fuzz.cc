// libFuzzer target: Range header values against representation lengths.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "server/range.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate::server;
  if (size < 8) return 0;
  uint64_t length = 0;
  std::memcpy(&length, data, 8);
  std::string_view v(reinterpret_cast<const char*>(data + 8), size - 8);
  for (uint64_t len : {length, length % 4096, uint64_t{0}}) {
    ByteRange r = ParseRange(v, len);
    if (r.kind == ByteRange::Kind::kRange && (r.first > r.last || r.last >= len)) std::abort();
  }
  return 0;
}
