#include "cli/commands.h"

namespace patchgate::cli {

void RegisterScanCommands(CLI::App& app, Context& ctx) {}

}  // namespace patchgate::cli
