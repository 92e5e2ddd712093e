// Downloading one target file to a chosen path: the one streaming, length-capped,
// hash-while-reading download that both patchgate-client (Updater::DownloadTarget) and a
// mirror's parallel sync use. Thread-compatible: one Fetcher per thread.
#pragma once

#include <functional>
#include <string>

#include "client/fetcher.h"
#include "core/status.h"
#include "tuf/metadata.h"

namespace patchgate::client {

struct TargetFetchOptions {
  // Keep a partial download in "<dest>.part" across failures and continue it with an HTTP
  // Range request next time (its bytes are re-hashed first). false: start from 0 and
  // remove the partial file on failure.
  bool resume = false;
  // fsync the file before renaming it to dest. A mirror skips it and syncs its whole tree
  // once before switching snapshots.
  bool fsync = true;
  // Where the partial download lives (on dest's file system); empty: "<dest>.part". A
  // mirror keeps it in its private staging folder and renames the verified file straight
  // to its served name: one rename, and nothing partial ever inside the served tree.
  // partial_path == dest: the file is written in place, under its final name, and never
  // renamed (a mirror's private staging tree, whose files are all re-checked before they
  // are used); a partial download kept for resuming then sits under that name too.
  std::string partial_path;
  // Called once the bytes matched, just before the rename to dest (a mirror tells its
  // integrity watch that this write is expected).
  std::function<void()> before_rename;
};

// Fetches `url` into "<dest>.part" (or options.partial_path), checks the signed length (stops reading past it:
// kLengthMismatch) and every signed hash this build supports (kHashMismatch), then
// renames it to `dest`. `what` names the target in errors. Nothing is left at `dest`
// unless it matched.
Status FetchTargetTo(Fetcher* fetcher, const std::string& url, const std::string& what, const tuf::TargetFile& file,
                     const std::string& dest, const TargetFetchOptions& options);

// The URL path of a target under targets/: the consistent-snapshot name
// "<dir>/<sha256>.<base>" (or the path itself), each segment percent-encoded.
std::string TargetUrlPath(const std::string& target_path, const std::string& sha256, bool consistent);

}  // namespace patchgate::client
