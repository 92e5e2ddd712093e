#include "server/download_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "server/audit_text.h"
#include "server/http_response.h"
#include "server/range.h"
#include "server/replies.h"
#include "server/served_files.h"

namespace patchgate::server {

namespace {
// Plain connections send a body of at least kSendfileFromMemfdMin from the sealed memfd
// (sendfile, no copy through user space); a smaller one goes out with the head in one write.
// The memfd holds its whole 2 MiB spans in 2 MiB folios (VerifiedBytes::Reserve): sendfile
// from 4 KiB shmem pages looked each page up on its own, 37% of the server's CPU for a
// 50 MiB body (perf, bench/serve_cpu.sh PERF=record).
constexpr uint64_t kSendfileFromMemfdMin = 64 << 10;

// The bytes a request asks for of a file of `len` bytes: all of it, or its one Range, with
// the header as it is recorded; `unsatisfiable` for a range outside the file (416). Both
// serving paths (a worker's and the loop's) answer from this.
struct RequestedBytes {
  bool unsatisfiable = false;
  bool ranged = false;
  uint64_t first = 0, last = 0;
  std::string header;
};
RequestedBytes RequestedBytesOf(const RequestHead& req, uint64_t len) {
  RequestedBytes want;
  want.last = len ? len - 1 : 0;
  if (auto r = req.Header("range")) {
    want.header = CaptureText(*r, kMaxRangeBytes);
    ByteRange br = ParseRange(*r, len);
    if (br.kind == ByteRange::Kind::kUnsatisfiable) want.unsatisfiable = true;
    if (br.kind == ByteRange::Kind::kRange) {
      want.ranged = true;
      want.first = br.first;
      want.last = br.last;
    }
  }
  return want;
}
}  // namespace

void DownloadService::CheckGeneration() {
  const auto* g = d_.options->chain.content_generation;
  if (!g) return;
  uint64_t now = g->load();
  if (now != seen_generation_.exchange(now)) d_.catalogue->Expire();
}

bool DownloadService::CatalogueCurrent() const {
  const auto* g = d_.options->chain.content_generation;
  return !g || g->load() == seen_generation_.load();
}

void DownloadService::RecordSync(const std::string* node, const std::string& what, uint64_t bytes) {
  if (node && d_.options->chain.record_sync) d_.options->chain.record_sync(*node, what, bytes);
}

void DownloadService::Refused(const User& user, const std::string& target, const std::string& reason) {
  if (d_.options->chain.refused && user.id != 0) d_.options->chain.refused(user, target, reason);
}

void DownloadService::Quarantine(const tuf::CatalogueEntry& entry, const std::string& actual, const std::string& why) {
  log::Error("target does not match its signed hash; refusing to serve it",
             {{"target", entry.path}, {"expected", entry.sha256}, {"actual", actual}, {"why", why},
              {"node", d_.options->node_name}});
  Status q = d_.quarantine->QuarantineTargetOnNode(d_.options->node_name, entry.path, entry.sha256, actual,
                                            SystemClock::Get().NowMicros());
  if (!q.ok()) log::Error("could not record the quarantine", {{"target", entry.path}, {"error", q.ToString()}});
}

// Sends body_len bytes from `first`: through sendfile when the kernel verifies the reads
// (fs-verity), otherwise chunk by chunk, each checked before any of its bytes leave; a
// chunk that no longer matches cuts the transfer there (*integrity_error says why).
// `slice` is the first chunk, already read and checked. Returns the bytes sent.
uint64_t DownloadService::SendChecked(Conn& c, int fd, uint64_t first, uint64_t body_len, bool kernel_verified,
                     CheckedReader& reader, std::string_view slice, std::string* integrity_error) {
  if (kernel_verified) return c.SendFile(fd, first, body_len);
  uint64_t sent = 0;
  // Double buffering on one thread: while the socket is full with the current chunk, the
  // next one is read and checked (the reader keeps two buffers), so hashing overlaps
  // with the kernel sending. A next chunk that fails its check ends the transfer after
  // the current (verified) one.
  std::optional<std::string_view> next;
  std::string next_error;
  while (!slice.empty()) {
    size_t w = 0;
    Io r = c.TryWrite(slice, {}, sent + slice.size() < body_len, &w);
    slice.remove_prefix(w);
    sent += w;  // what the kernel took, also of a slice cut short
    if (r == Io::kWouldBlock) {
      if (!next && next_error.empty() && !reader.done()) {
        auto s = reader.Next();
        if (s.ok()) next = *s;
        else next_error = s.status().message();
        continue;
      }
      if (w == 0 && !c.WaitReady()) break;  // nothing taken for the send timeout: drop the client
      continue;
    }
    if (r != Io::kOk) break;
    if (next) {
      slice = *next;
      next.reset();
      continue;
    }
    if (!next_error.empty()) {
      *integrity_error = next_error;
      break;
    }
    if (reader.done()) break;
    auto s = reader.Next();
    if (!s.ok()) {
      *integrity_error = s.status().message();
      break;
    }
    slice = *s;
  }
  return sent;
}

bool DownloadService::Serve(Conn& c, const RequestHead& req, const std::string& rel, const User& user,
                 const std::string& remote, bool* keep, bool head_only, PendingSend* later,
                 const std::string* node) {
  CheckGeneration();
  Status cs = d_.catalogue->Refresh();
  if (!cs.ok()) log::Warn("catalogue reload failed; serving the last good one", {{"error", cs.ToString()}});
  auto entry = d_.catalogue->Find(rel);
  if (!entry) return SendSmall(later, d_.metrics, 404, "not found\n", *keep, {}, head_only);
  std::string ekey = std::to_string(user.org_id) + "\n" + entry->product;
  bool is_entitled = node != nullptr;  // a node of the chain mirrors every product
  if (!is_entitled && !d_.entitlement_cache->Get(ekey, &is_entitled)) {
    auto entitled = AskOnceMore([&] { return d_.entitlements->IsEntitled(user.org_id, entry->product); });
    if (!entitled.ok()) return SendSmall(later, d_.metrics, 503, "the audit store is unavailable; try again later\n", false);
    is_entitled = *entitled;
    d_.entitlement_cache->Put(ekey, is_entitled);
  }
  if (!is_entitled) return SendSmall(later, d_.metrics, 403, "your organisation is not entitled to " + entry->product + "\n", *keep, {}, head_only);

  int fd = OpenBeneath(d_.repo_fd, "targets/" + rel);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    log::Error(fd < 0 && errno == ELOOP ? "published target is a symbolic link; not served"
                                        : "published target missing on disk",
               {{"target", entry->path}, {"file", "targets/" + rel}});
    if (fd >= 0) ::close(fd);
    if (!node) Refused(user, entry->path, "not on this node's disk (quarantined or missing)");
    return SendSmall(later, d_.metrics, 503, "this file is temporarily unavailable\n", *keep, {}, head_only);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  // A node's pull adds no bytes to the verified memory (VerifyCache::Verify).
  auto v = d_.verify->Verify(fd, st, d_.metrics, /*cache_content=*/node == nullptr);
  if (!v.ok() || !ConstantTimeEquals(v->v->sha256, entry->sha256) || v->v->length != entry->length) {
    ++d_.metrics->verify_mismatches;
    Quarantine(*entry, v.ok() ? v->v->sha256 : "unreadable", v.ok() ? "whole-file hash" : v.status().ToString());
    if (!node) Refused(user, entry->path, "integrity: does not match its signed hash; quarantined");
    return SendSmall(later, d_.metrics, 503, "this file failed integrity verification and is not served\n", false);
  }
  std::shared_ptr<const FileVerification> verified = v->v;
  // A small file's verified bytes, in memory: exactly the bytes whose SHA-256 was just
  // compared with the signed one. Sent as they are (no re-read, no re-hash).
  std::shared_ptr<const VerifiedBytes> content = v->content;

  uint64_t len = entry->length;
  RequestedBytes want = RequestedBytesOf(req, len);
  if (want.unsatisfiable)
    return SendSmall(later, d_.metrics, 416, "range not satisfiable\n", *keep, {{"Content-Range", "bytes */" + std::to_string(len)}}, head_only);
  uint64_t first = want.first, last = want.last;
  bool ranged = want.ranged;
  std::string range_header = std::move(want.header);
  std::string etag = "\"" + entry->sha256 + "\"";
  if (auto inm = req.Header("if-none-match"); inm && IfNoneMatchHits(*inm, etag)) {
    // Not a download: nothing is sent, so nothing is recorded. Content-Length is what a
    // 200 would carry (RFC 9110 §8.6).
    d_.metrics->CountStatus(304);
    return Queue(later, ResponseHead(304, {{"ETag", etag}, {"Cache-Control", "private, max-age=31536000, immutable"}},
                                   len, *keep)) && *keep;
  }
  uint64_t body_len = (len == 0) ? 0 : last - first + 1;
  int status = ranged ? 206 : 200;
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", "application/octet-stream"}, {"ETag", etag}, {"Accept-Ranges", "bytes"},
      {"Cache-Control", "private, max-age=31536000, immutable"}};
  if (ranged)
    headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                              std::to_string(len));
  if (head_only) {
    d_.metrics->CountStatus(status);
    return Queue(later, ResponseHead(status, headers, body_len, *keep)) && *keep;
  }
  if (content && verified->mode == ServeMode::kChunkDigests) {
    std::string_view body = content->view().substr(static_cast<size_t>(first), static_cast<size_t>(body_len));
    std::string head = ResponseHead(status, headers, body_len, *keep);
    if (node) {
      d_.metrics->CountStatus(status);
      SendFromMemory(c, std::move(head), content, body, later, [this, node = *node, rel](uint64_t sent, bool) {
        d_.metrics->bytes_sent += sent;
        RecordSync(&node, "targets/" + rel, sent);
      });
      return *keep;
    }
    // The loop holds it until the record is durable, then sends it.
    DownloadFromMemory(req, user, *entry, content, first, last, ranged, range_header, remote, *keep, later);
    return *keep;
  }
  // Hash-while-send: the first chunk is read and checked before anything is recorded or
  // sent, so a file changed since its verification is refused whole (503, quarantined).
  const bool kernel_verified = verified->mode == ServeMode::kFsVerity;
  CheckedReader reader(fd, verified, first, last);
  std::string_view slice;
  if (!kernel_verified && body_len > 0) {
    auto s = reader.Next();
    if (!s.ok()) {
      ++d_.metrics->verify_mismatches;
      Quarantine(*entry, "changed on disk after verification", s.status().message());
      if (!node) Refused(user, entry->path, "integrity: changed on disk after verification; quarantined");
      return SendSmall(later, d_.metrics, 503, "this file failed integrity verification and is not served\n", false);
    }
    slice = *s;
  }
  if (node) {
    // A sync, not a customer download: no audit record; reported to the chain instead.
    // The bytes are checked exactly as for a customer: a mirror never receives a changed byte.
    d_.metrics->CountStatus(status);
    std::string integrity_error;
    uint64_t sent = 0;
    if (c.Write(ResponseHead(status, headers, body_len, *keep), body_len > 0))
      sent = SendChecked(c, fd, first, body_len, kernel_verified, reader, slice, &integrity_error);
    d_.metrics->bytes_sent += sent;
    if (!integrity_error.empty()) {
      ++d_.metrics->integrity_aborts;
      ++d_.metrics->verify_mismatches;
      Quarantine(*entry, "changed on disk while being synced", integrity_error);
    }
    RecordSync(node, "targets/" + rel, sent);
    return sent == body_len && *keep;
  }
  // The record is durable before the first byte.
  auto id = d_.audit->Begin(MakeStart(req, user, *entry, range_header, remote));
  if (!id.ok()) return SendSmall(later, d_.metrics, 503, "the audit store is unavailable; nothing was served\n", false);

  d_.metrics->CountStatus(status);
  uint64_t sent = 0;
  std::string integrity_error;
  if (c.Write(ResponseHead(status, headers, body_len, *keep), body_len > 0))
    sent = SendChecked(c, fd, first, body_len, kernel_verified, reader, slice, &integrity_error);
  if (!integrity_error.empty()) {
    // Cut mid-stream: the record says aborted with the bytes really sent (all of them
    // verified), and the file is quarantined on this node.
    ++d_.metrics->integrity_aborts;
    ++d_.metrics->verify_mismatches;
    log::Error("download cut: the file changed while it was being served",
               {{"target", entry->path}, {"download", std::to_string(*id)}, {"bytes_sent", std::to_string(sent)},
                {"reason", integrity_error}});
    Quarantine(*entry, "changed on disk while being served", integrity_error);
  }
  Finished(*id, sent, body_len, ranged, integrity_error.empty() ? "" : "integrity: " + integrity_error);
  return sent == body_len && *keep;
}

bool DownloadService::ServeFromLoop(const RequestHead& req, const std::string& rel, const User& user,
                                    const std::string& remote, bool keep, PendingSend* out) {
  if (!CatalogueCurrent()) return false;
  if (!d_.catalogue->CurrentWithoutLoading()) return false;
  auto entry = d_.catalogue->Find(rel);
  if (!entry) return false;
  bool entitled = false;
  if (!d_.entitlement_cache->Get(std::to_string(user.org_id) + "\n" + entry->product, &entitled) || !entitled)
    return false;
  // The verified bytes are sent only while the file at the path is still the one they
  // were read and verified from (a changed file goes to a worker: verified again, and a
  // mismatch quarantined).
  struct stat st {};
  if (!StatForCacheCheck(d_.repo_fd, "targets/" + rel, &st)) return false;
  auto v = d_.verify->CachedContent(st, d_.metrics);
  if (!v || v->v->mode != ServeMode::kChunkDigests || !ConstantTimeEquals(v->v->sha256, entry->sha256) ||
      v->v->length != entry->length)
    return false;
  if (req.Header("if-none-match")) return false;
  uint64_t len = entry->length;
  RequestedBytes want = RequestedBytesOf(req, len);
  if (want.unsatisfiable) return false;
  uint64_t first = want.first, last = want.last;
  bool ranged = want.ranged;
  std::string range_header = std::move(want.header);
  ++d_.metrics->loop_answers;
  DownloadFromMemory(req, user, *entry, v->content, first, last, ranged, range_header, remote, keep, out);
  return true;
}

DownloadStart DownloadService::MakeStart(const RequestHead& req, const User& user, const tuf::CatalogueEntry& entry,
                        const std::string& range_header, const std::string& remote) {
  DownloadStart start;
  start.started_at = SystemClock::Get().NowMicros();
  start.node = d_.options->node_name;
  start.user_id = user.id;
  start.org_id = user.org_id;
  start.target_path = entry.path;
  start.sha256 = entry.sha256;
  start.range = range_header;
  start.remote_addr = remote;
  if (auto ua = req.Header("user-agent")) start.user_agent = CaptureText(*ua, kMaxUserAgentBytes);
  return start;
}

// Completes a download's record with the body bytes the client took, and why it was cut
// when that was for integrity (`detail`). Never blocks.
void DownloadService::Finished(int64_t id, uint64_t sent, uint64_t body_len, bool ranged, std::string detail) {
  d_.metrics->bytes_sent += sent;
  DownloadOutcome outcome = sent < body_len ? DownloadOutcome::kAborted
                                            : (ranged ? DownloadOutcome::kPartial : DownloadOutcome::kComplete);
  if (outcome == DownloadOutcome::kComplete) ++d_.metrics->downloads_complete;
  else if (outcome == DownloadOutcome::kPartial) ++d_.metrics->downloads_partial;
  else ++d_.metrics->downloads_aborted;
  d_.audit->Finish({id, SystemClock::Get().NowMicros(), sent, outcome, std::move(detail)});
}


// A download served from verified memory: the response waits for the audit record's
// group commit without holding a thread (PendingSend::wait), then the loop sends it.
void DownloadService::DownloadFromMemory(const RequestHead& req, const User& user, const tuf::CatalogueEntry& entry,
                        std::shared_ptr<const VerifiedBytes> content, uint64_t first, uint64_t last, bool ranged,
                        const std::string& range_header, const std::string& remote, bool keep, PendingSend* out) {
  uint64_t len = entry.length;
  uint64_t body_len = len == 0 ? 0 : last - first + 1;
  int status = ranged ? 206 : 200;
  HeaderList headers = {{"Content-Type", "application/octet-stream"}, {"ETag", "\"" + entry.sha256 + "\""},
                        {"Accept-Ranges", "bytes"}, {"Cache-Control", "private, max-age=31536000, immutable"}};
  if (ranged)
    headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                              std::to_string(len));
  out->head = ResponseHead(status, headers, body_len, keep);
  out->body = content->view().substr(static_cast<size_t>(first), static_cast<size_t>(body_len));
  // Plain connections send a larger body from the sealed memfd without a copy through
  // user space; a small one goes out with the head in one write.
  out->body_fd = body_len >= kSendfileFromMemfdMin ? content->sealed_fd() : -1;
  out->body_fd_offset = first;
  out->owner = std::move(content);
  auto id = std::make_shared<int64_t>(0);
  out->done = [this, id, body_len, ranged](uint64_t sent, bool) { Finished(*id, sent, body_len, ranged); };
  out->refusal = [] {
    std::string why = "the audit store is unavailable; nothing was served\n";
    return ResponseHead(503, {{"Content-Type", "text/plain; charset=utf-8"}}, why.size(), false) + why;
  };
  // The record is durable before the first byte.
  out->wait = [this, id, status, start = MakeStart(req, user, entry, range_header, remote)](
                  std::function<void(bool)> ready) mutable {
    d_.audit->BeginAsync(std::move(start), [this, id, status, ready = std::move(ready)](Result<int64_t> r) {
      if (r.ok()) *id = *r;
      d_.metrics->CountStatus(r.ok() ? status : 503);
      ready(r.ok());
    });
  };
}


}  // namespace patchgate::server
