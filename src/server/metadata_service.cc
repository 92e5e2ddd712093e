#include "server/metadata_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "core/log.h"
#include "server/http_response.h"
#include "server/replies.h"

namespace patchgate::server {

std::shared_ptr<const MetadataFile> MetadataService::CatalogueTimestamp(const std::string& name) {
  if (name != "timestamp.json" || !d_.catalogue->background()) return nullptr;
  if (d_.check_generation) d_.check_generation();
  return d_.catalogue->Timestamp();
}

void MetadataService::Respond(const RequestHead& req, const std::string& name, std::shared_ptr<const MetadataFile> m,
                              bool keep, PendingSend* out, const std::string* node) {
  HeaderList headers = {{"Content-Type", "application/json"},
                        {"Cache-Control", name == "timestamp.json" ? "no-cache" : "max-age=31536000, immutable"},
                        {"ETag", m->etag}};
  if (auto inm = req.Header("if-none-match"); inm && IfNoneMatchHits(*inm, m->etag)) {
    // No body; Content-Length says what a 200 would carry (RFC 9110 §8.6).
    d_.metrics->CountStatus(304);
    out->head = ResponseHead(304, headers, m->bytes->size(), keep);
    return;
  }
  d_.metrics->CountStatus(200);
  out->head = ResponseHead(200, headers, m->bytes->size(), keep);
  if (req.method == "HEAD") return;
  out->body = *m->bytes;
  out->owner = m->bytes;
  out->done = [this, node = node ? std::optional<std::string>(*node) : std::nullopt, name](uint64_t sent, bool) {
    d_.metrics->bytes_sent += sent;
    if (node && d_.options->chain.record_sync) d_.options->chain.record_sync(*node, "metadata/" + name, sent);
  };
}

bool MetadataService::Serve(const RequestHead& req, const std::string& name, bool keep, bool head_only,
                            PendingSend* later, const std::string* node) {
  if (auto ts = CatalogueTimestamp(name)) {
    Respond(req, name, ts, keep, later, node);
    return keep;
  }
  int fd = OpenBeneath(d_.repo_fd, "metadata/" + name);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd < 0 && errno == ELOOP)
      log::Warn("refusing to serve a symbolic link in the repository", {{"file", "metadata/" + name}});
    if (fd >= 0) ::close(fd);
    return SendSmall(later, d_.metrics, 404, "not found\n", keep, {}, head_only);
  }
  auto file = d_.files->Load(fd, st, name);
  ::close(fd);
  if (!file.ok())
    return SendSmall(later, d_.metrics, 503, "this file is temporarily unavailable; try again\n", keep, {}, head_only);
  Respond(req, name, *file, keep, later, node);  // the loop sends it (as the client reads)
  return keep;
}

bool MetadataService::ServeFromLoop(const RequestHead& req, const std::string& name, bool keep, PendingSend* out) {
  if (req.method != "GET") return false;
  std::shared_ptr<const MetadataFile> file = CatalogueTimestamp(name);
  if (!file) {
    struct stat st {};
    if (!StatForCacheCheck(d_.repo_fd, "metadata/" + name, &st)) return false;
    file = d_.files->Cached(st, name);
    if (!file) return false;
  }
  ++d_.metrics->loop_answers;
  Respond(req, name, file, keep, out, nullptr);
  return true;
}

}  // namespace patchgate::server
