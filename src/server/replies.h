// Small helpers every route handler of `patchgate serve` shares: whole small responses left
// for the event loop to send, a body sent from memory, and a store look-up asked once more
// after an outage. Thread-safe (each call touches only its arguments and atomic metrics).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "server/connection.h"
#include "server/event_loop.h"
#include "server/http_response.h"
#include "server/metrics.h"

namespace patchgate::server {

// A whole small response (an error page, a HEAD answer, a 304), left in *later: the event
// loop writes it as the client reads (a client that reads nothing is dropped at the send
// timeout), so no worker waits on a slow reader for it. Counted in `m`. Returns whether
// the connection may go on after it: false when it says "Connection: close".
bool SendSmall(PendingSend* later, Metrics* m, int status, const std::string& body, bool keep,
               HeaderList headers = {}, bool head_only = false,
               const char* content_type = "text/plain; charset=utf-8");
// Leaves `bytes` (a whole response) in *later; returns true.
inline bool Queue(PendingSend* later, std::string bytes) {
  later->head = std::move(bytes);
  return true;
}

// Sends a response whose body is in memory: what the socket takes now is sent from this
// thread; the rest is left in *later for the loop (a slow reader holds no thread). `done`
// gets the body bytes the client took and whether that was all (on this thread or on the
// loop; it must not block). `owner` keeps `body` alive.
void SendFromMemory(Conn& c, std::string head, std::shared_ptr<const void> owner, std::string_view body,
                    PendingSend* later, std::function<void(uint64_t, bool)> done);

// A look-up that finds the store unavailable is asked once more: a connection that died
// while idle (the database restarted) is only found out by its next statement, and the
// store reconnects on the one after.
template <typename F>
auto AskOnceMore(F ask) {
  auto r = ask();
  if (!r.ok() && r.status().code() == ErrorCode::kUnavailable) r = ask();
  return r;
}

}  // namespace patchgate::server
