// patchgate: the vendor-side tool. A thin main over the library; subcommands are a table.
#include <cstdio>

#include "cli/commands.h"
#include "core/text.h"

namespace patchgate::cli {
namespace {

constexpr Registrar kAreas[] = {
    RegisterRepoCommands, RegisterScanCommands, RegisterAdminCommands,
    RegisterServeCommands, RegisterIncidentCommands, RegisterNodeCommands, RegisterMirrorCommands,
    RegisterAdvisoryCommands,
};

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
  Context ctx;
  for (Registrar r : kAreas) r(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  return ctx.exit_code;
}
