#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <optional>
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

std::string HexPath(const std::string& path) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(path.size() * 2);
  for (unsigned char c : path) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// One patchgate-scan-worker process: one engine shared by its scanning threads. Requests
// are lines tagged with an id; a reader thread hands each reply to the thread waiting for
// that id. When the process dies, every request in flight fails (an "error" verdict).
class WorkerProcess {
 public:
  ~WorkerProcess() {
    Kill("");
    if (reader_.joinable()) reader_.join();
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
  }

  // Starts the process and waits until its engine is loaded.
  static Result<std::unique_ptr<WorkerProcess>> Start(const ScanOptions& o, const std::string& db_version,
                                                      EngineInfo* info) {
    auto p = std::unique_ptr<WorkerProcess>(new WorkerProcess());
    PG_RETURN_IF_ERROR(p->Spawn(o, db_version));
    PG_RETURN_IF_ERROR(p->AwaitReady(info));
    p->reader_ = std::thread([raw = p.get()] { raw->ReadLoop(); });
    return p;
  }

  int pid() const { return pid_; }
  bool dead() {
    std::lock_guard<std::mutex> l(mu_);
    return dead_;
  }

  Status Send(const std::string& line) {
    std::string l = line + "\n";
    std::lock_guard<std::mutex> w(write_mu_);
    size_t off = 0;
    while (off < l.size()) {
      ssize_t n = ::write(to_, l.data() + off, l.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status(ErrorCode::kScanFailed, "the scan worker is gone (" + Death() + ")");
      off += static_cast<size_t>(n);
    }
    return Status::OK();
  }

  // Sends `line` (a request tagged `id`) and waits for the reply to it. The time limit runs
  // from the moment a scanning thread takes the request ({"id":..,"started":true}, sent for
  // CHECK, which may wait in the worker's queue behind another file), else from the send.
  Result<json> Call(uint64_t id, const std::string& line, int timeout_seconds, bool queued = false) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (dead_) return Status(ErrorCode::kScanFailed, "the scan worker died (" + death_ + ")");
      waiting_[id];
    }
    Status st = Send(line);
    std::unique_lock<std::mutex> l(mu_);
    const auto limit = std::chrono::seconds(timeout_seconds);
    // Queued behind one file at most, which is itself stopped at its own limit.
    auto deadline = std::chrono::steady_clock::now() + (queued ? 2 * limit + std::chrono::seconds(5) : limit);
    bool started = false;
    bool done = false;
    while (st.ok()) {
      done = cv_.wait_until(l, deadline, [&] {
        return dead_ || waiting_[id].reply.has_value() || (waiting_[id].started && !started);
      });
      if (!done || dead_ || waiting_[id].reply.has_value()) break;
      started = true;  // a thread took it: the file's own limit starts now
      deadline = std::chrono::steady_clock::now() + limit;
    }
    std::optional<std::string> reply = std::move(waiting_[id].reply);
    waiting_.erase(id);
    if (reply) {
      json j = json::parse(*reply, nullptr, false);
      if (j.is_discarded()) return Status(ErrorCode::kScanFailed, "garbled reply from the scan worker");
      return j;
    }
    if (dead_) return Status(ErrorCode::kScanFailed, "the scan worker died while scanning (" + death_ + ")");
    if (!st.ok()) return st;
    (void)done;  // neither a reply nor a death: the deadline passed
    return Status(ErrorCode::kTimeout, "the scan did not finish within " + std::to_string(timeout_seconds) + " s");
  }

  // Stops the process at once; `why` is what every request in flight is told.
  void Kill(const std::string& why) {
    std::lock_guard<std::mutex> l(mu_);
    if (!why.empty() && death_.empty()) death_ = why;
    if (pid_ > 0 && !reaped_) ::kill(pid_, SIGKILL);
  }

 private:
  WorkerProcess() = default;

  Status Spawn(const ScanOptions& o, const std::string& db_version) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return Internal("pipe failed");
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return Internal("pipe failed");
    }
    std::string max = std::to_string(o.max_file_size), threads = std::to_string(o.jobs);
    pid_ = ::fork();
    if (pid_ < 0) return Internal("fork failed");
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execl(o.worker_path.c_str(), o.worker_path.c_str(), "--db", o.signatures_dir.c_str(), "--max-file-size",
              max.c_str(), "--db-version", db_version.c_str(), "--threads", threads.c_str(),
              static_cast<char*>(nullptr));
      std::string msg = "{\"ready\":false,\"error\":\"cannot run " + o.worker_path + "\"}\n";
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
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string hello = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        json j = json::parse(hello, nullptr, false);
        if (j.is_discarded() || !j.value("ready", false))
          return Status(ErrorCode::kScanFailed,
                        j.is_discarded() ? "the scan worker did not start" : j.value("error", "scan worker failed"));
        info->engine_version = j.value("engine_version", "");
        info->db_version = j.value("db_version", "");
        info->signatures = j.value("signatures", 0u);
        info->load_seconds = j.value("load_seconds", 0.0);
        return Status::OK();
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status(ErrorCode::kScanFailed, "the scan worker did not start within 120 s");
      pollfd p{from_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
      if (r <= 0) continue;
      char tmp[4096];
      ssize_t n = ::read(from_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Reap();
        return Status(ErrorCode::kScanFailed, "the scan worker did not start (" + death_ + ")");
      }
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  void ReadLoop() {
    char tmp[8192];
    for (;;) {
      size_t start = 0;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
          std::string line = buf_.substr(start, nl - start);
          // The id is the first field of every reply: {"id":"17",...}
          json j = json::parse(line, nullptr, false);
          if (j.is_discarded() || !j.contains("id") || !j["id"].is_string()) continue;
          auto it = waiting_.find(std::stoull(j["id"].get<std::string>()));
          if (it == waiting_.end()) continue;
          if (j.size() == 2 && j.value("started", false)) it->second.started = true;
          else it->second.reply = std::move(line);
        }
        buf_.erase(0, start);
      }
      cv_.notify_all();
      ssize_t n = ::read(from_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf_.append(tmp, static_cast<size_t>(n));
    }
    Reap();
    cv_.notify_all();
  }

  // After EOF: collect the exit status and say how the process ended.
  void Reap() {
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 100 && (r = ::waitpid(pid_, &status, WNOHANG)) == 0; ++i) ::usleep(10000);
    if (r == 0) {  // closed its output but lives on: stop it
      ::kill(pid_, SIGKILL);
      r = ::waitpid(pid_, &status, 0);
    }
    std::lock_guard<std::mutex> l(mu_);
    reaped_ = true;
    dead_ = true;
    if (death_.empty()) {
      if (r == pid_ && WIFSIGNALED(status)) death_ = std::string("killed by signal ") + strsignal(WTERMSIG(status));
      else if (r == pid_) death_ = "exit status " + std::to_string(WEXITSTATUS(status));
      else death_ = "closed its output";
    }
  }

  std::string Death() {
    std::lock_guard<std::mutex> l(mu_);
    return death_.empty() ? "its input is closed" : death_;
  }

  int pid_ = -1, to_ = -1, from_ = -1;
  std::mutex write_mu_;
  std::string buf_;  // bytes read but not yet dispatched: AwaitReady, then the reader thread only
  std::mutex mu_;    // guards everything below
  std::condition_variable cv_;
  struct Pending {
    bool started = false;               // a scanning thread took the request
    std::optional<std::string> reply;  // the final reply
  };
  std::map<uint64_t, Pending> waiting_;
  bool dead_ = false, reaped_ = false;
  std::string death_;
  std::thread reader_;
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
    PG_ASSIGN_OR_RETURN(proc_, WorkerProcess::Start(o_, db_version_, &info_));
    return Status::OK();
  }

  const EngineInfo& info() const override { return info_; }

  Result<std::vector<FileResult>> Scan(const std::vector<std::string>& files) override {
    std::vector<FileResult> results(files.size());
    // Largest files first (results stay in input order): a large file dealt last would
    // leave the other scanning threads idle while one thread finishes it.
    std::vector<std::pair<long long, size_t>> order(files.size());
    for (size_t i = 0; i < files.size(); ++i) {
      struct stat st {};
      order[i] = {::stat(files[i].c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : 0, i};
    }
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::atomic<size_t> next{0}, done{0};
    std::atomic<uint64_t> bytes{0};
    std::vector<std::thread> threads;
    // Without a cache (one CHECK per file, which holds nothing in the worker until a thread
    // takes it) one more request per scanning thread waits in the worker's queue, so a thread
    // that finishes a file starts the next at once instead of waiting for a pipe round trip.
    // With a cache, a file is opened and mapped by SCAN: as many in flight as threads.
    const int in_flight = o_.cache ? o_.jobs : 2 * o_.jobs;
    for (int t = 0; t < in_flight; ++t) {
      threads.emplace_back([&] {
        for (;;) {
          size_t n = next++;
          if (n >= order.size()) return;
          size_t i = order[n].second;
          results[i] = ScanOne(files[i]);
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
    std::lock_guard<std::mutex> l(proc_mu_);
    return {proc_ ? proc_->pid() : -1};
  }

 private:
  // The running worker, or a fresh one when the last one died.
  Result<std::shared_ptr<WorkerProcess>> Process() {
    std::lock_guard<std::mutex> l(proc_mu_);
    if (!proc_ || proc_->dead()) {
      proc_.reset();
      EngineInfo ignored;
      PG_ASSIGN_OR_RETURN(proc_, WorkerProcess::Start(o_, db_version_, &ignored));
    }
    return proc_;
  }

  FileResult ScanOne(const std::string& path) {
    FileResult r;
    r.path = path;
    auto proc = Process();
    if (!proc.ok()) {
      r.error = "scanner restart failed: " + proc.status().message();
      return r;
    }
    WorkerProcess& w = **proc;
    auto fail = [&](const Status& st) {
      r.verdict = Verdict::kError;
      r.error = st.message();
      if (st.code() == ErrorCode::kTimeout)  // a stuck engine cannot be interrupted: replace the process
        w.Kill("stopped: " + path + " took longer than " + std::to_string(o_.timeout_seconds) + " s");
      return r;
    };
    const std::string id = std::to_string(next_id_++);
    // Without a verdict cache nothing is decided between hashing and scanning: one request
    // (CHECK) does both, one round trip per file. With a cache, SCAN returns the hash first.
    const char* op = o_.cache ? "SCAN " : "CHECK ";
    auto first = w.Call(std::stoull(id), op + id + " " + HexPath(path), o_.timeout_seconds, !o_.cache);
    if (!first.ok()) return fail(first.status());
    const json& j = *first;
    if (!o_.cache && j.contains("sha256") && j.contains("verdict")) {
      r.sha256 = j.value("sha256", "");
      r.length = j.value("length", 0ull);
      return ApplyReply(r, j);
    }
    if (j.contains("verdict")) {  // could not even read the file, or it is too large
      r.verdict = ParseVerdict(j.value("verdict", "error"));
      r.error = j.value("error", "");
      if (r.verdict != Verdict::kClean && r.verdict != Verdict::kInfected && r.error.empty())
        r.error = "the engine gave no reason";
      if (r.verdict == Verdict::kClean || r.verdict == Verdict::kInfected) {  // never without a hash
        r.verdict = Verdict::kError;
        r.error = "the scan worker gave a verdict without the file's hash";
      }
      return r;
    }
    r.sha256 = j.value("sha256", "");
    r.length = j.value("length", 0ull);
    if (o_.cache) {
      auto cached = o_.cache->GetScanVerdict(r.sha256, info_.db_version);
      if (cached.ok() && cached->has_value() && (*cached)->verdict == "clean") {
        Status st = w.Send("SKIP " + id);
        if (!st.ok()) return fail(st);
        r.verdict = Verdict::kClean;
        r.cached = true;
        return r;
      }
    }
    auto second = w.Call(std::stoull(id), "GO " + id, o_.timeout_seconds);
    if (!second.ok()) return fail(second.status());
    ApplyReply(r, *second);
    if (o_.cache && (r.verdict == Verdict::kClean || r.verdict == Verdict::kInfected)) {
      std::string dets;
      for (const auto& d : r.detections) dets += (dets.empty() ? "" : ",") + d;
      (void)o_.cache->PutScanVerdict({r.sha256, info_.db_version, std::string(VerdictName(r.verdict)), dets,
                                      info_.engine_version, SystemClock::Get().NowMicros()});
    }
    return r;
  }

  // Fills r's verdict, reason and detections from the worker's reply to GO or CHECK.
  static FileResult& ApplyReply(FileResult& r, const json& v) {
    r.verdict = ParseVerdict(v.value("verdict", "error"));
    r.error = v.value("error", "");
    if (r.verdict != Verdict::kClean && r.verdict != Verdict::kInfected && r.error.empty())
      r.error = "the engine gave no reason";  // never an empty reason
    if (v.contains("detections") && v["detections"].is_array())
      for (const auto& d : v["detections"])
        if (d.is_string()) r.detections.push_back(d.get<std::string>());
    return r;
  }

  ScanOptions o_;
  EngineInfo info_;
  std::string db_version_;
  std::mutex proc_mu_;
  std::shared_ptr<WorkerProcess> proc_;
  std::atomic<uint64_t> next_id_{1};
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
