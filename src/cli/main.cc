// patchgate: the vendor-side tool. A thin main over the library; subcommands are a table.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "cli/commands.h"
#include "core/heap_huge_pages.h"
#include "core/text.h"

namespace patchgate::cli {
namespace {

// Each area with the top-level commands it adds to (space-separated). Building every
// area's options costs about 3 million instructions, a quarter of a short command such as
// `incident scope`, so when the first argument is a command listed here only the areas
// listing it are registered; anything else (--help, --version, a typo) registers them all.
// tests/cli/startup_test.sh checks each command's help against the full table
// (PATCHGATE_CLI_ALL_AREAS=1 registers every area).
struct Area {
  Registrar reg;
  std::string_view commands;
};
constexpr Area kAreas[] = {
    {RegisterRepoCommands, "init publish key refresh verify"},
    {RegisterScanCommands, "scan rescan"},
    {RegisterAdminCommands, "org user grant downloads"},
    {RegisterServeCommands, "serve"},
    {RegisterIncidentCommands, "incident import-log notify"},
    {RegisterNodeCommands, "node nodes policy"},
    {RegisterMirrorCommands, "mirror"},
    {RegisterAdvisoryCommands, "advisory incident"},  // also `incident advisory`
};

bool Lists(std::string_view commands, std::string_view name) {
  while (!commands.empty()) {
    size_t sp = commands.find(' ');
    if (commands.substr(0, sp) == name) return true;
    if (sp == std::string_view::npos) break;
    commands.remove_prefix(sp + 1);
  }
  return false;
}

}  // namespace

int ReportError(const Status& s) {
  // Messages quote names and values from the command line and the store: escape what a
  // terminal would execute, line by line.
  std::string text = s.ToString(), safe;
  for (size_t start = 0; start <= text.size();) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    safe += EscapeForTerminal(std::string_view(text).substr(start, nl - start));
    if (nl < text.size()) safe += '\n';
    start = nl + 1;
  }
  std::fprintf(stderr, "patchgate: error: %s\n", safe.c_str());
  switch (s.code()) {
    case ErrorCode::kOk: return kExitOk;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kInfected: return kExitInfected;
    case ErrorCode::kScanFailed: return kExitScanError;
    case ErrorCode::kUnavailable:
    case ErrorCode::kUnauthorized: return kExitUnavailable;
    case ErrorCode::kConflict:
    case ErrorCode::kAlreadyExists: return kExitConflict;
    default: return kExitFailure;
  }
}

}  // namespace patchgate::cli

int main(int argc, char** argv) {
  using namespace patchgate::cli;
  CLI::App app{"patchgate: publish, serve, watch and trace signed software updates"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "patchgate 0.1.0");
  // `incident scope` builds one result and ends: its heap goes on huge pages
  // (core/heap_huge_pages.h) before the first allocation, so that the command table, the
  // store and the rows all land there (done later, the table alone had touched ~50 heap
  // pages of 4 KiB, a page fault each: ~0.8 ms of CPU on the project's VM).
  if (argc > 2 && std::string_view(argv[1]) == "incident" && std::string_view(argv[2]) == "scope")
    patchgate::GrowHeapOnHugePages(size_t{256} << 20);
  Context ctx;
  const std::string_view first = argc > 1 && !std::getenv("PATCHGATE_CLI_ALL_AREAS") ? argv[1] : "";
  bool any = false;
  for (const Area& a : kAreas) any |= !first.empty() && Lists(a.commands, first);
  for (const Area& a : kAreas)
    if (!any || Lists(a.commands, first)) a.reg(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  return ctx.exit_code;
}
