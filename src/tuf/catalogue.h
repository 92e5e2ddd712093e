// The catalogue of a signed repository: target name -> {sha256, length, product, file},
// read from the repository's current trusted metadata (timestamp -> snapshot -> targets ->
// delegated product roles and their hash bins), every signature and hash checked on the way.
// This is what `patchgate serve` maps request paths with. Loading 30,000 targets takes one
// parse and one signature check per role file. Expired metadata does not stop the load (a
// server keeps serving while `patchgate refresh` is due); any other problem does.
// Functions are thread-compatible; the result is a plain value owned by the caller.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "json/canonical_json.h"

namespace patchgate::tuf {

// One entry per published target, from the repository's current signed metadata.
struct CatalogueEntry {
  std::string path;     // "<product>/<file>"
  std::string product;  // custom.product
  std::string sha256;
  uint64_t length = 0;
  std::string file;     // path of DIR/targets/<product>/<sha256>.<file>
  Json custom;
};

// kCorrupt (with the first problem and "run `patchgate verify`") when the signed chain
// does not verify; kNotFound when DIR is not a repository.
Result<std::vector<CatalogueEntry>> LoadCatalogue(const std::string& dir);

// The same load, again and again, for a server whose repository moves on (each publish, or
// each switch of a mirror, adds a snapshot): the root chain, timestamp.json and the snapshot
// are checked at every Load(), and every targets role too, except that a role is taken from
// the last good load without being read again when all of this is unchanged: its versioned
// file (same name, so the same version, and the snapshot lists the same version, length and
// hashes for it), that file on disk (device, inode, size, mtime and ctime), and the keys,
// threshold and paths its delegator gives it. Its expiry is checked again. A publish that
// changes one hash bin of a 256-bin product reads and verifies that bin only.
// Thread-compatible (one Load() at a time).
class CatalogueLoader {
 public:
  explicit CatalogueLoader(std::string dir);
  ~CatalogueLoader();
  CatalogueLoader(const CatalogueLoader&) = delete;
  CatalogueLoader& operator=(const CatalogueLoader&) = delete;

  // One entry list per targets role, in walk order (a role's list is shared with the next
  // load when the role is reused). Errors as LoadCatalogue.
  using RoleEntries = std::shared_ptr<const std::vector<CatalogueEntry>>;
  Result<std::vector<RoleEntries>> Load();
  // Targets roles read and verified from disk by the last Load() (the others were reused).
  size_t roles_read() const { return roles_read_; }
  size_t roles_reused() const { return roles_reused_; }

 private:
  struct Memo;
  std::string dir_;
  std::map<std::string, Memo> memo_;  // role -> what the last good load verified
  size_t roles_read_ = 0, roles_reused_ = 0;
};

}  // namespace patchgate::tuf
