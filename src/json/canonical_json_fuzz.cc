// libFuzzer target: Parse must never crash, and Encode must be a fixed point
// (encode(parse(encode(x))) == encode(x)).
#include <cstdint>
#include <cstdlib>

#include "json/canonical_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate;
  auto parsed = cjson::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) return 0;
  auto enc = cjson::Encode(*parsed);
  if (!enc.ok()) return 0;
  auto again = cjson::Parse(*enc);
  if (!again.ok()) std::abort();
  auto enc2 = cjson::Encode(*again);
  if (!enc2.ok() || *enc2 != *enc) std::abort();
  return 0;
}
