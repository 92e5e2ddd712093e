#include "core/names.h"

#include <string>

#include "core/text.h"

namespace patchgate {
namespace {

bool IsProductChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

bool IsAlnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Unicode White_Space characters (besides the C0 ones, which are refused as controls anyway).
bool IsUnicodeSpace(char32_t cp) {
  return cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

bool IsBidiFormatting(char32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
         cp == 0x061C;
}

std::string Quoted(std::string_view name) { return "'" + EscapeForTerminal(name) + "'"; }

Status ValidateDisplayName(std::string_view name, std::string_view what, size_t cap, bool single_word) {
  std::string kind(what);
  if (name.empty()) return InvalidArgument(kind + " name is empty: give a name such as 'Example Ltd'");
  if (name.size() > cap)
    return InvalidArgument(kind + " name is " + std::to_string(name.size()) + " bytes; the limit is " + std::to_string(cap) +
                    " bytes: use a shorter name");
  char32_t first = 0, last = 0;
  for (size_t i = 0; i < name.size();) {
    size_t n = Utf8SequenceLength(name, i);
    if (n == 0)
      return InvalidArgument(kind + " name " + Quoted(name) + " is not valid UTF-8 (byte " + std::to_string(i) +
                             "): type the name in a UTF-8 terminal or fix the script's encoding");
    char32_t cp = DecodeUtf8At(name, i, n);
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
      return InvalidArgument(kind + " name " + Quoted(name) +
                             " contains a control character (tab, newline, escape...): remove it");
    if (IsBidiFormatting(cp))
      return InvalidArgument(kind + " name " + Quoted(name) +
                             " contains a bidirectional formatting character, which reorders how it is shown: "
                             "remove it");
    if (single_word && (IsUnicodeSpace(cp) || cp == ':'))
      return InvalidArgument(kind + " name " + Quoted(name) +
                             " contains whitespace or ':': a user name is one word (it appears in access logs and "
                             "in HTTP basic credentials as user:token), e.g. alice or alice.smith");
    if (i == 0) first = cp;
    last = cp;
    i += n;
  }
  if (IsUnicodeSpace(first) || IsUnicodeSpace(last))
    return InvalidArgument(kind + " name " + Quoted(name) +
                           " starts or ends with whitespace: remove the leading and trailing spaces");
  return Status::OK();
}

}  // namespace

Status ValidateProductName(std::string_view name) {
  const std::string rule =
      ": a product name is 1 to 64 letters, digits, '.', '_' or '-', starts with a letter or digit and does not "
      "end in '.' (e.g. office-2024)";
  if (name.empty()) return InvalidArgument("product name is empty" + rule);
  if (name.size() > kMaxProductNameLength)
    return InvalidArgument("product name " + Quoted(name) + " is " + std::to_string(name.size()) +
                           " characters long" + rule);
  for (char c : name)
    if (!IsProductChar(c))
      return InvalidArgument("product name " + Quoted(name) + " contains " + Quoted(std::string_view(&c, 1)) + rule);
  if (!IsAlnum(name.front()))
    return InvalidArgument("product name " + Quoted(name) + " does not start with a letter or digit" + rule);
  if (name.back() == '.') return InvalidArgument("product name " + Quoted(name) + " ends in '.'" + rule);
  return Status::OK();
}

bool IsValidProductName(std::string_view name) { return ValidateProductName(name).ok(); }

Status ValidateOrganisationName(std::string_view name) {
  return ValidateDisplayName(name, "organisation", kMaxOrganisationNameBytes, false);
}

Status ValidateUserName(std::string_view name) { return ValidateDisplayName(name, "user", kMaxUserNameBytes, true); }

}  // namespace patchgate
