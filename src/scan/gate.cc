#include "scan/gate.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/clock.h"
#include "core/fs.h"
#include "core/json_output.h"
#include "core/log.h"

namespace patchgate::scan {

Result<std::string> Quarantine(const std::string& repo_dir, const FileResult& r, const EngineInfo& engine) {
  auto& fs = RealFileSystem::Get();
  std::string qdir = JoinPath(repo_dir, "quarantine");
  PG_RETURN_IF_ERROR(fs.MakeDirs(qdir));
  std::string base = r.path.substr(r.path.find_last_of('/') + 1);
  int64_t now = SystemClock::Get().NowUnix();
  std::string stem = JoinPath(qdir, FormatRfc3339(now) + "-" + r.sha256.substr(0, 16) + "-" + base);
  // The bytes are kept for forensics, unexecutable.
  PG_ASSIGN_OR_RETURN(std::string bytes, fs.ReadFile(r.path, 4ull << 30));
  PG_RETURN_IF_ERROR(fs.WriteFileAtomic(stem + ".quarantined", bytes));
  Json report = {{"name", base}, {"source", r.path}, {"sha256", r.sha256}, {"length", r.length},
                 {"verdict", std::string(VerdictName(r.verdict))}, {"detections", r.detections},
                 {"engine", engine.engine}, {"engine_version", engine.engine_version},
                 {"signature_version", engine.db_version}, {"time", FormatRfc3339(now)}};
  PG_RETURN_IF_ERROR(fs.WriteFileAtomic(stem + ".json", JsonText(report) + "\n"));
  return stem + ".quarantined";
}

Result<std::vector<tuf::GateRecord>> JudgeScan(const std::vector<tuf::StagedInput>& files,
                                               const std::vector<FileResult>& results, const EngineInfo& info,
                                               const std::string& repo_dir) {
  if (results.size() != files.size())
    return Status(ErrorCode::kScanFailed, "refusing to publish: the scanner returned " + std::to_string(results.size()) +
                                              " verdicts for " + std::to_string(files.size()) +
                                              " files\nnothing was published");
  std::string infected, unscanned;
  for (size_t i = 0; i < results.size(); ++i) {
    const FileResult& r = results[i];
    const std::string& shown = files[i].source;
    if (r.verdict == Verdict::kInfected) {
      FileResult named = r;
      named.path = files[i].staged;
      auto q = Quarantine(repo_dir, named, info);
      std::string dets;
      for (const auto& d : r.detections) dets += (dets.empty() ? "" : ", ") + d;
      infected += "\n  " + shown + ": " + dets +
                  (q.ok() ? " (quarantined as " + *q + ")" : " (quarantine failed: " + q.status().message() + ")");
      log::Error("infected artifact refused at the publish gate", {{"file", shown}, {"detections", dets}});
    } else if (r.verdict != Verdict::kClean) {
      unscanned += "\n  " + shown + ": " + std::string(VerdictName(r.verdict)) + ": " + r.error;
    }
  }
  if (!infected.empty())
    return Status(ErrorCode::kInfected, "refusing to publish: infected" + infected + "\nnothing was published");
  if (!unscanned.empty())
    return Status(ErrorCode::kScanFailed, "refusing to publish: no clean verdict for" + unscanned +
                                              "\nnothing was published");
  std::vector<tuf::GateRecord> out;
  std::string now = FormatRfc3339(SystemClock::Get().NowUnix());
  for (size_t i = 0; i < results.size(); ++i) {
    tuf::GateRecord rec;
    rec.custom = {{"scan", {{"verdict", "clean"}, {"engine", info.engine}, {"engine_version", info.engine_version},
                            {"signature_version", info.db_version}, {"scanned_at", now}}}};
    rec.scanned_sha256 = results[i].sha256;
    out.push_back(std::move(rec));
  }
  return out;
}

tuf::PrePublishHook MakePublishGate(const ScanOptions& options, const std::string& repo_dir) {
  return [options, repo_dir](const std::vector<tuf::StagedInput>& files) -> Result<std::vector<tuf::GateRecord>> {
    PG_ASSIGN_OR_RETURN(std::unique_ptr<Scanner> scanner, NewWorkerScanner(options));
    std::vector<std::string> paths;
    for (const auto& f : files) paths.push_back(f.staged);
    PG_ASSIGN_OR_RETURN(std::vector<FileResult> results, scanner->Scan(paths));
    return JudgeScan(files, results, scanner->info(), repo_dir);
  };
}

}  // namespace patchgate::scan
