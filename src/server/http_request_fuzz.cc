// libFuzzer target: request heads, request targets and If-None-Match lists from the network.
#include <cstdint>
#include <cstdlib>

#include "server/http_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate::server;
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  auto out = ParseRequestHead(buf, HttpLimits{});
  if (out.head) {
    if (out.head->head_length > size) std::abort();
    auto n = NormalizeTarget(out.head->target);
    // A normalised path never has a "." or ".." segment ("..r" is a legal name: #9 point 7).
    if (n.ok() && !HasNoDotSegment(n->rel)) std::abort();
  }
  (void)NormalizeTarget(buf);
  // If-None-Match lists: never a crash; a list that is exactly the tag always matches.
  (void)IfNoneMatchHits(buf, "\"0123abcd\"");
  if (!IfNoneMatchHits("\"0123abcd\"", "\"0123abcd\"")) std::abort();
  return 0;
}
