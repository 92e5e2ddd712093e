#include "cli/commands.h"

namespace patchgate::cli {

void RegisterServeCommands(CLI::App& app, Context& ctx) {}

}  // namespace patchgate::cli
