// The metadata route of `patchgate serve`: GET/HEAD /metadata/<name> for a customer already
// authenticated by the server, or a downstream node of the chain pulling a sync.
//
// What it promises:
//   - timestamp.json is the one the catalogue was loaded from (every target it names can
//     be served), not whatever is on disk at the moment;
//   - any other file is opened beneath the served tree without following a link (a link
//     planted there is 404, never followed) and kept in memory with its ETag (the SHA-256
//     of its bytes) while its identity (device, inode, size, mtime, ctime) is unchanged;
//   - If-None-Match with the ETag gets 304 and no body; HEAD gets the head only;
//   - a node's pull is reported to ChainHooks::record_sync with the bytes it took.
//
// Two entry points: Serve() on a worker (may open and read the file) and ServeFromLoop()
// on an event loop (only from memory, after one stat: false sends the request to a worker).
// Both leave the response in the PendingSend the loop sends. Thread-safe; everything in
// Deps is not owned and must outlive the service.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "server/catalogue.h"
#include "server/event_loop.h"
#include "server/http_request.h"
#include "server/metrics.h"
#include "server/served_files.h"
#include "server/server.h"

namespace patchgate::server {

class MetadataService {
 public:
  struct Deps {
    const ServerOptions* options = nullptr;  // chain.record_sync
    Catalogue* catalogue = nullptr;          // its timestamp.json, when it loads in the background
    MetadataFiles* files = nullptr;          // the files kept in memory
    Metrics* metrics = nullptr;
    // Called before timestamp.json is answered (DownloadService::CheckGeneration: a new
    // chain generation reloads the catalogue first). May be empty.
    std::function<void()> check_generation;
    int repo_fd = -1;  // the served tree
  };
  explicit MetadataService(Deps deps) : d_(std::move(deps)) {}

  // On a worker: answers metadata/<name> into *later. `node` set: a downstream node's pull.
  // Returns whether the connection may go on (`keep`, unless the answer closes it).
  bool Serve(const RequestHead& req, const std::string& name, bool keep, bool head_only, PendingSend* later,
             const std::string* node = nullptr);
  // On an event loop, without blocking (a GET only): answers from memory when the file at
  // the path is still the one read (one stat, no open) into *out. False: not answered here.
  bool ServeFromLoop(const RequestHead& req, const std::string& name, bool keep, PendingSend* out);

 private:
  // 200 (or 304 for a matching If-None-Match) with the file's bytes from memory, into *out.
  void Respond(const RequestHead& req, const std::string& name, std::shared_ptr<const MetadataFile> m, bool keep,
               PendingSend* out, const std::string* node);
  // timestamp.json as the catalogue was loaded from it; null for any other file (or when the
  // catalogue does not load in the background).
  std::shared_ptr<const MetadataFile> CatalogueTimestamp(const std::string& name);

  Deps d_;
};

}  // namespace patchgate::server
