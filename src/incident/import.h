// `patchgate import-log`: brings the access logs of nodes patchgate does not run into the
// audit trail, so `incident scope` covers them too. Idempotent: every line gets a stable
// key (node, line bytes, and its occurrence number among identical lines of the file), so
// importing the same lines again adds nothing. Unparseable lines are counted and reported
// with their line numbers and the import goes on; unknown users and paths are kept as they
// are and flagged.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "store/store.h"

namespace patchgate::incident {

struct ImportOptions {
  std::string node;
  std::string repo_dir;  // optional: the published catalogue, to flag unknown paths
  size_t batch = 10000;
};

struct ImportReport {
  size_t lines = 0, imported = 0, duplicates = 0, skipped = 0, unparseable = 0;
  size_t unknown_users = 0, unknown_targets = 0;
  std::vector<std::pair<size_t, std::string>> bad_lines;  // first 100: line number, reason
};

Result<ImportReport> ImportNginxLog(Store& store, const std::string& file, const ImportOptions& options);

// "/targets/office/<sha256>.setup.exe" -> {"office/setup.exe", "<sha256>"}; false if the
// request is not for a target.
bool TargetFromRequestPath(const std::string& path, std::string* target, std::string* sha256);

}  // namespace patchgate::incident
