// Flags shared by several subcommands: key passphrases, and the publish gate seam.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "core/status.h"
#include "tuf/repository.h"

namespace patchgate::cli {

// --passphrase-file / PATCHGATE_PASSPHRASE / terminal prompt, and --insecure-plaintext-keys.
struct KeyFlags {
  std::optional<std::string> passphrase_file;
  bool insecure_plaintext = false;
  void Add(CLI::App* cmd);
  Result<tuf::KeyAccess> Access(bool confirm) const;
};

// The scan gate plugs into publish through this factory (set by the scan area; empty when
// patchgate is built without it). Given the repository directory it returns the hook.
using PrePublishHookFactory = std::function<Result<tuf::PrePublishHook>(const std::string& repo_dir)>;
PrePublishHookFactory PublishGateHookFactory();
uint64_t PublishGateMaxFileSize();  // the gate's --max-file-size: inputs over it are not even staged
// Adds the gate's flags (e.g. --signatures) to `publish`.
void AddPublishGateFlags(CLI::App* publish);

}  // namespace patchgate::cli

#include <memory>

#include "store/store.h"

namespace patchgate::cli {

// --store URL; default $PATCHGATE_STORE, else sqlite://patchgate.db (in the working directory).
std::string DefaultStoreUrl();
void AddStoreFlag(CLI::App* cmd, std::string* url);
// Opens the store; errors say how to fix the URL or reach the server.
Result<std::unique_ptr<Store>> OpenStore(const std::string& url);

// Opens the store and runs `fn` on it; reports an unusable store with its exit code.
int WithStore(const std::string& url, const std::function<int(Store&)>& fn);

// Parses an optional RFC 3339 time flag into microseconds.
Result<std::optional<int64_t>> ParseTimeFlag(const std::string& value, const char* flag);

// One CSV cell: CsvCell of core/csv.h (quoted, formula-neutralised, valid UTF-8). New code
// uses core/csv.h directly.
std::string CsvField(const std::string& s);

}  // namespace patchgate::cli
