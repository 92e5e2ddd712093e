#include "server/routes.h"

namespace patchgate::server {

RouteMatch MatchRoute(const RequestHead& req, bool has_extra_routes) {
  RouteMatch m;
  auto origin = OriginForm(req);
  auto path = origin.ok() ? NormalizeTarget(*origin) : Result<NormalizedPath>(origin.status());
  if (req.method == "POST" && path.ok() && path->area == Area::kAck) {
    m.route = Route::kAckConfirm;
    m.rel = path->rel;
    return m;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    m.route = Route::kMethodNotAllowed;
    return m;
  }
  m.extra_first = has_extra_routes && req.target.rfind("/.well-known/", 0) == 0;
  if (!path.ok()) {
    m.route = path.status().code() == ErrorCode::kNotFound ? Route::kNotFound : Route::kBadPath;
    return m;
  }
  m.rel = path->rel;
  switch (path->area) {
    case Area::kHealth: m.route = Route::kHealth; break;
    case Area::kMetrics: m.route = Route::kMetrics; break;
    case Area::kAck: m.route = Route::kAckPage; break;
    case Area::kMetadata: m.route = Route::kMetadata; break;
    case Area::kTargets: m.route = Route::kTarget; break;
    case Area::kOther: m.route = Route::kNotFound; m.rel.clear(); break;
  }
  return m;
}

}  // namespace patchgate::server
