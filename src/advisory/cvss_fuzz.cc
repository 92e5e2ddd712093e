// libFuzzer target: CVSS v3.1 vectors (from the command line and the store).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "advisory/cvss.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = patchgate::advisory::ParseCvss31(std::string_view(reinterpret_cast<const char*>(data), size));
  if (r.ok() && (r->base_score < 0 || r->base_score > 10)) __builtin_trap();
  return 0;
}
