#include "cli/commands.h"
#include "cli/common_flags.h"

namespace patchgate::cli {

PrePublishHookFactory PublishGateHookFactory() { return {}; }
void AddPublishGateFlags(CLI::App* publish) {}

void RegisterScanCommands(CLI::App& app, Context& ctx) {}

}  // namespace patchgate::cli
