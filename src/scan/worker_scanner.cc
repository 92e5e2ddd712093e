#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/fs.h"
#include "scan/scanner.h"
#include "scan/signature_version.h"

namespace patchgate::scan {

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kClean: return "clean";
    case Verdict::kInfected: return "infected";
    case Verdict::kUnscannable: return "unscannable";
    case Verdict::kError: return "error";
  }
  return "error";
}

namespace {

using nlohmann::json;

Verdict ParseVerdict(const std::string& s) {
  if (s == "clean") return Verdict::kClean;
  if (s == "infected") return Verdict::kInfected;
  if (s == "unscannable") return Verdict::kUnscannable;
  return Verdict::kError;
}

std::string DefaultWorkerPath() {
  if (const char* env = std::getenv("PATCHGATE_SCAN_WORKER"); env && *env) return env;
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "patchgate-scan-worker";
  buf[n] = 0;
  return DirName(buf) + "/patchgate-scan-worker";
}

// One worker process and the pipes to it.
class Worker {
 public:
  ~Worker() { Kill(); }

  // Spawn, then AwaitReady: workers load their engines in parallel.
  Status Spawn(const ScanOptions& o, const std::string& path, const std::string& db_version) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return Internal("pipe failed");
    std::string max = std::to_string(o.max_file_size);
    pid_ = ::fork();
    if (pid_ < 0) return Internal("fork failed");
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execl(path.c_str(), path.c_str(), "--db", o.signatures_dir.c_str(), "--max-file-size", max.c_str(),
              "--db-version", db_version.c_str(), static_cast<char*>(nullptr));
      std::string msg = "{\"ready\":false,\"error\":\"cannot run " + path + "\"}\n";
      (void)!::write(1, msg.data(), msg.size());
      _exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    return Status::OK();
  }

  Status AwaitReady(EngineInfo* info) {
    auto hello = ReadLine(120);
    if (!hello.ok()) return Status(ErrorCode::kScanFailed, "the scan worker did not start: " + hello.status().message());
    json j = json::parse(*hello, nullptr, false);
    if (j.is_discarded() || !j.value("ready", false))
      return Status(ErrorCode::kScanFailed, j.is_discarded() ? "the scan worker did not start" : j.value("error", "scan worker failed"));
    info->engine_version = j.value("engine_version", "");
    info->db_version = j.value("db_version", "");
    info->signatures = j.value("signatures", 0u);
    return Status::OK();
  }

  Status Start(const ScanOptions& o, const std::string& path, const std::string& db_version, EngineInfo* info) {
    PG_RETURN_IF_ERROR(Spawn(o, path, db_version));
    return AwaitReady(info);
  }

  bool alive() const { return pid_ > 0; }
  int pid() const { return pid_; }

  Status WriteLine(const std::string& s) {
    std::string l = s + "\n";
    size_t off = 0;
    while (off < l.size()) {
      ssize_t n = ::write(to_, l.data() + off, l.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status(ErrorCode::kScanFailed, "the scan worker is gone");
      off += static_cast<size_t>(n);
    }
    return Status::OK();
  }

  Result<std::string> ReadLine(int timeout_seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return Status(ErrorCode::kTimeout, "the scan did not finish within " + std::to_string(timeout_seconds) + " s");
      pollfd p{from_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char tmp[4096];
      ssize_t n = ::read(from_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status(ErrorCode::kScanFailed, "the scan worker died (" + ExitDescription() + ")");
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  void Kill() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    to_ = from_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
    buf_.clear();
  }

 private:
  std::string ExitDescription() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
      return "exit status " + std::to_string(WEXITSTATUS(status));
    }
    return "closed its output";
  }

  int pid_ = -1, to_ = -1, from_ = -1;
  std::string buf_;
};

class WorkerScanner final : public Scanner {
 public:
  explicit WorkerScanner(ScanOptions o) : o_(std::move(o)) {
    if (o_.jobs <= 0) o_.jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (o_.worker_path.empty()) o_.worker_path = DefaultWorkerPath();
  }

  Status Init() {
    struct stat st {};
    if (o_.signatures_dir.empty() || ::stat(o_.signatures_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Status(ErrorCode::kScanFailed, "signature directory '" + o_.signatures_dir +
                                                "' does not exist: pass --signatures DIR (the freshclam database directory)");
    if (::access(o_.worker_path.c_str(), X_OK) != 0)
      return Status(ErrorCode::kScanFailed, "scan worker " + o_.worker_path + " is missing: build patchgate-scan-worker");
    db_version_ = SignatureSetVersion(o_.signatures_dir);  // once, not once per worker
    workers_.resize(static_cast<size_t>(o_.jobs));
    for (auto& w : workers_) {
      w = std::make_unique<Worker>();
      PG_RETURN_IF_ERROR(w->Spawn(o_, o_.worker_path, db_version_));
    }
    for (auto& w : workers_) PG_RETURN_IF_ERROR(w->AwaitReady(&info_));
    return Status::OK();
  }

  const EngineInfo& info() const override { return info_; }

  Result<std::vector<FileResult>> Scan(const std::vector<std::string>& files) override {
    std::vector<FileResult> results(files.size());
    std::atomic<size_t> next{0}, done{0};
    std::atomic<uint64_t> bytes{0};
    std::vector<std::thread> threads;
    for (size_t wi = 0; wi < workers_.size(); ++wi) {
      threads.emplace_back([&, wi] {
        for (;;) {
          size_t i = next++;
          if (i >= files.size()) return;
          results[i] = ScanOne(wi, files[i]);
          bytes += results[i].length;
          ++done;
          if (o_.progress) o_.progress(done.load(), bytes.load());
        }
      });
    }
    for (auto& t : threads) t.join();
    return results;
  }

  std::vector<int> Pids() {
    std::vector<int> p;
    for (auto& w : workers_) p.push_back(w->pid());
    return p;
  }

 private:
  FileResult ScanOne(size_t wi, const std::string& path) {
    FileResult r;
    r.path = path;
    auto& w = workers_[wi];
    if (!w->alive()) {
      EngineInfo ignored;
      Status st = w->Start(o_, o_.worker_path, db_version_, &ignored);
      if (!st.ok()) {
        r.error = "scanner restart failed: " + st.message();
        return r;
      }
    }
    auto fail = [&](const Status& st) {
      r.verdict = Verdict::kError;
      r.error = st.message();
      w->Kill();  // a fresh worker for the next file
      return r;
    };
    Status st = w->WriteLine("SCAN " + path);
    if (!st.ok()) return fail(st);
    auto first = w->ReadLine(o_.timeout_seconds);
    if (!first.ok()) return fail(first.status());
    json j = json::parse(*first, nullptr, false);
    if (j.is_discarded()) return fail(Status(ErrorCode::kScanFailed, "garbled reply from the scan worker"));
    if (j.contains("verdict")) {  // could not even read the file
      r.verdict = ParseVerdict(j.value("verdict", "error"));
      r.error = j.value("error", "");
      return r;
    }
    r.sha256 = j.value("sha256", "");
    r.length = j.value("length", 0ull);
    if (o_.cache) {
      auto cached = o_.cache->GetScanVerdict(r.sha256, info_.db_version);
      if (cached.ok() && cached->has_value() && (*cached)->verdict == "clean") {
        st = w->WriteLine("SKIP");
        if (!st.ok()) return fail(st);
        r.verdict = Verdict::kClean;
        r.cached = true;
        return r;
      }
    }
    st = w->WriteLine("GO");
    if (!st.ok()) return fail(st);
    auto second = w->ReadLine(o_.timeout_seconds);
    if (!second.ok()) return fail(second.status());
    json v = json::parse(*second, nullptr, false);
    if (v.is_discarded()) return fail(Status(ErrorCode::kScanFailed, "garbled reply from the scan worker"));
    r.verdict = ParseVerdict(v.value("verdict", "error"));
    r.error = v.value("error", "");
    if (v.contains("detections") && v["detections"].is_array())
      for (const auto& d : v["detections"]) r.detections.push_back(d.get<std::string>());
    if (o_.cache && (r.verdict == Verdict::kClean || r.verdict == Verdict::kInfected)) {
      std::string dets;
      for (const auto& d : r.detections) dets += (dets.empty() ? "" : ",") + d;
      (void)o_.cache->PutScanVerdict({r.sha256, info_.db_version, std::string(VerdictName(r.verdict)), dets,
                                      info_.engine_version, SystemClock::Get().NowMicros()});
    }
    return r;
  }

  ScanOptions o_;
  EngineInfo info_;
  std::string db_version_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

bool Under(const std::string& path, const std::vector<std::string>& roots) {
  for (const auto& r : roots) {
    if (path == r) return true;
    std::string prefix = r.back() == '/' ? r : r + "/";
    if (path.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

void Walk(const std::string& path, const std::vector<std::string>& roots, Expansion* out, int depth) {
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) {
    out->refused.emplace_back(path, std::string("cannot read: ") + std::strerror(errno));
    return;
  }
  if (S_ISLNK(lst.st_mode)) {
    char resolved[PATH_MAX];
    if (!::realpath(path.c_str(), resolved)) {
      out->refused.emplace_back(path, "dangling symlink");
      return;
    }
    if (!Under(resolved, roots)) {
      out->refused.emplace_back(path, std::string("symlink points outside the input (to ") + resolved + "); not followed");
      return;
    }
    return;  // inside the input: its target is scanned on its own
  }
  if (S_ISDIR(lst.st_mode)) {
    if (depth > 64) {
      out->refused.emplace_back(path, "directory nesting too deep");
      return;
    }
    DIR* d = ::opendir(path.c_str());
    if (!d) {
      out->refused.emplace_back(path, std::string("cannot list directory: ") + std::strerror(errno));
      return;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) Walk(JoinPath(path, n), roots, out, depth + 1);
    return;
  }
  if (!S_ISREG(lst.st_mode)) {
    out->refused.emplace_back(path, "not a regular file");
    return;
  }
  out->files.push_back(path);
}

}  // namespace

Result<std::unique_ptr<Scanner>> NewWorkerScanner(const ScanOptions& options) {
  // A worker that died leaves a pipe with no reader: writing to it must fail with EPIPE
  // (reported as an error verdict), not kill this process.
  ::signal(SIGPIPE, SIG_IGN);
  auto s = std::make_unique<WorkerScanner>(options);
  PG_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Scanner>(std::move(s));
}

Expansion ExpandInputs(const std::vector<std::string>& paths) {
  Expansion out;
  std::vector<std::string> roots;
  for (const auto& p : paths) {
    char resolved[PATH_MAX];
    if (::realpath(p.c_str(), resolved)) roots.emplace_back(resolved);
  }
  for (const auto& p : paths) {
    char resolved[PATH_MAX];
    if (!::realpath(p.c_str(), resolved)) {
      out.refused.emplace_back(p, std::string("cannot read: ") + std::strerror(errno));
      continue;
    }
    Walk(resolved, roots, &out, 0);
  }
  return out;
}

std::vector<int> WorkerPidsForTest(Scanner& scanner) { return static_cast<WorkerScanner&>(scanner).Pids(); }

}  // namespace patchgate::scan
