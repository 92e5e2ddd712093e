// patchgate-scan-worker: the only patchgate process that loads libclamav. It loads and
// compiles the signature databases ONCE into one engine, which its --threads scanning
// threads share (the engine is read-only after compilation, as in clamd). A crash inside a
// libclamav parser kills this process only; the parent sees EOF, reports "error" (never
// "clean") for every file in flight and starts a fresh worker.
//
// Protocol: one line per request and per reply; every reply carries the request's id.
//   SCAN <id> <hex path>  open the file once and hash it through a small buffer; reply
//                         {"id":..,"sha256":..,"length":..}, or a final
//                         {"id":..,"verdict":"error"|"unscannable","error":..}
//   GO <id>               scan the descriptor opened by SCAN <id>; reply
//                         {"id":..,"verdict":..,"detections":[..],"error":..}
//   SKIP <id>             the parent had a cached verdict: close it; no reply.
//   CHECK <id> <hex path> SCAN and GO in one request, when the parent keeps no verdict cache:
//                         one reply {"id":..,"sha256":..,"length":..,"verdict":..,...}
//                         (or the final error of SCAN). One round trip per file instead of two.
//                         When a scanning thread takes it, {"id":..,"started":true} first
//                         (it may wait in the queue behind another file).
// The path is hex-encoded so that any file name (newlines, bytes that are not UTF-8)
// travels intact. Startup reply: {"ready":true,"engine_version":..,"db_version":..,
// "signatures":N,"load_seconds":S (libclamav init, signature load and compile)} or {"ready":false,"error":..} (then exit 2).
//
// Memory: a file is never mapped whole. Small files (up to kMapWhole) are mapped once,
// hashed and scanned from that one mapping; larger ones are hashed through a 4 MiB window
// of the file (mapped, hashed, unmapped, then the next one) and scanned through libclamav's paged map of the descriptor, which keeps only a window
// of the file in memory. Either way the file's identity (size, times, inode) is checked
// after the scan: a file that changed while it was read is an error, not a verdict.
#include <clamav.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "crypto/hash.h"
#include "scan/signature_version.h"

namespace {

using nlohmann::json;

// libclamav's own ceiling: it cannot scan a file of 2 GiB or more, whatever the limits say.
constexpr long long kEngineMaxFile = 2147483647LL;
// Files up to this size are mapped whole (one pass serves hash and scan); larger ones are
// read through a bounded window.
constexpr long long kMapWhole = 8LL << 20;
// Larger files are hashed through a window of this many bytes, mapped one at a time.
constexpr size_t kHashWindow = 4 << 20;

std::mutex g_out_mu;

void Reply(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s += '\n';
  std::lock_guard<std::mutex> l(g_out_mu);
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(1, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);  // the parent is gone
    off += static_cast<size_t>(n);
  }
}

bool HexDecode(const std::string& hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      char c = hex[i + static_cast<size_t>(k)];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

// Why a heuristic-only detection means "cannot vouch for it", in words.
std::string Explain(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    std::string why;
    if (n.find("MaxFileSize") != std::string::npos) why = "the file is larger than the engine's file-size limit";
    else if (n.find("MaxScanSize") != std::string::npos)
      why = "the scan stopped at the scan-size limit (4 x --max-file-size) before the end of the content";
    else if (n.find("MaxRecursion") != std::string::npos) why = "archives nested deeper than the engine's limit (32)";
    else if (n.find("MaxFiles") != std::string::npos) why = "an archive holds more files than the engine's limit";
    else if (n.find("Encrypted") != std::string::npos) why = "encrypted content that the engine cannot read";
    else why = "a scan limit was reached";
    out += (out.empty() ? "" : "; ") + n + ": " + why;
  }
  return out + ", so the file cannot be vouched for";
}

struct Detections {
  std::vector<std::string> names;
};

void OnVirus(int, const char* name, void* ctx) {
  if (ctx && name) static_cast<Detections*>(ctx)->names.emplace_back(name);
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

// A file opened by SCAN and waiting for GO or SKIP.
struct Opened {
  int fd = -1;
  struct stat st {};
  std::string path;
  const char* map = nullptr;  // the whole file, when it is small
  size_t len = 0;
  ~Opened() {
    if (map) ::munmap(const_cast<char*>(map), len);
    if (fd >= 0) ::close(fd);
  }
};

struct Task {
  enum Kind { kScan, kGo, kCheck } kind;
  std::string id;
  std::string path;  // for kScan
};

class Worker {
 public:
  Worker(cl_engine* engine, long long max_file) : engine_(engine), max_file_(max_file) {
    opts_.general = CL_SCAN_GENERAL_ALLMATCHES | CL_SCAN_GENERAL_HEURISTICS;
    opts_.parse = ~0u;  // every parser: archives, packers, documents, mail, images...
    opts_.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX | CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE |
                      CL_SCAN_HEURISTIC_BROKEN | CL_SCAN_HEURISTIC_ENCRYPTED_DOC;
  }

  void Run(int threads) {
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back([this] { Loop(); });
    std::string line;
    char buf[8192];
    std::string in;
    for (;;) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = in.find('\n', start)) != std::string::npos; start = nl + 1)
        Dispatch(in.substr(start, nl - start));
      in.erase(0, start);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    for (auto& t : pool) t.join();
  }

 private:
  void Dispatch(const std::string& line) {
    auto sp1 = line.find(' ');
    std::string op = line.substr(0, sp1);
    std::string rest = sp1 == std::string::npos ? "" : line.substr(sp1 + 1);
    auto sp2 = rest.find(' ');
    std::string id = rest.substr(0, sp2);
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
      Reply({{"verdict", "error"}, {"error", "malformed request"}});
      return;
    }
    if (op == "SKIP") {
      std::lock_guard<std::mutex> l(mu_);
      opened_.erase(id);
      return;
    }
    Task t;
    if (op == "SCAN" && sp2 != std::string::npos && HexDecode(rest.substr(sp2 + 1), &t.path)) t.kind = Task::kScan;
    else if (op == "CHECK" && sp2 != std::string::npos && HexDecode(rest.substr(sp2 + 1), &t.path))
      t.kind = Task::kCheck;
    else if (op == "GO") t.kind = Task::kGo;
    else {
      Reply({{"id", id}, {"verdict", "error"}, {"error", "unknown request"}});
      return;
    }
    t.id = id;
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(t));
    }
    cv_.notify_one();
  }

  void Loop() {
    for (;;) {
      Task t;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;
        t = std::move(queue_.front());
        queue_.pop_front();
      }
      if (t.kind == Task::kScan) {
        json head;
        if (auto f = Open(t, &head)) {
          {
            std::lock_guard<std::mutex> l(mu_);
            opened_[t.id] = std::move(f);
          }
          Reply(head);
        }
      } else if (t.kind == Task::kCheck) {
        Reply({{"id", t.id}, {"started", true}});  // the parent's time limit for it starts now
        json head;
        if (auto f = Open(t, &head)) Scan(t, std::move(f), std::move(head));
      } else {
        std::unique_ptr<Opened> f;
        {
          std::lock_guard<std::mutex> l(mu_);
          auto it = opened_.find(t.id);
          if (it != opened_.end()) {
            f = std::move(it->second);
            opened_.erase(it);
          }
        }
        Scan(t, std::move(f), json::object({{"id", t.id}}));
      }
    }
  }

  // Opens and hashes the file. On success returns it and sets *head to
  // {"id","sha256","length"}; otherwise replies the final error itself and returns null.
  std::unique_ptr<Opened> Open(const Task& t, json* head) {
    auto f = std::make_unique<Opened>();
    f->path = t.path;
    f->fd = ::open(t.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f->fd < 0 || ::fstat(f->fd, &f->st) != 0) {
      Reply({{"id", t.id}, {"verdict", "error"}, {"error", "cannot read " + t.path + ": " + std::strerror(errno)}});
      return nullptr;
    }
    if (!S_ISREG(f->st.st_mode)) {
      Reply({{"id", t.id}, {"verdict", "error"}, {"error", t.path + " is not a regular file"}});
      return nullptr;
    }
    long long size = f->st.st_size;
    if (size > kEngineMaxFile) {
      Reply({{"id", t.id}, {"verdict", "unscannable"},
             {"error", t.path + " is " + std::to_string(size) +
                           " bytes: the ClamAV engine cannot scan files of 2 GiB (2147483648 bytes) or more, so it "
                           "cannot be vouched for; publish it in smaller parts"}});
      return nullptr;
    }
    if (size > max_file_) {
      Reply({{"id", t.id}, {"verdict", "unscannable"},
             {"error", t.path + " is " + std::to_string(size) + " bytes, over the scan limit of " +
                           std::to_string(max_file_) + " (--max-file-size)"}});
      return nullptr;
    }
    f->len = static_cast<size_t>(size);
    auto hasher = patchgate::Hasher::Create("sha256");
    if (size > 0 && size <= kMapWhole) {
      void* p = ::mmap(nullptr, f->len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, f->fd, 0);
      if (p == MAP_FAILED) {
        Reply({{"id", t.id}, {"verdict", "error"}, {"error", "cannot map " + t.path + ": " + std::strerror(errno)}});
        return nullptr;
      }
      f->map = static_cast<const char*>(p);
      hasher->Update(f->map, f->len);
    } else if (size > 0) {
      // Hashed through a sliding window of the file mapped kHashWindow bytes at a time (no
      // copy into a buffer; the window is unmapped before the next one), so the file is
      // never mapped whole.
      ::posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      for (size_t off = 0; off < f->len;) {
        size_t n = std::min(kHashWindow, f->len - off);
        void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, f->fd, static_cast<off_t>(off));
        if (p == MAP_FAILED) {
          Reply({{"id", t.id}, {"verdict", "error"}, {"error", "cannot read " + t.path + ": " + std::strerror(errno)}});
          return nullptr;
        }
        hasher->Update(static_cast<const char*>(p), n);
        ::munmap(p, n);
        off += n;
      }
    }
    *head = {{"id", t.id}, {"sha256", hasher->FinalHex()}, {"length", f->len}};
    return f;
  }

  // Scans an opened file and replies `head` (the id, and for CHECK the hash) with the verdict.
  void Scan(const Task& t, std::unique_ptr<Opened> f, json head) {
    auto reply = [&](std::initializer_list<std::pair<const char*, json>> fields) {
      for (const auto& [k, v] : fields) head[k] = v;
      Reply(head);
    };
    if (!f) {
      reply({{"verdict", "error"}, {"error", "nothing to scan"}});
      return;
    }
    Detections det;
    const char* virname = nullptr;
    unsigned long scanned = 0;
    cl_error_t r;
    if (f->map || f->len == 0) {
      cl_fmap_t* map = cl_fmap_open_memory(f->map ? f->map : "", f->len);
      r = cl_scanmap_callback(map, f->path.c_str(), &virname, &scanned, engine_, &opts_, &det);
      cl_fmap_close(map);
    } else {
      r = cl_scandesc_callback(f->fd, f->path.c_str(), &virname, &scanned, engine_, &opts_, &det);
    }
    struct stat after {};
    if (::fstat(f->fd, &after) != 0 || !SameFile(f->st, after)) {
      reply({{"verdict", "error"},
             {"error", f->path + " changed while it was being scanned: no verdict; scan it again"}});
      return;
    }
    if (r == CL_VIRUS) {
      if (det.names.empty() && virname) det.names.emplace_back(virname);
      bool heuristic_only = std::all_of(det.names.begin(), det.names.end(), [](const std::string& n) {
        return n.rfind("Heuristics.Limits", 0) == 0 || n.rfind("Heuristics.Encrypted", 0) == 0;
      });
      if (heuristic_only)
        reply({{"verdict", "unscannable"}, {"detections", det.names}, {"error", Explain(det.names)}});
      else
        reply({{"verdict", "infected"}, {"detections", det.names}});
    } else if (r == CL_CLEAN) {
      reply({{"verdict", "clean"}});
    } else {
      reply({{"verdict", "error"}, {"error", std::string("libclamav: ") + cl_strerror(r)}});
    }
  }

  cl_engine* engine_;
  long long max_file_;
  cl_scan_options opts_{};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool closed_ = false;
  std::map<std::string, std::unique_ptr<Opened>> opened_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string db_dir, db_version;
  long long max_file = 512LL * 1024 * 1024;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--db" && i + 1 < argc) db_dir = argv[++i];
    else if (a == "--max-file-size" && i + 1 < argc) max_file = std::atoll(argv[++i]);
    else if (a == "--db-version" && i + 1 < argc) db_version = argv[++i];  // computed once by the parent
    else if (a == "--threads" && i + 1 < argc) threads = std::clamp(std::atoi(argv[++i]), 1, 256);
  }
  if (db_dir.empty()) {
    Reply({{"ready", false},
           {"error", "usage: patchgate-scan-worker --db DIR [--max-file-size BYTES] [--db-version ID] [--threads N]"}});
    return 2;
  }
  const auto load_start = std::chrono::steady_clock::now();  // engine load: init, signatures, compile
  cl_error_t rc = cl_init(CL_INIT_DEFAULT);
  if (rc != CL_SUCCESS) {
    Reply({{"ready", false}, {"error", std::string("libclamav init failed: ") + cl_strerror(rc)}});
    return 2;
  }
  {
    DIR* d = ::opendir(db_dir.c_str());
    if (!d) {
      Reply({{"ready", false}, {"error", "cannot open signature directory " + db_dir + ": " + std::strerror(errno)}});
      return 2;
    }
    bool any = false;
    while (dirent* e = ::readdir(d)) any |= e->d_name[0] != '.';
    ::closedir(d);
    if (!any) {
      Reply({{"ready", false}, {"error", "signature directory " + db_dir +
                                             " is empty: an empty signature set cannot vouch for anything"}});
      return 2;
    }
  }
  cl_engine* engine = cl_engine_new();
  unsigned int sigs = 0;
  rc = cl_load(db_dir.c_str(), engine, &sigs, CL_DB_STDOPT);
  if (rc != CL_SUCCESS) {
    Reply({{"ready", false}, {"error", "cannot load signatures from " + db_dir + ": " + cl_strerror(rc) +
                                           " (a malformed signature file?)"}});
    return 2;
  }
  if (sigs == 0) {
    Reply({{"ready", false}, {"error", "no signatures loaded from " + db_dir +
                                           ": an empty signature directory cannot vouch for anything"}});
    return 2;
  }
  // Limits raised to the largest artifact the repository accepts (the engine itself stops
  // below 2 GiB); what exceeds them is reported by the EXCEEDS_MAX heuristic, which blocks.
  long long engine_max = std::min(max_file, kEngineMaxFile);
  cl_engine_set_num(engine, CL_ENGINE_MAX_FILESIZE, engine_max);
  cl_engine_set_num(engine, CL_ENGINE_MAX_SCANSIZE, engine_max * 4);
  cl_engine_set_num(engine, CL_ENGINE_MAX_RECURSION, 32);
  cl_engine_set_num(engine, CL_ENGINE_MAX_FILES, 100000);
  rc = cl_engine_compile(engine);
  if (rc != CL_SUCCESS) {
    Reply({{"ready", false}, {"error", std::string("cannot compile the signature engine: ") + cl_strerror(rc)}});
    return 2;
  }
  cl_engine_set_clcb_virus_found(engine, OnVirus);
  if (db_version.empty()) db_version = patchgate::scan::SignatureSetVersion(db_dir);
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  Reply({{"ready", true}, {"engine_version", cl_retver()}, {"db_version", db_version}, {"signatures", sigs},
         {"threads", threads}, {"load_seconds", load_seconds}});
  Worker(engine, max_file).Run(threads);
  // The engine is not freed: the process ends here and the kernel reclaims it at once
  // (freeing a large compiled engine page by page takes longer than the scans).
  return 0;
}
