// Single-pass scanning of canonical JSON text without building a DOM, for large signed
// metadata (a 30,000-target targets.json is several MB): verify that bytes are canonical,
// then verify the signature over them directly and pick out only the members needed.
//
// IsCanonicalFast(text) == cjson::IsCanonical(text) for every input (the fuzz target
// checks this), but runs at memory speed and allocates nothing. Stateless, thread-safe.
#pragma once

#include <string_view>
#include <vector>

#include "core/status.h"

namespace patchgate::cjson {

// True if `text` is one JSON value in canonical form (sorted unique keys, no whitespace,
// only '"' and '\\' escaped, integers within 64 bits, valid UTF-8, nesting <= max_depth).
bool IsCanonicalFast(std::string_view text, size_t max_depth = 64);

// One member of an object of canonical text: its key exactly as written (only \" and \\
// can be escaped in it) and the raw text of its value; both are views of the text scanned.
struct RawMember {
  std::string_view key;
  std::string_view value;
};
// What ScanCanonical records besides validating.
struct ScannedMembers {
  std::vector<RawMember> top;     // the members of the document (when it is an object), in order
  std::vector<RawMember> nested;  // the members of the object value of top-level member `nested_key`
};
// IsCanonicalFast(text, max_depth) that also records, in the same single pass, the members
// of the document object and those of one of its object-valued members (e.g. the "signed"
// part of a TUF envelope), so that a multi-MB document is read once. `out` is filled only
// when the text is canonical.
bool ScanCanonical(std::string_view text, std::string_view nested_key, ScannedMembers* out, size_t max_depth = 64);

// For `object_text` holding a canonical JSON object, returns the raw text of the value of
// member `key` (a sub-view of object_text). kNotFound when absent; kCorrupt when the text
// is not an object. The input must have passed IsCanonicalFast (it is not re-validated).
Result<std::string_view> MemberSlice(std::string_view object_text, std::string_view key);

}  // namespace patchgate::cjson
