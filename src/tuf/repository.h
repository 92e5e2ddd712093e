// The signed repository on disk, and the operations of `patchgate init`, `publish`,
// `key rotate`, `refresh` and `verify`.
//
// Layout of DIR (what `patchgate serve`, nginx or a CDN serve is metadata/ and targets/):
//   DIR/metadata/<N>.root.json            every root version, consistent snapshots on
//   DIR/metadata/timestamp.json           written last, by rename (the commit point)
//   DIR/metadata/<N>.snapshot.json
//   DIR/metadata/<N>.targets.json
//   DIR/metadata/<N>.<quoted role>.json   delegated roles: products/<name> and its hash bins
//   DIR/targets/<product>/<sha256>.<file> target "<product>/<file>", content-addressed
//   DIR/keys/                             online keys (timestamp, snapshot, targets,
//                                         product roles), encrypted; never served
//   DIR/patchgate-repo.json               repository settings; never served
// Root keys live apart, offline: by default in "<DIR>.root-keys/" (--offline-keys).
//
// Hash bins: a product past InitOptions::bins_threshold targets is split with TUF 1.0.30+
// `succinct_roles` (role products/<name> delegates to products/<name>-bins-<hex>, bit_length
// bin_bits). Chosen over classic path_hash_prefixes bins because tuf-js 6 (@tufjs/models
// SuccinctRoles) and python-tuf >= 2.0 both accept it, the delegating role stays one entry
// instead of 2^bits, and tests/interop/interop_test.sh proves tuf-js walks it.
//
// Every operation loads and decrypts every key it needs before it writes anything, then
// writes new content-addressed or versioned files, then the new snapshot, and
// timestamp.json last: a reader (or a crash at any instant) sees the whole old or the
// whole new repository. Not thread-safe: one writer per repository (a lock file enforces it).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/fs.h"
#include "core/status.h"
#include "crypto/keys.h"
#include "json/canonical_json.h"
#include "tuf/catalogue.h"

namespace patchgate::tuf {

struct KeyAccess {
  std::string passphrase;           // decrypts every key; empty only with allow_plaintext
  bool allow_plaintext = false;     // --insecure-plaintext-keys
};

struct ExpiryDays {
  int root = 365, targets = 365, snapshot = 7, timestamp = 1;
};

struct InitOptions {
  std::string dir;
  std::string root_keys_dir;  // empty: "<dir>.root-keys"
  int root_threshold = 1;
  int root_keys = 1;
  KeyType key_type = KeyType::kEd25519;
  ExpiryDays expiry;
  int bins_threshold = 1024;  // a product with more targets is split into hash bins
  int bin_bits = 8;           // 2^bits bins
};
Status InitRepository(const InitOptions& opts, const KeyAccess& keys, const Clock& clock);

// Optional gate run on the input files before anything else (the malware scan). It
// returns, per file, extra fields for the target's "custom" object, or an error, in which
// case nothing is written.
using PrePublishHook = std::function<Result<std::vector<Json>>(const std::vector<std::string>& files)>;

struct PublishOptions {
  std::string dir;
  std::string product;
  std::string version;  // optional
  bool replace = false;
  PrePublishHook hook;
};
struct PublishedTarget {
  std::string path;  // "<product>/<file>"
  std::string sha256;
  uint64_t length = 0;
  bool unchanged = false;  // already published with the same bytes
  Json custom;
};
Result<std::vector<PublishedTarget>> Publish(const PublishOptions& opts, const std::vector<std::string>& files,
                                             const KeyAccess& keys, const Clock& clock);

// Re-signs snapshot and timestamp when they expire within `margin_seconds` (or always
// with force). Returns true when anything was re-signed.
Result<bool> Refresh(const std::string& dir, bool force, int64_t margin_seconds, const KeyAccess& keys,
                     const Clock& clock);

// Rotates the key(s) of `role` ("root", "timestamp", "snapshot", "targets" or
// "products/<name>"). Root: writes N+1.root.json signed by the old and the new keys
// (new threshold/number of keys when given).
struct RotateOptions {
  std::string dir;
  std::string role;
  std::optional<int> new_threshold;
  std::optional<int> new_keys;
};
Status RotateKey(const RotateOptions& opts, const KeyAccess& keys, const Clock& clock);

struct VerifyReport {
  std::vector<std::string> problems;
  size_t roles_checked = 0;
  size_t targets_checked = 0;
  int64_t root_version = 0, snapshot_version = 0, timestamp_version = 0;
};
// Checks the whole chain (every root version, timestamp, snapshot, targets, delegated
// roles: signatures, thresholds, versions, hashes, expiry) and every target file's length
// and hash. Problems are listed, not returned as errors; an error means the check itself
// could not run.
Result<VerifyReport> VerifyRepository(const std::string& dir, const Clock& clock);

// LoadCatalogue (target name -> sha256, length, product) is declared in tuf/catalogue.h.

// "<dirname>/<sha256>.<basename>" for a target path (consistent-snapshot file name).
std::string ConsistentTargetName(const std::string& target_path, const std::string& sha256);

}  // namespace patchgate::tuf
