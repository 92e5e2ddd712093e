// libFuzzer target: Parse must never crash, and Encode must be a fixed point
// (encode(parse(encode(x))) == encode(x)). One documented exception: canonical JSON (as
// securesystemslib defines it) writes control characters in strings raw, and raw control
// characters are not valid JSON, so such an encoding does not parse again.
#include <algorithm>
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
  if (!again.ok()) {
    bool has_control = std::any_of(enc->begin(), enc->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (!has_control) std::abort();
    return 0;
  }
  auto enc2 = cjson::Encode(*again);
  if (!enc2.ok() || *enc2 != *enc) std::abort();
  return 0;
}
