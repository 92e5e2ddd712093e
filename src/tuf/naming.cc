#include "tuf/naming.h"

#include <string>

namespace patchgate::tuf {

namespace {

bool Unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-' || c == '~';
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool LowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string QuoteRoleName(std::string_view role) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(role.size());
  for (unsigned char c : role) {
    if (Unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UnquoteRoleName(std::string_view q) {
  std::string out;
  for (size_t i = 0; i < q.size(); ++i) {
    if (q[i] == '%' && i + 2 < q.size()) {
      int hi = Hex(q[i + 1]), lo = Hex(q[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(q[i]);
  }
  return out;
}

bool IsSafeRoleName(std::string_view role) {
  if (role.empty() || role.size() > 128 || role[0] == '.') return false;
  for (unsigned char c : role)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          c == '-'))
      return false;
  return true;
}

std::string VersionedMetadataName(int64_t version, std::string_view role) {
  return std::to_string(version) + "." + MetadataName(role);
}

std::string MetadataName(std::string_view role) { return QuoteRoleName(role) + ".json"; }

std::optional<ParsedMetadataName> ParseVersionedMetadataName(std::string_view name) {
  constexpr std::string_view kJson = ".json";
  if (name.size() <= kJson.size() || name.substr(name.size() - kJson.size()) != kJson) return std::nullopt;
  name.remove_suffix(kJson.size());
  size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot + 1 >= name.size() || dot > 18) return std::nullopt;
  std::string_view digits = name.substr(0, dot);
  if (digits[0] == '0') return std::nullopt;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return ParsedMetadataName{v, UnquoteRoleName(name.substr(dot + 1))};
}

std::string ProductRoleName(std::string_view product) { return "product." + std::string(product); }
std::string ProductBinPrefix(std::string_view product) { return "bins." + std::string(product); }
std::string LegacyProductRoleName(std::string_view product) { return "products/" + std::string(product); }

std::optional<std::string> ProductOfRole(std::string_view role) {
  constexpr std::string_view kPrefix = "product.";
  if (role.size() <= kPrefix.size() || role.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  return std::string(role.substr(kPrefix.size()));
}

std::string ConsistentTargetName(std::string_view target_path, std::string_view hash_hex) {
  auto pos = target_path.find_last_of('/');
  if (pos == std::string_view::npos) return std::string(hash_hex) + "." + std::string(target_path);
  return std::string(target_path.substr(0, pos + 1)) + std::string(hash_hex) + "." +
         std::string(target_path.substr(pos + 1));
}

std::optional<ParsedTargetName> ParseConsistentTargetName(std::string_view rel) {
  auto slash = rel.find_last_of('/');
  std::string_view dir = slash == std::string_view::npos ? std::string_view() : rel.substr(0, slash + 1);
  std::string_view base = slash == std::string_view::npos ? rel : rel.substr(slash + 1);
  for (size_t digits : {size_t{64}, size_t{128}}) {
    if (base.size() > digits + 1 && base[digits] == '.' && LowerHex(base.substr(0, digits))) {
      return ParsedTargetName{std::string(dir) + std::string(base.substr(digits + 1)),
                              std::string(base.substr(0, digits))};
    }
  }
  return std::nullopt;
}

}  // namespace patchgate::tuf
