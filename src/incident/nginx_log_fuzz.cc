// libFuzzer target: access-log lines from nodes patchgate does not run.
#include <cstdint>

#include "incident/nginx_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)patchgate::incident::ParseCombinedLine(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
