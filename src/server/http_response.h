// HTTP/1.1 response framing: status line, the headers every response carries (Server,
// Date, Content-Length, Connection) and the reason phrases. Pure functions except the
// Date, which is the current second. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace patchgate::server {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

const char* ReasonPhrase(int status);
// The current time as an IMF-fixdate (RFC 9110 §5.6.7), formatted at most once a second
// per thread.
const std::string& HttpDate();
// A whole response head, final CRLF included.
std::string ResponseHead(int status, const HeaderList& headers, uint64_t content_length, bool keep_alive);

}  // namespace patchgate::server
