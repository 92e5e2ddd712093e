// libFuzzer target: the one-pass canonical validator must agree with parse+encode, and
// MemberSlice must never read out of bounds on validated input.
#include <cstdint>
#include <cstdlib>

#include "json/canonical_json.h"
#include "json/canonical_scan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  bool fast = cjson::IsCanonicalFast(text);
  if (fast != cjson::IsCanonical(text)) std::abort();
  if (fast && !text.empty() && text[0] == '{') {
    auto parsed = cjson::Parse(text);
    for (auto it = parsed->begin(); it != parsed->end(); ++it) {
      auto slice = cjson::MemberSlice(text, it.key());
      if (!slice.ok() || *cjson::Encode(it.value()) != *slice) std::abort();
    }
    (void)cjson::MemberSlice(text, "zz-not-there");
  }
  return 0;
}
