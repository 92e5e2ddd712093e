#include "server/replies.h"

namespace patchgate::server {

bool SendSmall(PendingSend* later, Metrics* m, int status, const std::string& body, bool keep, HeaderList headers,
               bool head_only, const char* content_type) {
  m->CountStatus(status);
  headers.emplace_back("Content-Type", content_type);
  if (status == 401) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"patchgate\"");
  std::string h = ResponseHead(status, headers, body.size(), keep);
  if (!head_only) h += body;
  return Queue(later, std::move(h)) && keep;
}

void SendFromMemory(Conn& c, std::string head, std::shared_ptr<const void> owner, std::string_view body,
                    PendingSend* later, std::function<void(uint64_t, bool)> done) {
  size_t wrote = 0;
  Io r = c.TryWrite(head, body, false, &wrote);
  if (r == Io::kWouldBlock) {
    later->head = std::move(head);
    later->owner = std::move(owner);
    later->body = body;
    later->offset = wrote;
    later->done = std::move(done);
    return;
  }
  uint64_t body_sent = wrote > head.size() ? wrote - head.size() : 0;
  if (done) done(body_sent, r == Io::kOk);
}

}  // namespace patchgate::server
