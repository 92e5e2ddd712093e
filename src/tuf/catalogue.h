// The catalogue of a signed repository: target name -> {sha256, length, product, file},
// read from the repository's current trusted metadata (timestamp -> snapshot -> targets ->
// delegated product roles and their hash bins), every signature and hash checked on the way.
// This is what `patchgate serve` maps request paths with. Loading 30,000 targets takes one
// parse and one signature check per role file. Expired metadata does not stop the load (a
// server keeps serving while `patchgate refresh` is due); any other problem does.
// Functions are thread-compatible; the result is a plain value owned by the caller.
#pragma once

#include <cstdint>
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

}  // namespace patchgate::tuf
