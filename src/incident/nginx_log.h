// nginx "combined" access-log lines, parsed from a buffer (fuzzable):
//   $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
//   "$http_referer" "$http_user_agent"
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate::incident {

struct LogRecord {
  std::string remote_addr;
  std::string remote_user;  // "-" becomes empty
  int64_t time_us = 0;      // $time_local, as UTC microseconds
  std::string method;
  std::string path;         // request target, without the query string
  int status = 0;
  uint64_t bytes = 0;
  std::string referer;
  std::string user_agent;
};

// kCorrupt with a short reason for anything that is not a combined-format line, including
// a line with control bytes or invalid UTF-8 (nginx escapes both as \xHH). Every field of a
// record is UTF-8 text without control bytes; \xHH escapes of bytes that are not printable
// ASCII stay escaped.
Result<LogRecord> ParseCombinedLine(std::string_view line);

// "10/Oct/2000:13:55:36 -0700" -> UTC microseconds.
Result<int64_t> ParseNginxTime(std::string_view t);

}  // namespace patchgate::incident
