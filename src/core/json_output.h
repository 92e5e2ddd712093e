// The one way patchgate turns a JSON value into text for output (--json, reports, webhook
// bodies): whatever bytes its strings hold. nlohmann's dump() aborts the process
// (type_error 316) on a string that is not valid UTF-8; a store written by an older version
// or by hand can hold such bytes. JsonText escapes them the way the store does ("\xHH" per
// invalid byte, see EscapeInvalidUtf8), in values and in object keys, so the output is
// standard JSON that every reader parses. Valid documents cost one dump. Thread-safe.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace patchgate {

// indent as nlohmann's dump: -1 for one line, n >= 0 for n spaces per level.
std::string JsonText(const nlohmann::json& j, int indent = 2);
std::string JsonText(const nlohmann::ordered_json& j, int indent = 2);

}  // namespace patchgate
