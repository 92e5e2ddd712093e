// The publish gate: nothing is signed unless the real ClamAV engine (in worker processes)
// gave an explicit clean verdict for every input. An infected input is copied to
// <repo>/quarantine/ with a JSON report and publish fails with kInfected; an input that
// could not be scanned (limits, encryption, engine error, timeout) fails it with
// kScanFailed. Nothing is written to the repository's metadata in either case.
#pragma once

#include <string>

#include "scan/scanner.h"
#include "tuf/repository.h"

namespace patchgate::scan {

// The hook `patchgate publish` runs before anything else. Each clean file's custom
// metadata gains {"scan": {"verdict","engine","engine_version","signature_version",
// "scanned_at"}}.
tuf::PrePublishHook MakePublishGate(const ScanOptions& options, const std::string& repo_dir);

// Copies `file` into <repo_dir>/quarantine/ with a JSON report beside it. Returns the
// quarantined path.
Result<std::string> Quarantine(const std::string& repo_dir, const FileResult& result, const EngineInfo& engine);

}  // namespace patchgate::scan
