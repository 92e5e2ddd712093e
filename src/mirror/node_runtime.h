// What every node of a chain runs beside its Server (origin `serve` and `mirror`): node
// authentication for downstream mirrors and their sync records, the heartbeat with its
// compliance fields every few seconds, the node's own fence decision from the policy, the
// optional AV scan of its own tree (through the isolated scan worker: libclamav is never
// loaded in this process), the optional integrity watch, and the /metrics lines with
// every node's compliance state.
// Threading: Start() launches the background threads; Stop() joins them. Hooks() may be
// called once, before the Server is created.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

#include "mirror/sync.h"
#include "mirror/watch.h"
#include "server/server.h"
#include "store/node_registry.h"
#include "store/store.h"

namespace patchgate::mirror {

struct NodeOptions {
  std::string name;
  std::string role = "origin";  // origin | mirror
  std::string upstream;
  std::string dir;
  std::string store_url;
  bool tls = false;
  bool watch = false;
  int verify_interval_seconds = 600;
  std::string signatures_dir;  // empty: no scanner
  int scan_interval_seconds = 3600;
  int heartbeat_seconds = 5;
};

class NodeRuntime {
 public:
  // `store` takes incidents and quarantine records; `syncer` is the mirror's (null on the
  // origin). Both must outlive the runtime.
  static Result<std::unique_ptr<NodeRuntime>> Create(const NodeOptions& options, Store* store, Syncer* syncer);
  ~NodeRuntime();

  // The hooks for ServerOptions::chain.
  server::ChainHooks Hooks();
  // Starts the watch (when asked: its first full verification runs here), the scanner and
  // the heartbeat.
  Status Start();
  void Stop();

  // For the mirror's sync loop: the outcome of the last pass (empty error: good).
  void ReportSync(bool ok, const std::string& error);
  NodeRegistry* registry() { return registry_.get(); }
  Watch* watch() { return watch_.get(); }
  bool fenced() const { return fenced_.load(); }

 private:
  NodeRuntime(NodeOptions o, Store* store, Syncer* syncer, std::unique_ptr<NodeRegistry> reg);
  void HeartbeatLoop();
  void ScanLoop();
  void FlushSyncs();
  // Writes the queued refusals: a key's first refusal at the next flush, the repeats of the
  // same minute folded into one row written when that minute is over (or at Stop).
  void FlushRefusals(bool all);
  Status Beat();

  NodeOptions o_;
  Store* store_;
  Syncer* syncer_;
  std::unique_ptr<NodeRegistry> registry_;
  std::unique_ptr<Watch> watch_;
  std::atomic<bool> fenced_{false};
  std::atomic<bool> stop_{false};
  std::thread heartbeat_, scanner_;
  std::mutex mu_;
  std::condition_variable wake_;
  // sync records waiting to be written (batched: one transaction per heartbeat tick)
  std::map<std::pair<std::string, std::string>, SyncRecord> pending_syncs_;
  // Customer refusals waiting to be written, by (user id, target, reason); at most
  // kMaxPendingRefusals keys (more are counted and dropped: a client cannot grow memory).
  struct PendingRefusal {
    RefusalRecord r;
    int64_t last_written = 0;  // when the previous row of this key was written (0: none this minute)
    bool queued = false;       // r holds refusals not written yet
  };
  std::map<std::tuple<int64_t, std::string, std::string>, PendingRefusal> refusals_;
  int64_t refusals_dropped_ = 0;
  // node-token answers reused for 1 s
  std::map<std::string, std::pair<int64_t, Result<std::string>>> auth_cache_;
  std::string metrics_text_;
  bool upstream_ok_ = true;
  std::string upstream_error_;
  int64_t behind_since_ = 0;
  bool scanner_loaded_ = false;
  int64_t signature_time_ = 0;  // seconds since the epoch of the newest signature file
  int64_t scan_infected_ = 0;
};

}  // namespace patchgate::mirror
