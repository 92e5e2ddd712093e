#include "crypto/keys.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "crypto/hash.h"

namespace patchgate {

namespace {

constexpr size_t kMaxPublicValue = 16 * 1024;
constexpr size_t kMaxSignatureHex = 4096;

struct BioDeleter { void operator()(BIO* b) const { BIO_free(b); } };
struct PkeyDeleter { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct MdCtxDeleter { void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); } };
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string OpensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  // A program that starts OpenSSL without its error texts (patchgate-client: loading them
  // costs about 1 ms of each run) gets only the codes; say how to read them.
  if (!ERR_reason_error_string(e)) {
    char code[32];
    std::snprintf(code, sizeof code, "%08lX", e);
    return std::string(buf) + " (`openssl errstr " + code + "` prints its text)";
  }
  return buf;
}

std::string BioToString(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> PublicPem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PUBKEY(b.get(), k) != 1) return Internal("cannot encode public key: " + OpensslError());
  return BioToString(b.get());
}

// Builds an EVP_PKEY from a TUF public key.
Result<PkeyPtr> LoadPublic(const std::string& keytype, const std::string& scheme, const std::string& pub) {
  if (keytype == "ed25519") {
    auto raw = HexDecode(pub);
    if (!raw.ok() || raw->size() != 32) return Status(ErrorCode::kBadSignature, "ed25519 public key is not 32 bytes of hex");
    PkeyPtr k(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                          reinterpret_cast<const unsigned char*>(raw->data()), 32));
    if (!k) return Status(ErrorCode::kBadSignature, "unusable ed25519 public key: " + OpensslError());
    return k;
  }
  BioPtr b(BIO_new_mem_buf(pub.data(), static_cast<int>(pub.size())));
  PkeyPtr k(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr));
  if (!k) return Status(ErrorCode::kBadSignature, "unusable " + keytype + " public key (expected SPKI PEM): " + OpensslError());
  int id = EVP_PKEY_get_base_id(k.get());
  if (keytype == "rsa" && id != EVP_PKEY_RSA) return Status(ErrorCode::kBadSignature, "key declared rsa is not an RSA key");
  if ((keytype == "ecdsa" || keytype == "ecdsa-sha2-nistp256") && id != EVP_PKEY_EC)
    return Status(ErrorCode::kBadSignature, "key declared ecdsa is not an EC key");
  return k;
}

bool KnownScheme(const std::string& keytype, const std::string& scheme) {
  if (keytype == "ed25519") return scheme == "ed25519";
  if (keytype == "ecdsa" || keytype == "ecdsa-sha2-nistp256") return scheme == "ecdsa-sha2-nistp256";
  if (keytype == "rsa") return scheme == "rsassa-pss-sha256";
  return false;
}

}  // namespace

Result<KeyType> ParseKeyType(std::string_view name) {
  if (name == "ed25519") return KeyType::kEd25519;
  if (name == "ecdsa" || name == "ecdsa-sha2-nistp256") return KeyType::kEcdsaP256;
  if (name == "rsa" || name == "rsassa-pss-sha256") return KeyType::kRsaPss;
  return InvalidArgument("unknown key type '" + std::string(name) + "' (use ed25519, ecdsa or rsa)");
}

// ---------------------------------------------------------------------------------------
// PublicKey

Result<PublicKey> PublicKey::FromJson(const Json& key) {
  if (!key.is_object()) return Corrupt("key is not a JSON object");
  auto str = [&](const Json& o, const char* name) -> const std::string* {
    auto it = o.find(name);
    if (it == o.end() || !it->is_string()) return nullptr;
    return &it->get_ref<const std::string&>();
  };
  const std::string* kt = str(key, "keytype");
  const std::string* sc = str(key, "scheme");
  auto kv = key.find("keyval");
  if (!kt || !sc || kv == key.end() || !kv->is_object())
    return Corrupt("key object needs string keytype and scheme and an object keyval");
  const std::string* pub = str(*kv, "public");
  if (!pub) return Corrupt("key object has no keyval.public string");
  if (pub->size() > kMaxPublicValue) return TooLarge("public key value is too long");
  PublicKey k;
  k.keytype_ = *kt;
  k.scheme_ = *sc;
  k.public_ = *pub;
  for (auto it = key.begin(); it != key.end(); ++it) {
    if (it.key() != "keytype" && it.key() != "scheme" && it.key() != "keyval") k.extra_[it.key()] = it.value();
  }
  // keyval may carry more than "public" (e.g. a "private" that must never be here).
  if (kv->contains("private") && !(*kv)["private"].get_ref<const Json::string_t&>().empty())
    return Corrupt("public key object carries a private key; refusing it");
  return k;
}

Json PublicKey::ToJson() const {
  Json j = extra_;
  j["keytype"] = keytype_;
  j["scheme"] = scheme_;
  j["keyval"] = Json{{"public", public_}};
  return j;
}

std::string PublicKey::KeyId() const {
  Json j = {{"keytype", keytype_}, {"scheme", scheme_}, {"keyval", {{"public", public_}}}};
  return Sha256Hex(*cjson::Encode(j));
}

Status PublicKey::Verify(std::string_view message, std::string_view signature_hex) const {
  if (!KnownScheme(keytype_, scheme_))
    return Status(ErrorCode::kBadSignature, "unsupported key type/scheme " + keytype_ + "/" + scheme_);
  if (signature_hex.size() > kMaxSignatureHex) return Status(ErrorCode::kBadSignature, "signature is too long");
  auto sig = HexDecode(signature_hex);
  if (!sig.ok()) return Status(ErrorCode::kBadSignature, "signature is not hex");
  auto pk = LoadPublic(keytype_, scheme_, public_);
  if (!pk.ok()) return pk.status();
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = keytype_ == "ed25519" ? nullptr : EVP_sha256();
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pk->get()) != 1)
    return Status(ErrorCode::kBadSignature, "cannot initialise verification: " + OpensslError());
  if (keytype_ == "rsa") {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)
      return Status(ErrorCode::kBadSignature, "cannot set RSA-PSS parameters");
  }
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  if (rc != 1) return Status(ErrorCode::kBadSignature, "signature by key " + KeyId().substr(0, 12) + " does not verify");
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// PrivateKey

struct PrivateKey::Impl {
  PkeyPtr pkey;
};

PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;
PrivateKey::~PrivateKey() = default;

namespace {

Result<PublicKey> PublicFromPkey(EVP_PKEY* k) {
  Json j;
  int id = EVP_PKEY_get_base_id(k);
  if (id == EVP_PKEY_ED25519) {
    unsigned char raw[32];
    size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1) return Internal("cannot read ed25519 public key");
    j = {{"keytype", "ed25519"}, {"scheme", "ed25519"},
         {"keyval", {{"public", HexEncode(std::string_view(reinterpret_cast<char*>(raw), len))}}}};
  } else if (id == EVP_PKEY_EC) {
    PG_ASSIGN_OR_RETURN(std::string pem, PublicPem(k));
    j = {{"keytype", "ecdsa"}, {"scheme", "ecdsa-sha2-nistp256"}, {"keyval", {{"public", pem}}}};
  } else if (id == EVP_PKEY_RSA) {
    PG_ASSIGN_OR_RETURN(std::string pem, PublicPem(k));
    j = {{"keytype", "rsa"}, {"scheme", "rsassa-pss-sha256"}, {"keyval", {{"public", pem}}}};
  } else {
    return Unsupported("unsupported private key algorithm");
  }
  return PublicKey::FromJson(j);
}

}  // namespace

Result<PrivateKey> PrivateKey::Generate(KeyType type) {
  PkeyPtr k;
  switch (type) {
    case KeyType::kEd25519: k.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")); break;
    case KeyType::kEcdsaP256: k.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); break;
    case KeyType::kRsaPss: k.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072))); break;
  }
  if (!k) return Internal("key generation failed: " + OpensslError());
  PrivateKey pk;
  PG_ASSIGN_OR_RETURN(pk.public_, PublicFromPkey(k.get()));
  pk.impl_ = std::make_unique<Impl>();
  pk.impl_->pkey = std::move(k);
  return pk;
}

Result<std::string> PrivateKey::SignHex(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  bool ed = public_.keytype() == "ed25519";
  if (EVP_DigestSignInit(ctx.get(), &pctx, ed ? nullptr : EVP_sha256(), nullptr, impl_->pkey.get()) != 1)
    return Internal("cannot initialise signing: " + OpensslError());
  if (public_.keytype() == "rsa") {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)
      return Internal("cannot set RSA-PSS parameters");
  }
  size_t len = 0;
  const auto* msg = reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, msg, message.size()) != 1)
    return Internal("signing failed: " + OpensslError());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, msg, message.size()) != 1)
    return Internal("signing failed: " + OpensslError());
  sig.resize(len);
  return HexEncode(sig);
}

Result<std::string> PrivateKey::Serialize(std::string_view passphrase, bool allow_plaintext) const {
  if (passphrase.empty() && !allow_plaintext)
    return InvalidArgument("refusing to write an unencrypted private key: give a passphrase "
                           "(PATCHGATE_PASSPHRASE or --passphrase-file) or pass --insecure-plaintext-keys");
  BioPtr b(BIO_new(BIO_s_mem()));
  bool encrypted = !passphrase.empty();
  if (encrypted) {
    // PKCS#8 with PBES2: scrypt key derivation and AES-256-CBC.
    X509_ALGOR* pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), nullptr, 0, nullptr, 1 << 14, 8, 1);
    if (!pbe) return Internal("cannot set up key encryption: " + OpensslError());
    PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(impl_->pkey.get());
    X509_SIG* enc = p8 ? PKCS8_set0_pbe(passphrase.data(), static_cast<int>(passphrase.size()), p8, pbe) : nullptr;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (!enc) {
      X509_ALGOR_free(pbe);
      return Internal("cannot encrypt private key: " + OpensslError());
    }
    int ok = PEM_write_bio_PKCS8(b.get(), enc);
    X509_SIG_free(enc);
    if (ok != 1) return Internal("cannot encode private key: " + OpensslError());
  } else if (PEM_write_bio_PrivateKey(b.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("cannot encode private key: " + OpensslError());
  }
  Json j = public_.ToJson();
  j["keyid"] = KeyId();
  j["encrypted"] = encrypted;
  j["private_pkcs8_pem"] = BioToString(b.get());
  return j.dump(2) + "\n";
}

Result<PrivateKey> PrivateKey::Deserialize(std::string_view data, std::string_view passphrase,
                                           bool allow_plaintext) {
  PG_ASSIGN_OR_RETURN(Json j, cjson::Parse(data, {.max_bytes = 64 * 1024, .max_depth = 8}));
  if (!j.is_object() || !j.contains("private_pkcs8_pem") || !j["private_pkcs8_pem"].is_string() ||
      !j.contains("encrypted") || !j["encrypted"].is_boolean())
    return Corrupt("not a patchgate private key file (no private_pkcs8_pem / encrypted fields)");
  bool encrypted = j["encrypted"].get<bool>();
  if (!encrypted && !allow_plaintext)
    return InvalidArgument("this private key is stored unencrypted; re-create it with a passphrase or pass "
                           "--insecure-plaintext-keys");
  if (encrypted && passphrase.empty())
    return Unauthorized("this private key is encrypted: give its passphrase (PATCHGATE_PASSPHRASE or --passphrase-file)");
  const std::string& pem = j["private_pkcs8_pem"].get_ref<const std::string&>();
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::string pass(passphrase);
  PkeyPtr k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, encrypted ? pass.data() : nullptr));
  if (!k) {
    ERR_clear_error();
    if (encrypted) return Unauthorized("cannot decrypt the private key: wrong passphrase (or a damaged key file)");
    return Corrupt("damaged private key file");
  }
  PrivateKey pk;
  PG_ASSIGN_OR_RETURN(pk.public_, PublicFromPkey(k.get()));
  pk.impl_ = std::make_unique<Impl>();
  pk.impl_->pkey = std::move(k);
  return pk;
}

// ---------------------------------------------------------------------------------------
// Passphrases

namespace {

Result<std::string> PromptTty(std::string_view prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return InvalidArgument("no passphrase");
  (void)!::write(fd, prompt.data(), prompt.size());
  termios old{};
  bool have = ::tcgetattr(fd, &old) == 0;
  if (have) {
    termios noecho = old;
    noecho.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &noecho);
  }
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  if (have) ::tcsetattr(fd, TCSAFLUSH, &old);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  return line;
}

}  // namespace

Result<std::string> ObtainPassphrase(const std::optional<std::string>& passphrase_file,
                                     std::string_view prompt, bool confirm) {
  if (passphrase_file) {
    std::ifstream in(*passphrase_file);
    if (!in) return InvalidArgument("cannot read passphrase file " + *passphrase_file);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) return InvalidArgument("passphrase file " + *passphrase_file + " is empty");
    return line;
  }
  if (const char* env = std::getenv("PATCHGATE_PASSPHRASE"); env && *env) return std::string(env);
  if (::isatty(0)) {
    auto first = PromptTty(prompt);
    if (first.ok() && !first->empty()) {
      if (!confirm) return first;
      auto second = PromptTty("Repeat passphrase: ");
      if (second.ok() && *second == *first) return first;
      return InvalidArgument("the passphrases did not match");
    }
  }
  return InvalidArgument("a passphrase is needed: set PATCHGATE_PASSPHRASE, pass --passphrase-file FILE, "
                         "or run on a terminal to be prompted");
}

}  // namespace patchgate
