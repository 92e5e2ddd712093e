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

// The hook `patchgate publish` runs on the staged private copies of its inputs before
// anything is written. Each clean file's custom metadata gains {"scan": {"verdict",
// "engine","engine_version","signature_version","scanned_at"}}, and its record carries
// the sha256 the scanner read (publish refuses when it is not the staged copy's).
tuf::PrePublishHook MakePublishGate(const ScanOptions& options, const std::string& repo_dir);

// The gate's decision on scan results (results[i] is for files[i]): kInfected if any input
// is infected (each quarantined), kScanFailed if any verdict is not an explicit clean
// (unscannable, error, or a result missing), the records otherwise.
Result<std::vector<tuf::GateRecord>> JudgeScan(const std::vector<tuf::StagedInput>& files,
                                               const std::vector<FileResult>& results, const EngineInfo& info,
                                               const std::string& repo_dir);

// Copies `file` into <repo_dir>/quarantine/ with a JSON report beside it. Returns the
// quarantined path.
Result<std::string> Quarantine(const std::string& repo_dir, const FileResult& result, const EngineInfo& engine);

}  // namespace patchgate::scan
