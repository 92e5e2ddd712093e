#include "cli/commands.h"

namespace patchgate::cli {

void RegisterRepoCommands(CLI::App& app, Context& ctx) {}

}  // namespace patchgate::cli
