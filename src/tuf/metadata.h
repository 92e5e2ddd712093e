// TUF 1.0 metadata: signed envelopes, the four top-level roles and delegated targets,
// parsed from (and serialised to) JSON with every unknown field kept, so signatures made
// over fields we do not model still verify.
//
// Parsing is strict about what the specification requires (types, required fields,
// spec_version major 1, "_type" of the expected role) and every input is capped. Value
// types; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "crypto/keys.h"
#include "json/canonical_json.h"
#include "tuf/naming.h"

namespace patchgate::tuf {

inline constexpr char kSpecVersion[] = "1.0.31";

// Caps on untrusted input (aktualizr-style named limits).
inline constexpr uint64_t kMaxRootBytes = 512 * 1024;
inline constexpr uint64_t kMaxTimestampBytes = 16 * 1024;
inline constexpr uint64_t kMaxSnapshotBytes = 32 * 1024 * 1024;
inline constexpr uint64_t kMaxTargetsBytes = 64 * 1024 * 1024;
inline constexpr size_t kMaxSignatures = 256;
inline constexpr size_t kMaxKeys = 1024;
inline constexpr size_t kMaxDelegatedRoles = 4096;
inline constexpr int kMaxRootRotations = 32;     // per refresh
inline constexpr int kMaxDelegationDepth = 32;   // delegation walk

enum class RoleType { kRoot, kTimestamp, kSnapshot, kTargets };
std::string_view RoleTypeName(RoleType t);  // "root", ...

struct Signature {
  std::string keyid;
  std::string sig;  // hex
};

// {"signatures": [...], "signed": {...}} as read from the wire.
struct Envelope {
  Json signed_json;                  // the whole "signed" object, unknown fields included
  std::vector<Signature> signatures;
  std::string signed_bytes;          // canonical encoding of signed_json (what is signed)
  // The "signed" member exactly as it appeared in the file when that differs from
  // signed_bytes (a non-canonical file); empty otherwise. Only used to name the failure
  // when a signature covers these bytes instead of the canonical form (kNonCanonical).
  std::string raw_signed_bytes;

  // Parses and checks the shape; computes signed_bytes. kCorrupt/kTooLarge; never throws.
  // When the file's "signed" bytes are already canonical they are used directly (fast
  // path for multi-MB targets metadata).
  static Result<Envelope> Parse(std::string_view text, uint64_t max_bytes);
  // Builds an envelope around `signed_json` (signatures empty).
  static Result<Envelope> FromSigned(Json signed_json);
  // Canonical JSON of the whole envelope (also what is written to disk).
  Result<std::string> Serialize() const;
  // Adds (or replaces) the signature of `key` over signed_bytes.
  Status Sign(const PrivateKey& key);
};

struct RoleKeys {
  std::vector<std::string> keyids;
  int threshold = 1;
};

// Checks that at least role.threshold DISTINCT keys among role.keyids made a valid
// signature over env.signed_bytes. A keyid counts once however often it signed; keys not
// in role.keyids and signatures that do not verify are ignored. kUnmetThreshold otherwise,
// or kNonCanonical when the threshold is unmet but an authorised key signed the file's
// non-canonical "signed" bytes (the signer did not canonicalise; TUF signs canonical JSON).
//
// `cache`, when given, belongs to one message (these signed bytes): signatures that
// verified are remembered there by key material and signature, so checking the same role
// again (reached through another delegator, or looked up after the refresh) costs no
// second pass over a multi-MB message. A key that differs in any byte is checked anew.
class VerifiedSignatures {
 public:
  bool Contains(const PublicKey& key, std::string_view sig) const;
  void Add(const PublicKey& key, std::string_view sig);

 private:
  std::set<std::string> entries_;
};
Status VerifyThreshold(const Envelope& env, const std::map<std::string, PublicKey>& keys,
                       const RoleKeys& role, std::string_view role_name, VerifiedSignatures* cache = nullptr);
// The same over explicit signed bytes (a view into the file, for a large role read without
// a copy).
Status VerifyThreshold(std::string_view signed_bytes, const std::vector<Signature>& signatures,
                       const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                       std::string_view role_name, VerifiedSignatures* cache = nullptr);

// Fields every role has.
struct Common {
  RoleType type = RoleType::kRoot;
  int64_t version = 0;
  int64_t expires = 0;  // unix seconds
  std::string spec_version;
};

// Parses "_type", "version", "expires", "spec_version" and checks the type and spec major.
Result<Common> ParseCommon(const Json& signed_json, RoleType expected);
// kExpired when now >= expires.
Status CheckNotExpired(const Common& c, const Clock& clock, std::string_view role_name);

struct Root {
  Common common;
  bool consistent_snapshot = true;
  std::map<std::string, PublicKey> keys;     // keyid -> key
  std::map<std::string, RoleKeys> roles;     // "root", "timestamp", "snapshot", "targets"
  static Result<Root> FromSigned(const Json& signed_json);
};

struct MetaFile {
  int64_t version = 0;
  std::optional<uint64_t> length;
  std::map<std::string, std::string> hashes;  // algorithm -> hex
};

struct Timestamp {
  Common common;
  MetaFile snapshot;  // meta["snapshot.json"]
  static Result<Timestamp> FromSigned(const Json& signed_json);
};

struct Snapshot {
  Common common;
  std::map<std::string, MetaFile> meta;  // "targets.json", "<role>.json"
  static Result<Snapshot> FromSigned(const Json& signed_json);
};

struct TargetFile {
  uint64_t length = 0;
  std::map<std::string, std::string> hashes;
  Json custom;  // null when absent
};

struct DelegatedRole {
  std::string name;
  RoleKeys keys;
  bool terminating = false;
  std::vector<std::string> paths;               // glob patterns (fnmatch, '*' stops at '/')
  std::vector<std::string> path_hash_prefixes;  // alternative to paths
  // True if this role is trusted for `target_path`.
  bool Matches(const std::string& target_path) const;
};

struct SuccinctRoles {
  RoleKeys keys;
  int bit_length = 8;
  std::string name_prefix;
  // The bin role name for a target path: "<prefix>-<hex>" of the first bit_length bits of
  // sha256(path).
  std::string BinFor(const std::string& target_path) const;
  int NumBins() const { return 1 << bit_length; }
  std::string BinName(int index) const;
};

struct Delegations {
  std::map<std::string, PublicKey> keys;
  std::vector<DelegatedRole> roles;
  std::optional<SuccinctRoles> succinct;
};

struct Targets {
  Common common;
  std::map<std::string, TargetFile> targets;
  std::optional<Delegations> delegations;
  static Result<Targets> FromSigned(const Json& signed_json);
  // Parses only common + delegations, leaving `targets` empty (fast for large roles).
  static Result<Targets> FromSignedWithoutTargets(const Json& signed_json);
};

// A large targets role without a DOM (issue #12): for a file in canonical form the
// "signed" bytes are used exactly as they are in the file (the signature is verified over
// them, without a copy), the text is read in one validating pass that also records where
// each member of "signed" is, only the members other than "targets" are parsed, and a
// single target is looked up in the text on demand (one pass over the sorted "targets"
// object). Offsets refer to the text given to Parse, which the caller keeps.
struct LazyTargets {
  std::vector<Signature> signatures;
  Json signed_json;  // every member of "signed" but "targets" ({} there)
  Targets parsed;    // common and delegations; parsed.targets stays empty
  size_t signed_offset = 0, signed_size = 0;    // the "signed" object within the text
  size_t targets_offset = 0, targets_size = 0;  // the "targets" object within the text

  // `text` is the text that was parsed.
  std::string_view SignedBytes(std::string_view text) const { return text.substr(signed_offset, signed_size); }
  std::string_view TargetsText(std::string_view text) const { return text.substr(targets_offset, targets_size); }
  // The entry for `path`; nullopt when the role does not list it. kCorrupt when the entry
  // does not parse.
  Result<std::optional<TargetFile>> Find(std::string_view text, std::string_view path) const;
  // kUnsupported when `text` is not canonical JSON (use Envelope::Parse and the DOM then).
  static Result<LazyTargets> Parse(std::string_view text, uint64_t max_bytes);
};

// The entry for `path` in the text of a canonical "targets" object (sorted keys: one
// pass, stops once past `path`); nullopt when absent.
Result<std::optional<TargetFile>> FindTargetInCanonical(std::string_view targets_object, std::string_view path);

// Every entry of the text of a canonical "targets" object, each read from its own slice
// (no DOM of the whole object) with ParseTargetFile's checks; `with_custom` false leaves
// each entry's custom object unparsed (Json()). nullopt when the text is not of the plain
// shape this reads (parse it with the DOM then); kCorrupt names the first bad entry.
Result<std::optional<std::map<std::string, TargetFile>>> ReadCanonicalTargets(std::string_view targets_object,
                                                                             bool with_custom);

Result<TargetFile> ParseTargetFile(const Json& j);
// The same, consuming `j` (its custom object is moved into the result, not copied).
Result<TargetFile> ParseTargetFile(Json&& j);
Result<MetaFile> ParseMetaFile(const Json& j);
// Checks length (when given) and every listed hash of `data`.
Status CheckMetaFile(const MetaFile& m, std::string_view data, std::string_view what);

// fnmatch-style match used by TUF delegations ('*' does not cross '/').
bool PathPatternMatches(std::string_view pattern, std::string_view path);

// True when two snapshot listings of a role agree: version, length and hashes.
bool SameListing(const MetaFile& a, const MetaFile& b);
// Everything a role's signature check depends on besides its own bytes, as one comparable
// text: the threshold and the key material of each key id its delegator names for it and,
// for a delegation by name, its paths and terminating flag. Equal prints: a role verified
// under one stays verified under the other.
std::string DelegationPrint(const std::map<std::string, PublicKey>& keys, const RoleKeys& rk,
                            const std::optional<DelegatedRole>& delegation);

}  // namespace patchgate::tuf
