// The route table of `patchgate serve`: which handler answers a request, decided from its
// method and target alone (no store, no disk, no token). The server's worker path and its
// event-loop fast path both route through MatchRoute, so they cannot disagree.
//
//   method      target                       route
//   POST        /ack/<token>                 kAckConfirm  (records the acknowledgement)
//   not GET/HEAD                             kMethodNotAllowed (405)
//   GET/HEAD    /.well-known/...             the extra routes first (extra_first), then as below
//   GET/HEAD    /healthz                     kHealth
//   GET/HEAD    /metrics                     kMetrics
//   GET/HEAD    /ack/<token>                 kAckPage     (a page whose button POSTs)
//   GET/HEAD    /metadata/<name>             kMetadata    (token needed)
//   GET/HEAD    /targets/<path>              kTarget      (token and entitlement needed)
//   GET/HEAD    a path that cannot be served kNotFound (404) or kBadPath (400)
// Pure; thread-safe.
#pragma once

#include <string>

#include "server/http_request.h"

namespace patchgate::server {

enum class Route {
  kHealth,
  kMetrics,
  kAckPage,
  kAckConfirm,
  kMetadata,
  kTarget,
  kNotFound,
  kBadPath,
  kMethodNotAllowed,
};

struct RouteMatch {
  Route route = Route::kNotFound;
  // kMetadata: the flat file name under metadata/; kTarget: the path under targets/;
  // kAckPage and kAckConfirm: the acknowledgement token. Normalised (NormalizeTarget).
  std::string rel;
  // GET or HEAD under /.well-known/ with extra routes installed: ask them first; `route`
  // is the answer when they decline.
  bool extra_first = false;
};

RouteMatch MatchRoute(const RequestHead& req, bool has_extra_routes);

// Whether the route serves repository content (a token is needed).
inline bool NeedsToken(Route r) { return r == Route::kMetadata || r == Route::kTarget; }

}  // namespace patchgate::server
