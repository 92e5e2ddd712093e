// Canonical JSON exactly as the TUF specification and securesystemslib define it:
// object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings escaped
// only for '"' and '\\' (every other byte, including control characters and non-ASCII
// UTF-8, is copied as is), integers only (a float is an error), true/false/null.
// The bytes produced are identical to securesystemslib.formats.encode_canonical().
//
// The value type is nlohmann::json (std::map objects, so keys iterate sorted and unknown
// fields survive a parse/encode round trip). Thread-compatible.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace patchgate {

using Json = nlohmann::json;

namespace cjson {

// Caps for untrusted input. A document over max_bytes is refused before parsing.
struct ParseLimits {
  size_t max_bytes = 64 * 1024 * 1024;
  size_t max_depth = 64;
};

// Parses JSON text. Errors are kCorrupt (malformed, duplicate object keys, nesting over
// max_depth, invalid UTF-8) or kTooLarge. Never throws.
Result<Json> Parse(std::string_view text, const ParseLimits& limits = {});

// Encodes `value` canonically. kInvalidArgument for floats (and non-finite numbers) and
// for strings or keys that are not valid UTF-8 (never written: no JSON parser reads them).
// Note: canonical JSON copies control characters raw (as securesystemslib does), so the
// canonical form of a value holding e.g. a PEM key is not valid JSON text: sign it, but
// write EncodeStandard() to disk.
Result<std::string> Encode(const Json& value);

// The same bytes as Encode() (sorted keys, no whitespace) except that control characters
// in strings are escaped (\n, \u001f, ...): standard JSON that every parser reads and whose
// parse canonicalises back to exactly Encode(value). Identical to Encode() when no string
// holds a control character. Same errors as Encode().
Result<std::string> EncodeStandard(const Json& value);

// True if `text` is exactly the canonical encoding of its own parse.
bool IsCanonical(std::string_view text);

}  // namespace cjson
}  // namespace patchgate
