// The mirror's sync engine: pulls a repository from its upstream (the origin or another
// mirror) into DIR with the client's TUF workflow (client::Updater: root chain from the
// trusted root, rollback, freeze and mix-and-match protection), then fetches every target
// of the new snapshot that DIR does not hold, by hash, in parallel and resumable (partial
// files kept under DIR/.patchgate/staging), checks length and hashes while streaming, and
// only then switches: targets first, versioned metadata next, timestamp.json last, each
// by rename. A customer never sees metadata whose targets are not present and verified.
//
// DIR keeps the repository's public layout (metadata/, targets/) so nginx or a CDN can
// serve it too; the mirror's private state lives in DIR/.patchgate/ (trusted metadata,
// staging, quarantine), which is never served. No signing key is ever fetched or held.
//
// A pass in progress writes nothing into DIR. Targets roles are verified one after the
// other (a few at a time) and, as soon as one is, the targets it lists that DIR lacks are
// fetched, by hash, while the next roles are still being fetched and verified. Each is
// written under its final name into the pass's staging tree DIR/.patchgate/staging/next
// (DIR's layout, never served), hashed while it arrives, and kept only if its length and
// hashes match the verified role; each verified targets role goes there too. Only when
// EVERY role of the new snapshot is verified and EVERY target it lists is present and
// verified does that tree enter DIR (merged by rename: a folder DIR lacks, e.g. every
// folder of a first sync, moves in one rename), and then the snapshot's other metadata,
// all named by no served timestamp.json yet. A pass that fails (a role that does not
// verify, a target that does not match) leaves DIR as it was; its verified files stay in
// the staging tree (a later pass re-hashes any file it finds there before using it, and
// resumes partial ones) and are removed by the next switch when it does not need them.
//
// Durability. No file is fsynced on its own on the way (an fdatasync costs milliseconds
// per file on a plain disk: a sync of 30,000 targets would wait minutes for it). Once the
// files are in DIR, one syncfs(2) of DIR's file system makes every byte of the pass
// durable (a flusher thread calls it every 200 ms while the targets arrive, so the last
// one has little left to write), and only then is timestamp.json written, fsynced and
// renamed, and its directory fsynced: the switch.
// What a crash leaves:
//  - before that syncfs returned: DIR's timestamp.json still names the old snapshot, whose
//    files were all durable at its own switch. Files of the unfinished pass may be torn
//    (after a power cut, any content under a right name). None is trusted: on restart,
//    Open() re-hashes every target of the served snapshot against its verified metadata
//    and drops any versioned metadata file newer than what the served snapshot names
//    (LoadServed); the next pass hashes any file it finds under targets/ that the served
//    snapshot does not name (and any file in the staging tree) before counting it as
//    present, re-hashes staged partial files before resuming them, and re-verifies the
//    trusted copies of roles it reuses (signature, version). A torn file is fetched again.
//  - after the syncfs: every file of the new snapshot is on disk before timestamp.json
//    names it; a crash before timestamp.json's rename leaves the old one.
// So a customer never sees metadata whose targets are not durable and verified on this node.
//
// Upstream serving tampered, rolled-back or mismatching data: SyncOnce() returns the
// error, nothing of the bad pass is exposed, and DIR keeps the last good snapshot.
// Threading: SyncOnce() and Restore() may be called from different threads; they are
// serialised internally.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace patchgate::client {
class Fetcher;
class WalkMemory;
}

namespace patchgate::mirror {

class TimestampPoller;

struct SyncOptions {
  std::string upstream;   // base URL of the upstream node, e.g. http://127.0.0.1:8443
  std::string root_file;  // the trusted root to start the chain from (--root)
  std::string data_dir;   // DIR
  std::string node_token; // sent as Authorization: Bearer <token>
  int parallel = 8;       // concurrent target (and metadata) downloads
  int connect_timeout_seconds = 5;
  int low_speed_seconds = 20;  // slow-retrieval defence per transfer
  // Tests: where every fetcher of the Syncer comes from (empty: the client's HTTP fetcher
  // for `upstream` with the node token). The poll of timestamp.json is then a plain GET
  // through one of them.
  std::function<std::unique_ptr<client::Fetcher>()> make_fetcher;
};

// What a file in DIR must hold: by the path relative to DIR ("targets/x/<sha>.y",
// "metadata/3.snapshot.json").
struct ExpectedFile {
  std::string sha256;
  uint64_t length = 0;
  std::string target_path;  // the TUF target path ("x/y"), empty for metadata
};

struct SyncPass {
  bool changed = false;  // a new snapshot was switched to
  int64_t snapshot_version = 0;
  int64_t upstream_snapshot_version = 0;
  size_t targets_fetched = 0;
  uint64_t bytes_fetched = 0;
};

class Syncer {
 public:
  explicit Syncer(SyncOptions options, const Clock& clock = SystemClock::Get());
  ~Syncer();

  // Prepares DIR (creating it and the trusted root from --root if needed) and loads what
  // DIR serves already (a restarted mirror keeps serving its last good snapshot).
  Status Open();

  // One pass. Cheap when upstream's timestamp.json is unchanged: one conditional GET on a
  // kept-alive connection (If-None-Match with the ETag of the bytes last switched to; a
  // 304, or a 200 whose bytes are the same, ends the pass).
  // An error means upstream is unreachable or served something that does not verify: the
  // mirror keeps its last good snapshot and is stale until a pass succeeds.
  Result<SyncPass> SyncOnce();

  // Re-fetches one file of the served snapshot (metadata from the verified copy kept in
  // memory; a target from upstream, by hash, verified) and puts it back in place.
  Status Restore(const std::string& rel);

  // The files DIR must hold for the served snapshot (a copy).
  std::map<std::string, ExpectedFile> Expected() const;
  // Called (under the sync's lock) just before a file is renamed into DIR, so the integrity
  // watch knows it is an expected write.
  void SetOnPlace(std::function<void(const std::string& rel, const ExpectedFile&)> f) { on_place_ = std::move(f); }

  int64_t served_snapshot_version() const { return served_version_.load(); }
  int64_t upstream_snapshot_version() const { return upstream_version_.load(); }
  // Bumped at every switch (ServerOptions::chain.content_generation).
  const std::atomic<uint64_t>* generation() const { return &generation_; }
  std::string private_dir() const;

 private:
  Result<SyncPass> FullPass(const std::string& timestamp_bytes);
  Status EnsureRootChain(const std::map<std::string, std::string_view>& files, int64_t root_version);
  Status Place(const std::string& staged, const std::string& rel, const ExpectedFile& e);
  // `targets`: the staged targets (each listed in `listed`); `roles`: the staged targets roles.
  Status Promote(const std::string& pass_dir, const std::vector<std::string>& targets,
                 const std::map<std::string, ExpectedFile>& listed,
                 const std::vector<std::pair<std::string, ExpectedFile>>& roles, bool leftovers);
  Status WriteMetadata(const std::string& name, const std::string& bytes);
  Status LoadServed();
  // One kept-alive fetcher per parallel worker, reused from pass to pass.
  client::Fetcher* WorkerFetcher(size_t i);
  std::unique_ptr<client::Fetcher> MakeFetcher() const;

  SyncOptions o_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::string last_timestamp_;  // bytes of the upstream timestamp.json last switched to
  std::string last_etag_;       // the upstream's ETag for exactly those bytes (may be empty)
  std::unique_ptr<TimestampPoller> poller_;
  std::vector<std::unique_ptr<client::Fetcher>> fetchers_;
  std::map<std::string, ExpectedFile> expected_;          // rel -> content, served snapshot
  std::map<std::string, std::string> served_metadata_;    // metadata name -> verified bytes
  // The walk that verified the served snapshot (null before the first pass of this process),
  // and the targets each of its roles listed (rels, as in expected_).
  std::unique_ptr<client::WalkMemory> walk_memory_;
  std::map<std::string, std::vector<std::string>> role_rels_;
  std::function<void(const std::string&, const ExpectedFile&)> on_place_;
  std::atomic<int64_t> served_version_{0}, upstream_version_{0};
  std::atomic<uint64_t> generation_{0};
  bool verified_existing_ = false;
};

}  // namespace patchgate::mirror
