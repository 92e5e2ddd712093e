// The signed repository on disk, and the operations of `patchgate init`, `publish`,
// `key rotate`, `refresh` and `verify`.
//
// Layout of DIR (what `patchgate serve`, nginx or a CDN serve is metadata/ and targets/):
//   DIR/metadata/<N>.root.json            every root version, consistent snapshots on
//   DIR/metadata/timestamp.json           written last, by rename (the commit point)
//   DIR/metadata/<N>.snapshot.json
//   DIR/metadata/<N>.targets.json
//   DIR/metadata/<N>.<role>.json          delegated roles: product.<name> and its hash bins
//                                         bins.<name>-<hex> (single safe path segments, so a
//                                         static server maps URL to file unchanged)
//   DIR/targets/<product>/<sha256>.<file> target "<product>/<file>", content-addressed
//   DIR/keys/                             online keys (timestamp, snapshot, targets,
//                                         product roles), encrypted; never served
//   DIR/patchgate-repo.json               repository settings; never served
// Root keys live apart, offline: by default in "<DIR>.root-keys/" (--offline-keys).
//
// Hash bins: a product past InitOptions::bins_threshold targets is split with TUF 1.0.30+
// `succinct_roles` (role product.<name> delegates to bins.<name>-<hex>, bit_length
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
#include "tuf/naming.h"

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

// An input of `publish`, staged: the source is opened once and copied through that one
// descriptor into a private file (DIR/.staging/<pid>/<name>, mode 0700 directory) while it
// is hashed. The staged copy is what the gate scans, what is signed and what is published
// (hard-linked into targets/): later changes to the source cannot reach the repository.
struct StagedInput {
  std::string source;  // the path given on the command line
  std::string staged;  // the private copy
  std::string name;    // target file name (base name of source)
  std::string sha256;  // of the staged bytes
  uint64_t length = 0;
};

// What the gate says about one staged input.
struct GateRecord {
  Json custom = Json::object();  // fields added to the target's "custom" object
  // sha256 of the bytes the gate examined, when it knows it; publish refuses when it
  // differs from the staged copy's (the gate scanned something else).
  std::string scanned_sha256;
};

// Optional gate run on the staged inputs before anything is written to the repository
// (the malware scan). One record per input, in order, or an error, in which case nothing
// is written.
using PrePublishHook = std::function<Result<std::vector<GateRecord>>(const std::vector<StagedInput>& files)>;

struct PublishOptions {
  std::string dir;
  std::string product;
  std::string version;  // optional
  bool replace = false;
  PrePublishHook hook;
  // Filesystem seam for the metadata writes (tests inject failures); nullptr: the real one.
  FileSystem* fs = nullptr;
  // Inputs larger than this are refused (kTooLarge) before any byte of them is copied to
  // staging (the gate's --max-file-size); 0: no cap.
  uint64_t max_input_bytes = 0;
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
// "product.<name>"). Root: writes N+1.root.json signed by the old and the new keys
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
  // Not problems: leftovers of an interrupted write ("<name>.tmp.<pid>"), safe to delete.
  std::vector<std::string> notes;
  size_t roles_checked = 0;
  size_t targets_checked = 0;
  int64_t root_version = 0, snapshot_version = 0, timestamp_version = 0;
};
// Checks the whole chain (every root version, timestamp, snapshot, targets, delegated
// roles: signatures, thresholds, versions, hashes, expiry) and every target file's length
// and hash; and that metadata/ and targets/ hold nothing else: any symlink, any file that
// is not a version of a known role or a content-addressed copy of a known target, and
// anything that is not a regular file or directory, is a problem. Problems are listed, not returned as errors; an error means the check itself
// could not run.
Result<VerifyReport> VerifyRepository(const std::string& dir, const Clock& clock);

// LoadCatalogue (target name -> sha256, length, product) is declared in tuf/catalogue.h.

}  // namespace patchgate::tuf
