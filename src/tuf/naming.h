// The one place that knows how TUF names files with consistent snapshots (TUF 1.0
// section 5: "<version>.<role>.json" for metadata, "<hash>.<file name>" for targets) and
// how patchgate names its product roles. Used by the repository writer, the client
// updater, the scan CLI (rescan), the access-log importer and the server's catalogue;
// nothing else spells these rules. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace patchgate::tuf {

// A role name percent-encoded like python-tuf (urllib quote(name, safe='')) and tuf-js
// (encodeURIComponent): every byte except [A-Za-z0-9._~-] becomes %XX. Identity for the
// names patchgate writes (see IsSafeRoleName). Used for local file names and URLs of
// roles named by other repositories.
std::string QuoteRoleName(std::string_view role);
std::string UnquoteRoleName(std::string_view quoted);

// True when `role` is a single path segment that no web server or client rewrites:
// 1-128 bytes of [A-Za-z0-9._-], not "." or "..", not starting with '.'. Every role
// patchgate creates satisfies it, so "<version>.<role>.json" is the same name on disk, in
// a URL and after any static server's decoding.
bool IsSafeRoleName(std::string_view role);

// "<version>.<quoted role>.json" (consistent snapshots); "<quoted role>.json" without.
std::string VersionedMetadataName(int64_t version, std::string_view role);
std::string MetadataName(std::string_view role);
// The inverse of VersionedMetadataName: "<digits>.<quoted role>.json" -> version (>= 1,
// no leading zero) and the unquoted role name. nullopt for any other name
// ("timestamp.json", "root.json", "x.json", "01.root.json", "3..json").
struct ParsedMetadataName {
  int64_t version = 0;
  std::string role;
};
std::optional<ParsedMetadataName> ParseVersionedMetadataName(std::string_view name);

// The role that holds the targets of product `product` ("product.<name>") and the
// name prefix of its succinct hash bins ("bins.<name>": bins are "bins.<name>-<hex>").
// Distinct prefixes keep a product role from ever colliding with another product's bin.
std::string ProductRoleName(std::string_view product);
std::string ProductBinPrefix(std::string_view product);
// The product of a role made by ProductRoleName; nullopt for any other name.
std::optional<std::string> ProductOfRole(std::string_view role);
// The role name of patchgate before 0.2 ("products/<name>"): only recognised, to say how
// to migrate; never written.
std::string LegacyProductRoleName(std::string_view product);

// "<dir>/<hash>.<base name>" for target path "<dir>/<base name>" (no dir: "<hash>.<name>").
std::string ConsistentTargetName(std::string_view target_path, std::string_view hash_hex);

// The inverse, for a path relative to targets/: when the last segment starts with a
// 64- or 128-digit lowercase hex hash and a '.', returns the target path and the hash
// (sha256 or sha512 hex). nullopt otherwise.
struct ParsedTargetName {
  std::string target_path;
  std::string hash_hex;
};
std::optional<ParsedTargetName> ParseConsistentTargetName(std::string_view rel);

}  // namespace patchgate::tuf
