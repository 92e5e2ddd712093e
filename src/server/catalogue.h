// The server's view of the signed repository: consistent-snapshot file name ->
// {target path, product, signed sha256 and length}. Loaded from the repository's verified
// metadata chain and reloaded when metadata/timestamp.json changes. Thread-safe.
//
// Two ways to reload. On the request path (Refresh(), single flight). Or off it
// (StartBackground()): a loader thread notices a changed timestamp.json (a stat every
// kPollMs, or at once after Expire()) and loads the new catalogue while requests are
// still answered from the current one; the bytes of timestamp.json the loaded catalogue
// was built from are kept with it (Timestamp()), and a server serves exactly those, so the
// timestamp it serves never names a target it would answer 404 for.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "server/served_files.h"
#include "tuf/catalogue.h"
#include "tuf/repository.h"

namespace patchgate::server {

class Catalogue {
 public:
  static constexpr int kPollMs = 20;
  explicit Catalogue(std::string repo_dir) : dir_(repo_dir), walker_(std::move(repo_dir)) {}
  ~Catalogue();
  // Loads the catalogue now, then keeps it current from a loader thread (stopped by the
  // destructor). From then on Refresh() loads nothing and returns the last load's status.
  Status StartBackground();
  bool background() const { return background_.load(); }
  // Background mode: the timestamp.json the current catalogue was loaded from (null
  // before the first load).
  std::shared_ptr<const MetadataFile> Timestamp() const;
  // Reloads if timestamp.json changed (checked at most every 500 ms). Single flight: while
  // one caller checks or loads, the others wait for it.
  Status Refresh();
  // By the name under targets/ ("office/<sha256>.setup.exe").
  std::shared_ptr<const tuf::CatalogueEntry> Find(const std::string& rel) const;
  size_t size() const;
  // The next Refresh() re-checks timestamp.json at once (a mirror switched snapshots); in
  // background mode the loader checks at once.
  void Expire();
  // For the event loop, which must not load anything: true if the catalogue is current
  // (checked within 500 ms, or timestamp.json is unchanged: one stat); false if a
  // Refresh() must load it (a worker then does).
  bool CurrentWithoutLoading();

 private:
  // Loads the catalogue and the timestamp.json bytes it was built from (background mode).
  Status LoadConsistent();
  // One load through walker_ (a role unchanged since the last load is not read again).
  Result<std::vector<tuf::CatalogueLoader::RoleEntries>> Load(size_t* roles_read);
  void Loop();

  std::string dir_;
  std::mutex walker_mu_;
  tuf::CatalogueLoader walker_;  // under walker_mu_
  std::atomic<bool> background_{false}, stop_{false};
  std::thread loader_;
  std::condition_variable wake_;
  bool expired_ = false;  // under mu_
  Status last_load_;      // under mu_
  std::shared_ptr<const MetadataFile> timestamp_;  // under mu_
  MetadataFile::Key failed_key_{};                 // loader thread: the timestamp.json a load failed on
  std::mutex load_mu_;  // held by the one caller checking or loading timestamp.json
  mutable std::mutex mu_;
  bool loading_ = false;  // a Refresh() is checking or loading: nobody answers from entries_ meanwhile
  std::shared_ptr<const std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>> entries_ =
      std::make_shared<std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>>();
  int64_t loaded_mtime_ns_ = -1;
  int64_t loaded_ino_ = -1;
  int64_t last_check_ms_ = 0;
};

}  // namespace patchgate::server
