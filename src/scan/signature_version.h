// The identity of a signature set, computed without libclamav: every database file's name
// and content hash, prefixed with the daily database's version when there is one
// ("daily-27480-1a2b3c4d5e6f7a8b", or "sigs-1a2b3c4d5e6f7a8b"). Verdicts are cached under
// it, so a changed signature set never reuses an old verdict. Computed once per scanner by
// the parent, not once per worker process (the official databases are hundreds of MB).
#pragma once

#include <string>

namespace patchgate::scan {

std::string SignatureSetVersion(const std::string& dir);

}  // namespace patchgate::scan
