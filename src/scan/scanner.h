// The malware scan seam. WorkerScanner runs the real ClamAV engine in a separate
// patchgate-scan-worker process (libclamav is never loaded into patchgate itself, and
// never into the serving process). That process holds ONE engine, shared by `jobs`
// scanning threads, so memory is one engine's size whatever the parallelism. A parser
// crash or hang costs the process: every file in flight gets an "error" verdict — never
// "clean" — and a fresh process takes the next files. Each file is opened once; the worker
// hashes it and scans it through that one descriptor (never mapping a large file whole)
// and refuses a verdict if the file changed meanwhile. Files of 2 GiB or more are
// "unscannable" (the engine's own limit). Verdicts are cached in a VerdictCache (the Store
// is one) by (sha256, signature version) when one is given. Thread-compatible: one Scan()
// call at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/verdict_cache.h"

namespace patchgate::scan {

enum class Verdict { kClean, kInfected, kUnscannable, kError };
std::string_view VerdictName(Verdict v);  // clean | infected | unscannable | error

struct FileResult {
  std::string path;
  Verdict verdict = Verdict::kError;
  std::vector<std::string> detections;
  std::string error;  // why it is not clean, for unscannable/error
  std::string sha256;
  uint64_t length = 0;
  bool cached = false;
};

struct EngineInfo {
  std::string engine = "ClamAV";
  std::string engine_version;
  std::string db_version;
  uint64_t signatures = 0;
};

struct ScanOptions {
  std::string signatures_dir;
  uint64_t max_file_size = 512ull * 1024 * 1024;
  int jobs = 0;                      // scanning threads sharing one engine; 0: number of cores
  int timeout_seconds = 300;         // per file
  std::string worker_path;           // empty: beside the running executable, or $PATCHGATE_SCAN_WORKER
  VerdictCache* cache = nullptr;     // optional verdict cache (a Store is one)
  // Progress callback (files done, bytes done), called from the scanning threads.
  std::function<void(size_t, uint64_t)> progress;
};

class Scanner {
 public:
  virtual ~Scanner() = default;
  virtual const EngineInfo& info() const = 0;
  // Scans every file (results in input order). Never returns kClean for a file it could
  // not scan. The Status is an error only when the scanner itself cannot run.
  virtual Result<std::vector<FileResult>> Scan(const std::vector<std::string>& files) = 0;
};

// Starts the workers and waits for the engine to load the signatures. Errors: no or an
// empty/malformed signature directory, worker binary missing.
Result<std::unique_ptr<Scanner>> NewWorkerScanner(const ScanOptions& options);

// Expands PATHs (recursively for directories) into regular files. A symlink whose target
// is outside the input roots, and anything that is not a regular file, is reported in
// `refused` (path and reason) rather than scanned; unreadable directories too.
struct Expansion {
  std::vector<std::string> files;
  std::vector<std::pair<std::string, std::string>> refused;
};
Expansion ExpandInputs(const std::vector<std::string>& paths);

// For tests: the process id of the running worker (one element; to prove crash isolation).
std::vector<int> WorkerPidsForTest(Scanner& scanner);

}  // namespace patchgate::scan
