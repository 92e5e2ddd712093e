#include "cli/commands.h"

namespace patchgate::cli {

void RegisterAdminCommands(CLI::App& app, Context& ctx) {}

}  // namespace patchgate::cli
