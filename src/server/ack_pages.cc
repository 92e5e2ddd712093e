#include "server/ack_pages.h"

#include "core/clock.h"
#include "crypto/hash.h"
#include "server/replies.h"

namespace patchgate::server {

bool AckPage(PendingSend* later, Metrics* m, const std::string& token, bool keep, bool head_only) {
  std::string page =
      "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">"
      "<title>Acknowledge the security notice</title></head><body><h1>Acknowledge the security notice</h1>"
      "<p>Press the button to confirm that your organisation has received this notice.</p>"
      "<form method=\"post\" action=\"/ack/" + token + "\"><button type=\"submit\">Confirm receipt</button></form>"
      "</body></html>\n";
  return SendSmall(later, m, 200, page, keep, {{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}},
                   head_only, "text/html; charset=utf-8");
}

bool AckConfirm(PendingSend* later, Metrics* m, NotificationLedger* acks, const std::string& token, bool keep) {
  Status st = acks->Acknowledge(Sha256Hex(token), SystemClock::Get().NowMicros());
  if (st.code() == ErrorCode::kNotFound) return SendSmall(later, m, 404, "not found\n", keep);
  if (!st.ok()) return SendSmall(later, m, 503, "try again later\n", false);
  std::string body =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acknowledged</title></head><body>"
      "<h1>Thank you</h1><p>Your acknowledgement has been recorded.</p></body></html>\n";
  return SendSmall(later, m, 200, body, keep, {{"Cache-Control", "no-store"}}, false, "text/html; charset=utf-8");
}

}  // namespace patchgate::server
