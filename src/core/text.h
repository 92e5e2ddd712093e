// Small text checks shared by the parsers of untrusted input (JSON metadata, access logs).
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate {

// Length of the valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF)
// starting at s[i]: 1 for ASCII, 2-4 for a multi-byte sequence, 0 if none starts there.
size_t Utf8SequenceLength(std::string_view s, size_t i);

bool IsValidUtf8(std::string_view s);

// Valid UTF-8 without control bytes (C0 or DEL): text that any store and terminal can keep.
bool IsPlainText(std::string_view s);

// 0-15 for a hex digit (either case), -1 otherwise.
int HexDigitValue(char c);

// "%41b%2f" -> "Ab/". Strict: kInvalidArgument for a '%' not followed by two hex digits
// (request targets). Lenient: such a '%' is kept as it is (paths quoted from logs).
Result<std::string> PercentDecode(std::string_view s);
std::string PercentDecodeLenient(std::string_view s);

}  // namespace patchgate
