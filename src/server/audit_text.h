// Text from the network (User-Agent, Range, remote address) made fit for the audit
// record at capture: always valid UTF-8, bounded, and unambiguous. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace patchgate::server {

// Named caps, in bytes of the captured (escaped) text.
inline constexpr size_t kMaxUserAgentBytes = 256;
inline constexpr size_t kMaxRangeBytes = 200;
inline constexpr size_t kMaxRemoteAddrBytes = 64;

// Valid UTF-8 characters other than control characters are kept; every other byte is
// written as \xNN (upper-case hex) and a backslash as \\ so the original bytes can be
// told apart. The result holds at most `max_bytes` bytes and is cut only between
// characters or escapes (never inside either); a cut result ends in "..." (counted in
// the cap). Always valid UTF-8.
std::string CaptureText(std::string_view raw, size_t max_bytes);

}  // namespace patchgate::server
