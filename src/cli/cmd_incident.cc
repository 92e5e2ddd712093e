#include "cli/commands.h"

namespace patchgate::cli {

void RegisterIncidentCommands(CLI::App& app, Context& ctx) {}

}  // namespace patchgate::cli
