#include "crypto/hash.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace patchgate {

struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

namespace {

// The digests fetched once: EVP_sha256() is OpenSSL 3's implicit form, which looks the
// implementation up again in every EVP_Digest call (about half of hashing a bearer token,
// which the server does for every request). A fetch that fails (e.g. a FIPS-only
// configuration without the provider) falls back to the implicit form, which fails the same
// way it always did.
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md ? md : EVP_sha256();
}
const EVP_MD* Sha512Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  return md ? md : EVP_sha512();
}

}  // namespace

// The fetched digests (above): a mirror's sync creates one Hasher per target, tens of
// thousands, from several threads; the implicit EVP_sha256() looked the implementation up
// again (under OpenSSL's lock) at every EVP_DigestInit_ex.
Result<Hasher> Hasher::Create(std::string_view algorithm) {
  const EVP_MD* md = nullptr;
  if (algorithm == "sha256") md = Sha256Md();
  else if (algorithm == "sha512") md = Sha512Md();
  else return Unsupported("hash algorithm '" + std::string(algorithm) + "' is not supported (use sha256 or sha512)");
  Hasher h;
  h.impl_ = std::make_unique<Impl>();
  h.impl_->ctx = EVP_MD_CTX_new();
  if (!h.impl_->ctx || EVP_DigestInit_ex(h.impl_->ctx, md, nullptr) != 1)
    return Internal("OpenSSL could not initialise " + std::string(algorithm));
  h.algorithm_ = std::string(algorithm);
  return h;
}

Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

void Hasher::Update(std::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

std::string Hasher::FinalHex() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, out, &len);
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), len));
}

namespace {
std::string OneShot(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), len));
}
}  // namespace

std::string Sha256Hex(std::string_view data) { return OneShot(Sha256Md(), data); }
std::string Sha512Hex(std::string_view data) { return OneShot(Sha512Md(), data); }

Result<FileDigest> Sha256File(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no such file: " + path);
    return IOError("cannot open " + path + ": " + std::strerror(errno));
  }
  auto h = Hasher::Create("sha256");
  FileDigest d;
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = IOError("cannot read " + path + ": " + std::strerror(errno));
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    h->Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    d.length += static_cast<uint64_t>(n);
  }
  ::close(fd);
  d.sha256 = h->FinalHex();
  return d;
}

std::string HexEncode(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.resize(bytes.size() * 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kDigits[c >> 4];
    out[2 * i + 1] = kDigits[c & 15];
  }
  return out;
}

Result<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2) return Corrupt("hex string has an odd length");
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Corrupt("not a hex string");
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed: the system has no entropy source");
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), len));
}

}  // namespace patchgate
