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

// Valid UTF-8 without NUL: text that both SQLite and PostgreSQL store as it is.
bool IsStorableText(std::string_view s);

// Valid UTF-8 from any bytes: each byte that does not start a valid sequence (and each NUL,
// which PostgreSQL text cannot hold) becomes the four characters "\xHH". Valid input is
// returned unchanged. This is how text from outside is stored.
std::string EscapeInvalidUtf8(std::string_view s);

// The longest prefix of s that is at most max_bytes long and does not end inside a
// multi-byte character. s must be valid UTF-8 (escape it first with EscapeInvalidUtf8).
std::string_view TruncateUtf8(std::string_view s, size_t max_bytes);

// EscapeInvalidUtf8 then TruncateUtf8: what every text column of the store receives.
std::string StorableText(std::string_view s, size_t max_bytes);

// Text safe to print on a terminal: invalid bytes, C0 controls and DEL become "\xHH",
// C1 controls (U+0080-U+009F) and bidirectional formatting characters (U+202A-U+202E,
// U+2066-U+2069, U+200E, U+200F, U+061C) become "\u{HHHH}". Everything else is unchanged, so
// no escape sequence and no reordering control reaches the terminal.
std::string EscapeForTerminal(std::string_view s);

// The code point of the valid UTF-8 sequence of length n at s[i] (n from Utf8SequenceLength).
char32_t DecodeUtf8At(std::string_view s, size_t i, size_t n);

// 0-15 for a hex digit (either case), -1 otherwise.
int HexDigitValue(char c);

// "%41b%2f" -> "Ab/". Strict: kInvalidArgument for a '%' not followed by two hex digits
// (request targets). Lenient: such a '%' is kept as it is (paths quoted from logs).
Result<std::string> PercentDecode(std::string_view s);
std::string PercentDecodeLenient(std::string_view s);

}  // namespace patchgate
