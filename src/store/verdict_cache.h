// VerdictCache: remembered antivirus verdicts, keyed by (content SHA-256, signature
// database version), so the same bytes are not scanned twice against the same signatures.
//
// Promises: a verdict is returned only for the exact (sha256, db_version) it was stored
// under; a newer signature database misses the cache and the file is scanned again.
// Put replaces an earlier verdict for the same key.
// Threading: safe to call from several threads at once.
// Errors: kUnavailable when the database cannot be reached (callers scan instead: the cache
// is an optimisation, never a reason to pass a file unscanned).
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class VerdictCache {
 public:
  virtual ~VerdictCache() = default;

  // std::nullopt: no verdict stored for this key.
  virtual Result<std::optional<ScanVerdict>> GetScanVerdict(const std::string& sha256,
                                                            const std::string& db_version) = 0;
  virtual Status PutScanVerdict(const ScanVerdict& v) = 0;
};

}  // namespace patchgate
