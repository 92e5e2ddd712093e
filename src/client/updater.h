// The TUF 1.0 client workflow (specification section 5, "Detailed client workflow"):
// root chain (capped rotations per run), timestamp, snapshot and targets with version,
// length and hash checks, expiry against the Clock seam, fast-forward recovery after key
// rotation, a terminating/visited/depth-capped delegation walk, and target downloads
// checked for length and hash while streaming.
//
// Trusted metadata lives in metadata_dir under non-versioned names (root.json,
// timestamp.json, snapshot.json, targets.json, <url-encoded role>.json), each written
// atomically through the FileSystem seam. Targets are cached in target_dir under the
// url-encoded target path. Not thread-safe: one Updater per thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/fetcher.h"
#include "core/clock.h"
#include "client/metadata_writer.h"
#include "core/fs.h"
#include "core/status.h"
#include "tuf/metadata.h"

namespace patchgate::client {

struct UpdaterOptions {
  std::string metadata_dir;
  std::string metadata_url;     // base URL of metadata/ (no trailing slash needed)
  std::string target_base_url;  // base URL of targets/
  std::string target_dir;
  // Write timestamp, snapshot and targets metadata to metadata_dir as one batch
  // (client/metadata_writer.h): each file is written at once but made durable and put in
  // place together, by FlushMetadataWrites(), which the owner calls before relying on the
  // files (the destructor flushes too). Off: each file is durable before the call that
  // fetched it returns.
  bool write_metadata_in_background = false;
  // VisitAllTargets: how many roles are fetched and checked at once (the walk's own thread
  // included). Each is checked against its verified delegator exactly as in a walk of one
  // role at a time, and used in walk order; the fetcher is still used by one thread at a
  // time. 1: one role at a time.
  int parallel_roles = 1;
  // VisitAllTargets hands over each target's custom object. A mirror, which stores and
  // serves targets by hash and never reads custom data, sets false: custom is then left
  // null (every entry is still parsed and checked: length and hashes; the role's signature
  // covers its whole text either way), which saves most of the walk's parsing.
  bool targets_custom = true;
};

struct TargetInfo {
  std::string path;
  tuf::TargetFile file;
  std::string role;  // the role that signed it
};

// What a walk over the whole delegation tree (Updater::VisitAllTargets) verified, kept by a
// caller that walks the same repository again and again (a mirror) from one Updater to the
// next: see VisitAllTargets. Opaque; made by Updater::RememberWalk().
class WalkMemory {
 public:
  ~WalkMemory();
  struct State;  // defined in updater.cc

 private:
  friend class Updater;
  explicit WalkMemory(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// How a walk went (for logs and tests).
struct WalkStats {
  size_t roles_checked = 0;  // read (fetched, or from the trusted copy) and verified
  size_t roles_reused = 0;   // taken from the WalkMemory
  // Only the roles in changed_roles were handed over: each one's batch is all of its
  // targets (possibly none), and every other role's targets are those of the remembered walk.
  bool incremental = false;
  std::vector<std::string> changed_roles;
};

class Updater {
 public:
  ~Updater();
  // `fetcher`, `clock` and `fs` must outlive the Updater.
  Updater(UpdaterOptions options, Fetcher* fetcher, const Clock& clock, FileSystem* fs);

  // Stores `root_file` as the trusted root after checking it parses and is signed by its
  // own root threshold. No network.
  static Status InitTrustedRoot(const std::string& metadata_dir, const std::string& root_file, FileSystem* fs);

  // Runs the update workflow up to and including top-level targets. OK only if every step
  // succeeded.
  Status Refresh();
  // Waits until every verified metadata file is durable in metadata_dir; the first write
  // failure, if any. A no-op unless write_metadata_in_background.
  Status FlushMetadataWrites();
  // Finds a target (refreshing first if needed), walking delegations. kNotFound if no
  // role signs it.
  Result<TargetInfo> GetTargetInfo(const std::string& target_path);
  // The local path of the target if the cached copy matches its signed length and hashes.
  std::optional<std::string> FindCachedTarget(const TargetInfo& info);
  // Downloads (or reuses the cached copy of) the target into target_dir; returns its path.
  Result<std::string> DownloadTarget(const TargetInfo& info);
  // The file name a target is stored under in target_dir.
  static std::string LocalName(const std::string& target_path);

  // For a mirror: every target of every role reachable from the top-level targets (the
  // whole delegation tree, hashed bins included), each role verified as in GetTargetInfo.
  // A path signed by several roles is taken from the first in walk order.
  Result<std::vector<TargetInfo>> ListAllTargets();
  // The same walk, handing over the targets of each role as soon as that role is verified
  // (a mirror starts downloading them while the next roles are still being fetched and
  // checked). Each path is handed over once, from the first role in walk order. An error
  // from `visit` stops the walk and is returned.
  using TargetVisitor = std::function<Status(std::vector<TargetInfo> batch)>;
  Status VisitAllTargets(const TargetVisitor& visit);
  // With the memory of an earlier walk (from RememberWalk() after it; null: none), a role
  // is reused without being read or verified again when it is exactly as trusted as it
  // would be after a fresh check: the new snapshot lists it with the same version (and
  // length and hashes), its trusted copy on disk is the file the remembered walk left
  // (device, inode, size, mtime, ctime), and its delegator gives it the same keys (key
  // material) and threshold as then; its expiry is checked again. When a delegator changed
  // its keys, the unchanged role is verified again against the new ones.
  // When no role that delegates changed, the remembered walk had no path trusted to two
  // roles, and the changed roles delegate nothing and claim no path another role holds,
  // the walk is incremental (stats->incremental): only the changed roles are fetched,
  // verified and handed over. Otherwise it is the whole walk (unchanged roles reused).
  Status VisitAllTargets(const TargetVisitor& visit, const WalkMemory* last, WalkStats* stats);
  // After a successful VisitAllTargets, once the trusted metadata is on disk (the caller
  // flushed its file system): the memory of this walk for the next Updater.
  std::unique_ptr<WalkMemory> RememberWalk();
  // The verified bytes of the trusted metadata, by the name a consistent-snapshot
  // repository publishes them under: "<v>.root.json", "timestamp.json",
  // "<v>.snapshot.json", "<v>.<quoted role>.json" (targets roles loaded so far).
  std::map<std::string, std::string> TrustedMetadataFiles() const;
  // The same names, each with a view of the bytes this Updater holds (no copy; valid while
  // the Updater lives and is not refreshed or walked again).
  std::map<std::string, std::string_view> TrustedMetadataViews() const;
  std::optional<int64_t> TrustedSnapshotVersion() const;

 private:
  friend struct WalkMemory::State;
  // Targets roles from this size on are read without a DOM (tuf::LazyTargets: one scan of
  // the text, a target looked up in it when asked for): a hash bin of a few hundred
  // entries already costs the DOM parse more than the scan. From kBackgroundHashBytes on,
  // the snapshot's hash of the role is checked on a second thread meanwhile.
  static constexpr size_t kLazyRoleBytes = 8 * 1024;
  static constexpr size_t kBackgroundHashBytes = 256 * 1024;
  struct Loaded {
    std::string raw;  // the verified bytes, exactly as fetched (or read from the cache)
    bool lazy = false;
    tuf::Envelope env;               // !lazy: the parsed envelope
    tuf::LazyTargets lz;             // lazy: signatures and offsets into raw; no DOM, no copy
    tuf::Targets targets;            // common + delegations; targets too unless lazy
    tuf::VerifiedSignatures checked;  // signatures already verified over these bytes
    Status Verify(const std::map<std::string, PublicKey>& keys, const tuf::RoleKeys& role_keys,
                  std::string_view role);
    Result<std::optional<tuf::TargetFile>> Find(const std::string& path) const;
    // Every target of the role (parses the text of a lazy role).
    Result<std::map<std::string, tuf::TargetFile>> All(bool with_custom = true) const;
  };

  Status LoadTrustedRoot();
  void LoadTrustedTopLevel();
  Status UpdateRoot();
  Status UpdateTimestamp();
  Status UpdateSnapshot();
  Status UpdateTargets();
  Result<const Loaded*> LoadDelegated(const std::string& role, const std::map<std::string, PublicKey>& keys,
                                      const tuf::RoleKeys& role_keys);
  // A role fetched (or read from the trusted copy) and checked against the snapshot's
  // version, length and hashes, the delegator's keys and threshold, and expiry; nothing is
  // stored. Safe from several threads at once (the fetcher and file system are used under
  // io_mu_).
  struct Checked {
    Loaded loaded;
    bool fetched = false;
  };
  Result<Checked> CheckDelegated(const std::string& role, const std::map<std::string, PublicKey>& keys,
                                 const tuf::RoleKeys& role_keys);
  // VisitAllTargets over `last` when only leaf roles changed: true when it walked (and
  // handed over) incrementally, false when the whole walk is needed.
  Result<bool> IncrementalWalk(const TargetVisitor& visit, const WalkMemory::State& last, WalkStats& st);
  // Stores a checked role (persisted when it was fetched) as trusted.
  Result<const Loaded*> CommitDelegated(const std::string& role, Checked c);
  Status Persist(const std::string& role, std::string_view bytes);
  Result<std::string> ReadLocal(const std::string& role, uint64_t cap);
  std::string MetaUrl(const std::string& file) const;

  UpdaterOptions o_;
  Fetcher* fetcher_;
  const Clock& clock_;
  FileSystem* fs_;
  bool refreshed_ = false;

  std::string root_raw_, timestamp_raw_, snapshot_raw_;  // verified bytes of the trusted files
  tuf::Envelope root_env_;
  tuf::Root root_;
  std::optional<tuf::Timestamp> timestamp_;
  std::optional<tuf::Snapshot> snapshot_;
  std::map<std::string, Loaded> targets_;  // "targets" and delegated roles, verified
  std::unique_ptr<WalkMemory::State> walk_;  // what the last VisitAllTargets verified (RememberWalk)
  std::mutex io_mu_;  // fetcher_ and fs_ reads by CheckDelegated
  std::unique_ptr<MetadataWriter> writer_;  // write_metadata_in_background only; last: flushed first
};

}  // namespace patchgate::client
