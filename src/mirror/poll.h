// The mirror's cheap poll of its upstream's timestamp.json: one kept-alive connection,
// and a conditional request (If-None-Match with the ETag the upstream sent for the bytes
// the mirror last switched to). An upstream that answers 304 costs a header; one that
// does not know ETags (or answers 200 anyway) is compared byte for byte by the caller, so
// both kinds of upstream work. The poll never decides trust: a 304 only means "the bytes
// you hold", and everything new goes through the TUF workflow.
// Threading: one Poll() at a time (the sync thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace patchgate::mirror {

struct PollOptions {
  std::string url;          // .../metadata/timestamp.json
  std::string node_token;   // Authorization: Bearer
  long connect_timeout_seconds = 5;
  long timeout_seconds = 10;  // a poll is small: the whole request is capped
  uint64_t max_bytes = 0;     // cap on the body (the caller's kMaxTimestampBytes)
};

struct PollResult {
  bool not_modified = false;  // 304: the upstream still holds the bytes of `if_none_match`
  std::string body;           // 200: the body (at most max_bytes)
  std::string etag;           // the ETag the upstream sent (empty when none)
};

class TimestampPoller {
 public:
  explicit TimestampPoller(PollOptions options);
  ~TimestampPoller();
  TimestampPoller(const TimestampPoller&) = delete;
  TimestampPoller& operator=(const TimestampPoller&) = delete;

  // GET, with "If-None-Match: <if_none_match>" when it is not empty. Errors as
  // client::HttpStatusToStatus (401 token refused, ...), kTooLarge past max_bytes,
  // kNetwork otherwise.
  Result<PollResult> Poll(const std::string& if_none_match);

  // Header values that may be sent back: an ETag is a quoted string of visible ASCII,
  // optionally weak (W/"..."), at most 256 bytes. Anything else is not used.
  static bool UsableETag(const std::string& etag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace patchgate::mirror
