// Parallel metadata download for the mirror's TUF workflow. The client's Updater walks
// the delegation tree one role at a time; on a repository split into hundreds of hashed
// bins that is hundreds of sequential round trips. PrefetchFetcher wraps the Updater's
// fetcher: when the Updater fetches "<v>.snapshot.json", those bytes (not verified yet:
// used only as a list of names) name every targets role and its version, and the roles
// the mirror does not hold already are downloaded in the background, `parallel` at a
// time, each capped at its listed length, and handed to the Updater when it asks for
// that URL. The Updater checks every byte exactly as before (length and hashes from the
// verified snapshot, signatures, versions, expiry): the prefetch changes when bytes
// travel, never what is trusted. A prefetch that failed is simply fetched again directly.
// Memory is bounded: no new background download starts while the answers not yet taken
// hold max_total_bytes or more (the Updater fetches what is still queued itself).
// Threading: Fetch() from one thread (the Updater's); background threads are internal
// and joined by the destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/fetcher.h"

namespace patchgate::mirror {

struct PrefetchOptions {
  std::string metadata_url;  // base URL of metadata/ (no trailing slash)
  int parallel = 8;
  uint64_t max_total_bytes = 256ull << 20;
  // True when the Updater will not need to download this file name ("3.bins.x-0a.json"):
  // the mirror already holds exactly that version.
  std::function<bool(const std::string& name)> have;
  // A fresh fetcher for a background thread.
  std::function<std::unique_ptr<client::Fetcher>()> make_fetcher;
};

class PrefetchFetcher : public client::Fetcher {
 public:
  // `direct` serves everything not prefetched; it must outlive this object.
  PrefetchFetcher(client::Fetcher* direct, PrefetchOptions options);
  ~PrefetchFetcher() override;

  Status Fetch(const std::string& url, uint64_t max_bytes, const client::Sink& sink) override;
  Status FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const client::Sink& sink) override;
  // A prefetched body is handed over as it is (moved, not copied); anything else is read
  // into a string that grows with the body: a role's cap is often the 64 MiB maximum (a
  // snapshot may list no length), and reserving that per role cost a zeroed huge page each.
  Result<std::string> FetchAll(const std::string& url, uint64_t max_bytes) override;

  // How many files were queued and how many answers came from the prefetch (for logs/tests).
  size_t queued() const;
  size_t served_from_prefetch() const { return hits_.load(); }
  // Blocks until every queued download has finished (tests).
  void WaitForPrefetch();

 private:
  void StartFromSnapshot(const std::string& bytes);
  // The prefetched answer for url, once any download of it in flight has finished (the
  // caller then owns it); nullopt when it was not prefetched (or is queued only: dropped
  // from the queue, the caller fetches it itself).
  std::optional<Result<std::string>> Take(const std::string& url);
  void Worker();

  client::Fetcher* direct_;
  PrefetchOptions o_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false, stop_ = false;
  std::deque<std::pair<std::string, uint64_t>> queue_;  // url, cap
  std::map<std::string, bool> pending_;                 // url -> in flight
  std::map<std::string, Result<std::string>> done_;
  uint64_t held_ = 0;  // bytes of answers not yet taken
  size_t queued_ = 0;
  std::atomic<size_t> hits_{0};
  std::vector<std::thread> threads_;
};

}  // namespace patchgate::mirror
