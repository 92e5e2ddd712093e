// Single-pass scanning of canonical JSON text without building a DOM, for large signed
// metadata (a 30,000-target targets.json is several MB): verify that bytes are canonical,
// then verify the signature over them directly and pick out only the members needed.
//
// IsCanonicalFast(text) == cjson::IsCanonical(text) for every input (the fuzz target
// checks this), but runs at memory speed and allocates nothing. Stateless, thread-safe.
#pragma once

#include <string_view>

#include "core/status.h"

namespace patchgate::cjson {

// True if `text` is one JSON value in canonical form (sorted unique keys, no whitespace,
// only '"' and '\\' escaped, integers within 64 bits, valid UTF-8, nesting <= max_depth).
bool IsCanonicalFast(std::string_view text, size_t max_depth = 64);

// For `object_text` holding a canonical JSON object, returns the raw text of the value of
// member `key` (a sub-view of object_text). kNotFound when absent; kCorrupt when the text
// is not an object. The input must have passed IsCanonicalFast (it is not re-validated).
Result<std::string_view> MemberSlice(std::string_view object_text, std::string_view key);

}  // namespace patchgate::cjson
