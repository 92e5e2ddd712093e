#include "server/status_pages.h"

#include "server/replies.h"

namespace patchgate::server {

bool HealthPage(PendingSend* out, Metrics* m, bool keep, bool head_only) {
  return SendSmall(out, m, 200, "ok\n", keep, {}, head_only);
}

bool MetricsPage(PendingSend* later, Metrics* m, const std::function<std::string()>& extra, bool keep,
                 bool head_only) {
  std::string body = m->Render();
  if (extra) body += extra();
  return SendSmall(later, m, 200, body, keep, {}, head_only, "text/plain; version=0.0.4");
}

}  // namespace patchgate::server
