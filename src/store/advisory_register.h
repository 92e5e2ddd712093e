// AdvisoryRegister: the security advisories as stored rows (id PG-YYYY-NNNN, product,
// state, TLP, publish time, and the model itself as JSON owned by src/advisory).
//
// Promises: CreateAdvisory takes the next free id of the year (two creators never get the
// same one); UpdateAdvisory is a compare-and-swap on the row version, so two writers never
// silently overwrite each other.
// Threading: safe to call from several threads and processes at once.
// Errors: kUnavailable when the database cannot be reached; kNotFound for an unknown id;
// kConflict when the row changed since it was read, or no id could be allocated under
// contention (re-read and retry).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class AdvisoryRegister {
 public:
  virtual ~AdvisoryRegister() = default;

  // Inserts with the next free id PG-<year>-NNNN (row.id is ignored); returns the id.
  virtual Result<std::string> CreateAdvisory(const AdvisoryRow& row, int year) = 0;
  virtual Result<AdvisoryRow> GetAdvisory(const std::string& id) = 0;  // kNotFound
  virtual Result<std::vector<AdvisoryRow>> ListAdvisories() = 0;       // by id
  // Writes row if its version is still row.version (then version + 1); kConflict when
  // someone else wrote in between (re-read and retry).
  virtual Status UpdateAdvisory(const AdvisoryRow& row) = 0;
};

}  // namespace patchgate
