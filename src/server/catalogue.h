// The server's view of the signed repository: consistent-snapshot file name ->
// {target path, product, signed sha256 and length}. Loaded from the repository's verified
// metadata chain and reloaded when metadata/timestamp.json changes. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "tuf/repository.h"

namespace patchgate::server {

class Catalogue {
 public:
  explicit Catalogue(std::string repo_dir) : dir_(std::move(repo_dir)) {}
  // Reloads if timestamp.json changed (checked at most every 500 ms). Single flight: while
  // one caller checks or loads, the others wait for it.
  Status Refresh();
  // By the name under targets/ ("office/<sha256>.setup.exe").
  std::shared_ptr<const tuf::CatalogueEntry> Find(const std::string& rel) const;
  size_t size() const;
  // The next Refresh() re-checks timestamp.json at once (a mirror switched snapshots).
  void Expire();
  // For the event loop, which must not load anything: true if the catalogue is current
  // (checked within 500 ms, or timestamp.json is unchanged: one stat); false if a
  // Refresh() must load it (a worker then does).
  bool CurrentWithoutLoading();

 private:
  std::string dir_;
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
