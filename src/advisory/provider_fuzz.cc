// libFuzzer target: request paths (untrusted) against the CSAF provider handler, with an
// embargoed advisory that must never be revealed to an anonymous requester.
#include <cstddef>
#include <cstdint>
#include <string>

#include "advisory/provider.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace patchgate::advisory;
  static const ProviderSnapshot snap = [] {
    ProviderSnapshot s;
    Advisory a;
    a.id = "PG-2030-0001";
    a.product = "secretproduct";
    a.title = "embargoed";
    a.state = "scheduled";
    a.revisions.push_back({"1", 1, "Initial version"});
    a.issued = Issued{"AMBER", "interim", "{\"secret\":1}", "aa", "bb", "sig", 1};
    s.advisories.push_back(a);
    s.audience["PG-2030-0001"] = {7};
    return s;
  }();
  std::string target(reinterpret_cast<const char*>(data), size);
  auto r = HandleProvider(Publisher{}, snap, "GET", target, 0, 1'900'000'000'000'000);
  if (r && r->status == 200 && (r->body.find("pg-2030-0001") != std::string::npos ||
                                r->body.find("secret") != std::string::npos))
    __builtin_trap();
  return 0;
}
