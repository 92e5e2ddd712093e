// libFuzzer target: parsing untrusted TUF metadata (envelope + every role type) must
// never crash, hang or read out of bounds.
#include <cstdint>

#include "tuf/metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate::tuf;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto env = Envelope::Parse(text, kMaxTargetsBytes);
  if (!env.ok()) return 0;
  (void)Root::FromSigned(env->signed_json);
  (void)Timestamp::FromSigned(env->signed_json);
  (void)Snapshot::FromSigned(env->signed_json);
  // The entry-by-entry read of a canonical targets object (what a mirror reads a large
  // role with) must fail cleanly on whatever the object holds.
  (void)ReadCanonicalTargets(text, true);
  (void)ReadCanonicalTargets(text, false);
  auto t = Targets::FromSigned(env->signed_json);
  if (t.ok() && t->delegations) {
    for (const auto& r : t->delegations->roles) (void)r.Matches("product/file.bin");
    if (t->delegations->succinct) (void)t->delegations->succinct->BinFor("product/file.bin");
  }
  return 0;
}
