// The integrity watch of a node's served tree (`--watch` on `serve` and `mirror`):
// inotify on DIR/metadata and DIR/targets (every subdirectory) plus a periodic full
// re-hash (rate-limited I/O). A changed, added or removed file is moved to
// DIR/.patchgate/quarantine/ (kept for forensics) and never served again (the server also
// verifies every target against its signed hash before sending it), restored through
// `restore` when one is given (a mirror re-fetches it from upstream, verified), and an
// incident is opened: node, cause "integrity", the files, and the window from each file's
// last verified-good time to the detection.
//
// What a file must hold comes from `expected` (the mirror's served snapshot, or the
// origin's verified catalogue). A file appearing that is not expected is adopted only when
// it proves itself: a target named "<sha256>.<name>" whose bytes hash to that sha256, or
// metadata that `expected` lists after a refresh (the origin publishing); anything else
// is quarantined after a short grace (a publisher's temporary file is gone by then).
//
// Threading: two internal threads (events, periodic verify); the public methods are
// thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/status.h"
#include "mirror/sync.h"
#include "store/store.h"

namespace patchgate::mirror {

struct WatchOptions {
  std::string dir;
  std::string node;
  int verify_interval_seconds = 600;                 // full re-hash period
  uint64_t verify_bytes_per_second = 64ull << 20;    // I/O cap of the full re-hash
  int unknown_grace_ms = 2000;                       // before an unexpected new file is judged
};

struct WatchHooks {
  // The files the tree must hold now (rel path -> content). Called at start and whenever
  // an unexpected file appears.
  std::function<std::map<std::string, ExpectedFile>()> expected;
  // Puts a verified copy of `rel` back. Empty: no restore (the origin holds the only copy).
  std::function<Status(const std::string& rel)> restore;
  Store* store = nullptr;  // incidents and node quarantine records
};

struct WatchStatus {
  bool alive = false;
  int64_t last_full_verify_at = 0;
  bool last_full_verify_ok = false;
  int64_t quarantine_pending = 0;  // quarantined and not restored
  int64_t incidents_opened = 0;
};

class Watch {
 public:
  Watch(WatchOptions options, WatchHooks hooks);
  ~Watch();
  // Verifies the whole tree once (the first full verification), then starts watching.
  Status Start();
  void Stop();
  // A legitimate write is about to put `rel` in place with this content (the sync).
  void Expect(const std::string& rel, const ExpectedFile& e);
  WatchStatus status() const;

 private:
  struct Known {
    ExpectedFile e;
    int64_t last_good = 0;  // micros: last time its bytes were verified
    // stat identity of the verified bytes: re-hash only when it changes
    int64_t ino = -1, size = -1, mtime_ns = -1, ctime_ns = -1;
  };
  struct Violation {
    std::string rel;
    std::string what;  // "changed" | "added" | "removed"
    std::string actual_sha256;
    int64_t last_good = 0;
    std::string target_path;
  };

  void EventLoop();
  void VerifyLoop();
  void AddWatches(const std::string& rel_dir);
  // Checks one path; appends a violation when it is bad. `hash_always` ignores the stat identity.
  void Check(const std::string& rel, bool hash_always, std::vector<Violation>* out);
  void Respond(std::vector<Violation> v);
  int64_t GraceMicros(const std::string& rel) const;
  bool FullVerify();

  WatchOptions o_;
  WatchHooks h_;
  mutable std::mutex mu_;
  std::map<std::string, Known> known_;
  std::map<int, std::string> wd_dirs_;  // inotify wd -> rel dir
  std::map<std::string, int64_t> unknown_since_;  // unexpected new files in their grace
  int ifd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> alive_{false};
  std::atomic<bool> full_verify_now_{false};
  std::atomic<int64_t> last_full_at_{0}, pending_{0}, incidents_{0};
  std::atomic<bool> last_full_ok_{false};
  std::thread events_, verifier_;
  std::mutex wake_mu_, respond_mu_;
  std::condition_variable wake_;
};

}  // namespace patchgate::mirror
