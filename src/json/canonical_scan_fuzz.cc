// libFuzzer target: the one-pass canonical validator must agree with parse+encode,
// MemberSlice must never read out of bounds on validated input, and the members
// ScanCanonical records in its one pass must be exactly what MemberSlice finds.
#include <cstdint>
#include <cstdlib>

#include "json/canonical_json.h"
#include "json/canonical_scan.h"

namespace {
// A recorded key (as written in canonical text) decoded.
std::string Decode(std::string_view raw) {
  return patchgate::cjson::Parse("\"" + std::string(raw) + "\"")->get<std::string>();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  bool fast = cjson::IsCanonicalFast(text);
  if (fast != cjson::IsCanonical(text)) std::abort();
  cjson::ScannedMembers m;
  if (cjson::ScanCanonical(text, "signed", &m) != fast) std::abort();
  if (fast && !text.empty() && text[0] == '{') {
    auto parsed = cjson::Parse(text);
    for (auto it = parsed->begin(); it != parsed->end(); ++it) {
      auto slice = cjson::MemberSlice(text, it.key());
      if (!slice.ok() || *cjson::Encode(it.value()) != *slice) std::abort();
    }
    (void)cjson::MemberSlice(text, "zz-not-there");
    if (m.top.size() != parsed->size()) std::abort();
    for (const auto& member : m.top) {
      auto slice = cjson::MemberSlice(text, Decode(member.key));
      if (!slice.ok() || *slice != member.value) std::abort();
    }
    auto nested = cjson::MemberSlice(text, "signed");
    size_t want = nested.ok() && !nested->empty() && nested->front() == '{' ? cjson::Parse(*nested)->size() : 0;
    if (m.nested.size() != want) std::abort();
    for (const auto& member : m.nested) {
      auto slice = cjson::MemberSlice(*nested, Decode(member.key));
      if (!slice.ok() || *slice != member.value) std::abort();
    }
  }
  return 0;
}
