// The CSAF 2.0 provider served by `patchgate serve` (section 7 of the specification, the
// requirements of a trusted provider):
//   /.well-known/security.txt                         CSAF: line to the provider metadata (req. 8)
//   /.well-known/csaf/provider-metadata.json          role csaf_trusted_provider (req. 7, 9)
//   /.well-known/csaf/openpgp/<FINGERPRINT>.asc       the public signing key (req. 20)
//   /.well-known/csaf/<tlp>/                          directory listings (req. 14)
//   /.well-known/csaf/<tlp>/index.txt, changes.csv    (req. 12, 13)
//   /.well-known/csaf/<tlp>/<YYYY>/<id>.json          one folder per year (req. 11), lower-case
//        .json.sha256 .json.sha512 .json.asc          file names (req. 2), hashes and signature (req. 18, 19)
//   /.well-known/csaf/feed-tlp-<tlp>.json             ROLIE feeds per label (req. 15)
//   /.well-known/csaf/service.json                    ROLIE service document (req. 16)
//   /.well-known/csaf/category-<product>.json         ROLIE category documents (req. 17)
// Embargo: an advisory that is not published is visible only to a requester whose
// organisation is in its audience — its document, hashes, signature, feed entries, index
// lines, changes lines and directory entries; to everyone else it does not exist (404,
// never 403). Published documents are TLP:WHITE and public (req. 4); documents with other
// labels need a token of an audience organisation (req. 5). No redirects (req. 6).
//
// HandleProvider is a pure function of its inputs (fuzzable, unit-tested); Provider adds
// the store behind it with a short cache. Both thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "advisory/advisory.h"
#include "advisory/csaf.h"

namespace patchgate::advisory {

struct HttpResponse {
  int status = 404;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct ProviderSnapshot {
  std::vector<Advisory> advisories;  // every advisory with an issued document
  std::string fingerprint, public_key_armored;
  // Organisations (ids) allowed to see each unpublished advisory, by advisory id.
  std::map<std::string, std::set<int64_t>> audience;
};

// nullopt when `target` is not a provider path (not under /.well-known/csaf/ and not
// /.well-known/security.txt): the caller serves it otherwise. `org_id`: the requester's
// organisation when a valid token came with the request, else 0.
std::optional<HttpResponse> HandleProvider(const Publisher& p, const ProviderSnapshot& s, std::string_view method,
                                           std::string_view target, int64_t org_id, int64_t now_micros);

// The provider over the store: loads the snapshot (advisories, audiences, the public key)
// at most every `cache_ms`.
class Provider {
 public:
  Provider(Store* store, Publisher p, std::string gnupg_home, const Clock* clock, int cache_ms = 1000);
  std::optional<HttpResponse> Handle(std::string_view method, std::string_view target, int64_t org_id);

 private:
  Result<std::shared_ptr<const ProviderSnapshot>> Snapshot();
  Store* store_;
  Publisher p_;
  std::string home_;
  const Clock* clock_;
  int cache_ms_;
  std::mutex mu_;
  std::shared_ptr<const ProviderSnapshot> snap_;
  int64_t loaded_at_ = 0;
};

}  // namespace patchgate::advisory
