// Streaming hashes (OpenSSL 3 EVP behind the interface) and hex helpers.
// A Hasher is single-threaded; create one per stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate {

class Hasher {
 public:
  // "sha256" or "sha512" (the names TUF metadata uses); kUnsupported otherwise.
  static Result<Hasher> Create(std::string_view algorithm);
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();

  void Update(std::string_view data);
  void Update(const void* data, size_t len) { Update(std::string_view(static_cast<const char*>(data), len)); }
  // Lower-case hex digest. The hasher must not be used afterwards.
  std::string FinalHex();
  const std::string& algorithm() const { return algorithm_; }

 private:
  Hasher() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string algorithm_;
};

std::string Sha256Hex(std::string_view data);
std::string Sha512Hex(std::string_view data);
// Streams the file through SHA-256 (and counts its length).
struct FileDigest {
  std::string sha256;
  uint64_t length = 0;
};
Result<FileDigest> Sha256File(const std::string& path);

std::string HexEncode(std::string_view bytes);
Result<std::string> HexDecode(std::string_view hex);  // kCorrupt on odd length / non-hex
std::string Base64Encode(std::string_view bytes);
// Cryptographically secure random bytes.
std::string RandomBytes(size_t n);
// Constant-time comparison of two equal-length strings (false if lengths differ).
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// HMAC-SHA256, lower-case hex.
std::string HmacSha256Hex(std::string_view key, std::string_view message);

}  // namespace patchgate
