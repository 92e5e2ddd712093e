// The `patchgate` command line: one table of areas, each registering its subcommands.
// Each area lives in its own cmd_<area>.cc owned by the module it drives; the main only
// parses, runs the chosen callback and returns Context::exit_code.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"

namespace patchgate::cli {

// Exit codes (documented in README.md). Scripts outside the project rely on them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the command ran and found problems (verify, scan)
inline constexpr int kExitUsage = 2;        // bad arguments
inline constexpr int kExitInfected = 3;     // publish/scan refused an infected artifact
inline constexpr int kExitScanError = 4;    // the scanner could not give a clean verdict
inline constexpr int kExitUnavailable = 5;  // a store, server or key could not be used
inline constexpr int kExitConflict = 6;     // e.g. publish of an existing name with new bytes

struct Context {
  int exit_code = kExitOk;
};

// Prints "patchgate: error: <message>" to stderr and returns the exit code for `s`.
int ReportError(const Status& s);

using Registrar = void (*)(CLI::App& app, Context& ctx);

void RegisterRepoCommands(CLI::App& app, Context& ctx);      // init, key, publish, refresh, verify
void RegisterScanCommands(CLI::App& app, Context& ctx);      // scan, rescan
void RegisterAdminCommands(CLI::App& app, Context& ctx);     // org, user, grant, downloads, nodes
void RegisterServeCommands(CLI::App& app, Context& ctx);     // serve
void RegisterIncidentCommands(CLI::App& app, Context& ctx);  // incident, import-log, notify
void RegisterNodeCommands(CLI::App& app, Context& ctx);      // node, nodes, policy
void RegisterMirrorCommands(CLI::App& app, Context& ctx);    // mirror
void RegisterAdvisoryCommands(CLI::App& app, Context& ctx);  // advisory, incident advisory (after incident)

}  // namespace patchgate::cli
