// The rules for names a person chooses: products, organisations and users. One place, so the
// CLI, the store and the TUF repository agree on what a name may be.
//
// A product name becomes part of a TUF role name and of a file name that static web servers
// (nginx, `python3 -m http.server`, CDNs) serve as they are, so it is a plain ASCII path
// segment that no server decodes or normalises. Organisation and user names are free text
// shown in tables, mails and JSON, so they are valid UTF-8 without control or bidirectional
// formatting characters, without leading/trailing whitespace, and under a byte cap.
// Pure functions; thread-safe. Messages quote the name with EscapeForTerminal.
#pragma once

#include <cstddef>
#include <string_view>

#include "core/status.h"

namespace patchgate {

inline constexpr size_t kMaxProductNameLength = 64;         // characters (= bytes: ASCII only)
inline constexpr size_t kMaxOrganisationNameBytes = 200;    // UTF-8 bytes
inline constexpr size_t kMaxUserNameBytes = 100;            // UTF-8 bytes

// 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit, not ending in '.'
// (so never "." or ".."). kInvalidArgument otherwise, saying which rule failed.
Status ValidateProductName(std::string_view name);
bool IsValidProductName(std::string_view name);

// Valid UTF-8; no C0 control, DEL, C1 control or bidirectional formatting character; no
// leading or trailing whitespace; not empty; at most the byte cap above.
// kInvalidArgument otherwise (the message names the rule, and the cap when it is exceeded).
Status ValidateOrganisationName(std::string_view name);
// The same, and one word: no whitespace and no ':' anywhere (a user name appears in access
// logs as $remote_user and in HTTP basic credentials "user:token").
Status ValidateUserName(std::string_view name);

}  // namespace patchgate
