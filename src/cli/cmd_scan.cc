// `patchgate scan | rescan`, and the scan gate's flags on `publish`.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/json_output.h"
#include "core/text.h"
#include "core/log.h"
#include "scan/gate.h"
#include "tuf/naming.h"

namespace patchgate::cli {

namespace {

struct ScanFlags {
  std::string signatures;
  uint64_t max_file_size = 512ull * 1024 * 1024;
  int jobs = 0;
  int timeout = 300;
  std::string store;
  bool use_store = false;
  bool json = false;
  std::vector<std::string> paths;
  std::string repo;
};

ScanFlags& GateFlags() {
  static ScanFlags f;
  return f;
}

std::string DefaultSignatures() {
  const char* env = std::getenv("PATCHGATE_SIGNATURES");
  return env && *env ? env : "/var/lib/clamav";
}

void AddScanFlags(CLI::App* cmd, ScanFlags* f) {
  f->signatures = DefaultSignatures();
  cmd->add_option("--signatures", f->signatures,
                  "ClamAV signature directory (default $PATCHGATE_SIGNATURES or /var/lib/clamav)");
  cmd->add_option("--max-file-size", f->max_file_size, "Largest artifact scanned (bytes); larger ones are refused. The ClamAV engine itself cannot scan files of 2 GiB or more");
  cmd->add_option("--scan-jobs", f->jobs, "Scanning threads, sharing one engine in one isolated worker process (default: cores)");
  cmd->add_option("--scan-timeout", f->timeout, "Seconds one file may take");
}

// A progress bar on a terminal (files, bytes, MB/s, ETA); nothing otherwise.
std::function<void(size_t, uint64_t)> ProgressBar(size_t total_files, uint64_t total_bytes) {
  if (!::isatty(2)) return {};
  auto start = std::chrono::steady_clock::now();
  return [=](size_t files, uint64_t bytes) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double mbs = secs > 0 ? static_cast<double>(bytes) / 1e6 / secs : 0;
    double eta = (mbs > 0 && total_bytes > bytes) ? static_cast<double>(total_bytes - bytes) / 1e6 / mbs : 0;
    int width = 30;
    int filled = total_bytes ? static_cast<int>(width * static_cast<double>(bytes) / static_cast<double>(total_bytes)) : width;
    std::fprintf(stderr, "\r[%-*s] %zu/%zu files  %.1f/%.1f MB  %.1f MB/s  ETA %.0fs ", width,
                 std::string(static_cast<size_t>(std::min(filled, width)), '#').c_str(), files, total_files,
                 static_cast<double>(bytes) / 1e6, static_cast<double>(total_bytes) / 1e6, mbs, eta);
    if (files == total_files) std::fprintf(stderr, "\n");
  };
}

int ExitFor(const std::vector<scan::FileResult>& results, size_t refused) {
  bool infected = false, other = refused > 0;
  for (const auto& r : results) {
    infected |= r.verdict == scan::Verdict::kInfected;
    other |= r.verdict != scan::Verdict::kClean && r.verdict != scan::Verdict::kInfected;
  }
  return infected ? kExitInfected : (other ? kExitScanError : kExitOk);
}

int RunScan(ScanFlags& f) {
  auto exp = scan::ExpandInputs(f.paths);
  std::unique_ptr<Store> store;
  if (f.use_store) {
    auto s = OpenStore(f.store);
    if (!s.ok()) return ReportError(s.status());
    store = std::move(*s);
  }
  uint64_t total = 0;
  for (const auto& p : exp.files) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  scan::ScanOptions o{f.signatures, f.max_file_size, f.jobs, f.timeout, "", store.get(), ProgressBar(exp.files.size(), total)};
  auto scanner = scan::NewWorkerScanner(o);
  if (!scanner.ok()) return ReportError(scanner.status());
  auto t0 = std::chrono::steady_clock::now();
  auto results = (*scanner)->Scan(exp.files);
  if (!results.ok()) return ReportError(results.status());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& info = (*scanner)->info();
  if (f.json) {
    nlohmann::json out = {{"engine", info.engine}, {"engine_version", info.engine_version},
                          {"signature_version", info.db_version}, {"signatures", info.signatures},
                          {"engine_load_seconds", info.load_seconds}, {"scan_seconds", secs},
                          {"files", nlohmann::json::array()}, {"refused", nlohmann::json::array()}};
    for (const auto& r : *results)
      out["files"].push_back({{"path", r.path}, {"verdict", scan::VerdictName(r.verdict)}, {"detections", r.detections},
                              {"sha256", r.sha256}, {"length", r.length}, {"cached", r.cached}, {"error", r.error}});
    for (const auto& [p, why] : exp.refused) out["refused"].push_back({{"path", p}, {"reason", why}});
    std::printf("%s\n", JsonText(out).c_str());
  } else {
    std::printf("%-11s %-64s %s\n", "VERDICT", "SHA256", "FILE / DETECTIONS");
    size_t counts[4] = {0, 0, 0, 0};
    for (const auto& r : *results) {
      ++counts[static_cast<int>(r.verdict)];
      std::string what = r.path;
      for (const auto& d : r.detections) what += "  [" + d + "]";
      if (!r.error.empty()) what += "  (" + r.error + ")";
      std::printf("%-11s %-64s %s%s\n", std::string(scan::VerdictName(r.verdict)).c_str(),
                  r.sha256.empty() ? "-" : r.sha256.c_str(), EscapeForTerminal(what).c_str(),
                  r.cached ? "  (cached verdict)" : "");
    }
    for (const auto& [p, why] : exp.refused)
      std::printf("%-11s %-64s %s  (%s)\n", "refused", "-", EscapeForTerminal(p).c_str(), EscapeForTerminal(why).c_str());
    std::printf("%zu files, %.1f MB in %.2f s: %zu clean, %zu infected, %zu unscannable, %zu errors, %zu refused "
                "(%s %s, signatures %s, engine loaded in %.2f s before the scan)\n",
                results->size(), static_cast<double>(total) / 1e6, secs, counts[0], counts[1], counts[2], counts[3],
                exp.refused.size(), info.engine.c_str(), info.engine_version.c_str(), info.db_version.c_str(),
                info.load_seconds);
  }
  return ExitFor(*results, exp.refused.size());
}

int RunRescan(ScanFlags& f) {
  std::string targets = f.repo + "/targets";
  auto exp = scan::ExpandInputs({targets});
  std::unique_ptr<Store> store;
  if (f.use_store) {
    auto s = OpenStore(f.store);
    if (!s.ok()) return ReportError(s.status());
    store = std::move(*s);
  }
  scan::ScanOptions o{f.signatures, f.max_file_size, f.jobs, f.timeout, "", store.get(), {}};
  auto scanner = scan::NewWorkerScanner(o);
  if (!scanner.ok()) return ReportError(scanner.status());
  auto results = (*scanner)->Scan(exp.files);
  if (!results.ok()) return ReportError(results.status());
  size_t bad = 0;
  for (const auto& r : *results) {
    if (r.verdict == scan::Verdict::kClean) continue;
    ++bad;
    // targets/<product>/<sha256>.<name> -> target path <product>/<name>
    std::string rel = r.path.substr(targets.size() + 1);
    auto parsed = tuf::ParseConsistentTargetName(rel);
    std::string target = parsed ? parsed->target_path : rel;
    std::string dets;
    for (const auto& d : r.detections) dets += (dets.empty() ? "" : ", ") + d;
    if (r.verdict == scan::Verdict::kInfected) {
      std::fprintf(stderr, "\n*** PUBLISHED TARGET FOUND INFECTED: %s (%s) — this is an incident: run "
                           "`patchgate incident open` and `patchgate downloads` to trace who received it ***\n",
                   EscapeForTerminal(target).c_str(), EscapeForTerminal(dets).c_str());
      log::Error("published target found infected on rescan", {{"target", target}, {"detections", dets}});
      if (store && store->MarkTargetInfected(target, dets).code() == ErrorCode::kNotFound) {
        TargetRecord t;
        t.path = target;
        t.product = target.substr(0, target.find('/'));
        t.sha256 = r.sha256;
        t.length = r.length;
        t.published_at = 0;
        if (store->UpsertTarget(t).ok()) (void)store->MarkTargetInfected(target, dets);
      }
      (void)scan::Quarantine(f.repo, r, (*scanner)->info());
    } else {
      std::fprintf(stderr, "no clean verdict for %s: %s %s\n", EscapeForTerminal(target).c_str(),
                   std::string(scan::VerdictName(r.verdict)).c_str(), EscapeForTerminal(r.error).c_str());
    }
  }
  size_t cached = 0;
  for (const auto& r : *results) cached += r.cached;
  std::printf("rescanned %zu published files (%zu verdicts from the cache) with signatures %s: %zu not clean\n",
              results->size(), cached, (*scanner)->info().db_version.c_str(), bad);
  return ExitFor(*results, exp.refused.size());
}

}  // namespace

PrePublishHookFactory PublishGateHookFactory() {
  return [](const std::string& repo_dir) -> Result<tuf::PrePublishHook> {
    ScanFlags& f = GateFlags();
    scan::ScanOptions o{f.signatures, f.max_file_size, f.jobs, f.timeout, "", nullptr, {}};
    return scan::MakePublishGate(o, repo_dir);
  };
}

uint64_t PublishGateMaxFileSize() { return GateFlags().max_file_size; }

void AddPublishGateFlags(CLI::App* publish) { AddScanFlags(publish, &GateFlags()); }

void RegisterScanCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<ScanFlags>();
  auto* sc = app.add_subcommand("scan", "Scan files and directories with the ClamAV engine; exit 0 only if all are clean");
  sc->add_option("PATH", f->paths, "Files or directories (recursive)")->required();
  AddScanFlags(sc, f.get());
  sc->add_flag("--json", f->json, "JSON output");
  sc->add_option("--store", f->store, "Cache verdicts by (sha256, signature version) in this store")
      ->each([f](const std::string&) { f->use_store = true; });
  sc->final_callback([f, &ctx] { ctx.exit_code = RunScan(*f); });

  auto* re = app.add_subcommand("rescan", "Rescan every published target (after a signature update)");
  re->add_option("DIR", f->repo, "Repository directory")->required();
  AddScanFlags(re, f.get());
  re->add_option("--store", f->store, "Store: cache verdicts and mark infected targets")
      ->each([f](const std::string&) { f->use_store = true; });
  re->final_callback([f, &ctx] { ctx.exit_code = RunRescan(*f); });
}

}  // namespace patchgate::cli
