// The trusted-metadata store of a mirror's Updater (the FileSystem seam over
// DIR/.patchgate/trusted), which also publishes each verified targets role into DIR.
//
// The Updater writes a role here only after it has verified it (signatures, version, the
// snapshot's length and hashes). The store hands every write to one writer thread, so the
// walk over hundreds of hashed bins never waits for the file system, and the writer puts
// the same verified bytes of each targets role into the pass's staging tree (`place`)
// under its consistent-snapshot name ("<version>.<quoted role>.json", the version taken
// from the verified snapshot written here before it): by the end of the walk that tree
// holds every role of the new snapshot; the Syncer moves it into DIR/metadata once the
// whole pass verified, and only timestamp.json (written at the switch) makes them current. A versioned name DIR already holds must keep exactly its bytes
// (metadata is immutable under its versioned name): other bytes fail the pass.
//
// Durability: root.json, timestamp.json and snapshot.json (the rollback-protection state)
// are fsynced; targets roles are not (each is pinned by the snapshot's version for it, so
// losing one in a power cut only means fetching it again). Flush() before relying on any
// of it.
// Threading: the FileSystem methods are for the Updater's thread; Flush() and Published()
// for the owner once the Updater is done. The writer thread is internal.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/fs.h"
#include "core/status.h"

namespace patchgate::mirror {

struct TrustedStoreOptions {
  std::string trusted_dir;  // DIR/.patchgate/trusted
  std::string staging_dir;  // DIR/.patchgate/staging (same file system as DIR)
  // The bytes DIR/metadata serves under a versioned name already, if any (called from the
  // writer thread; must not change while the store is in use).
  std::function<std::optional<std::string>(const std::string& name)> served;
  // Moves a staged file holding `bytes` to rel ("metadata/<name>") in the pass's staging
  // tree (the Syncer). Called from the writer thread.
  std::function<Status(const std::string& staged, const std::string& rel, const std::string& bytes)> place;
};

class TrustedStore : public ForwardingFileSystem {
 public:
  explicit TrustedStore(TrustedStoreOptions options);
  ~TrustedStore() override;  // flushes
  TrustedStore(const TrustedStore&) = delete;
  TrustedStore& operator=(const TrustedStore&) = delete;

  // Queued; a later ReadFile of the same path sees the queued bytes.
  Status WriteFileAtomic(const std::string& path, std::string_view data) override;
  Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) override;

  // Waits until every queued write is done; the first failure, if any.
  Status Flush();
  // What the writer put into DIR/metadata: versioned name -> bytes (after Flush()).
  const std::map<std::string, std::string>& Published() const { return published_; }
  // The same, handed over (the store holds none of it afterwards).
  std::map<std::string, std::string> TakePublished() { return std::move(published_); }

 private:
  void Run();
  Status WriteOne(const std::string& path, const std::string& bytes);

  TrustedStoreOptions o_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, std::string>> queue_;  // path, bytes
  std::map<std::string, std::string> pending_;              // path -> newest queued bytes
  size_t in_flight_ = 0;
  bool stop_ = false;
  Status first_error_;
  // The writer thread only (read by the owner after Flush()).
  std::map<std::string, int64_t> versions_;  // "<quoted role>.json" -> version, from the snapshot
  std::map<std::string, std::string> published_;
  std::thread writer_;  // last: started once the rest is constructed
};

}  // namespace patchgate::mirror
