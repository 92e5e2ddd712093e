// Signing keys as TUF and securesystemslib define them.
//
//   keytype   scheme                 public value         signature (hex)
//   ed25519   ed25519                32 raw bytes, hex    64 bytes
//   ecdsa     ecdsa-sha2-nistp256    SPKI PEM             DER (r,s)
//   rsa       rsassa-pss-sha256      SPKI PEM             PSS, MGF1-SHA256, salt = 32
//
// keyid = hex SHA-256 of the canonical JSON of {"keytype","scheme","keyval":{"public"}}.
// Private keys are stored as JSON holding the public key and the private key as an
// encrypted PKCS#8 PEM (scrypt + AES-256-CBC); plaintext only when explicitly allowed.
// PublicKey is a value type; PrivateKey owns its OpenSSL handle (move-only). Both are safe
// to use from several threads for Verify/Sign.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "json/canonical_json.h"

namespace patchgate {

enum class KeyType { kEd25519, kEcdsaP256, kRsaPss };

// "ed25519", "ecdsa", "rsa" (as accepted on the command line: also the scheme names).
Result<KeyType> ParseKeyType(std::string_view name);

class PublicKey {
 public:
  // Parses a TUF key object; keeps unknown fields. kCorrupt / kUnsupported on bad input.
  static Result<PublicKey> FromJson(const Json& key);
  Json ToJson() const;  // the TUF key object (with any unknown fields it was parsed with)
  std::string KeyId() const;
  const std::string& keytype() const { return keytype_; }
  const std::string& scheme() const { return scheme_; }
  const std::string& public_value() const { return public_; }

  // OK if `signature_hex` is a valid signature of `message` by this key;
  // kBadSignature otherwise (including malformed hex or an unusable key).
  Status Verify(std::string_view message, std::string_view signature_hex) const;

 private:
  friend class PrivateKey;
  std::string keytype_, scheme_, public_;
  Json extra_ = Json::object();
};

class PrivateKey {
 public:
  static Result<PrivateKey> Generate(KeyType type);
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;
  ~PrivateKey();

  const PublicKey& public_key() const { return public_; }
  std::string KeyId() const { return public_.KeyId(); }
  // Hex signature over `message` with the key's scheme.
  Result<std::string> SignHex(std::string_view message) const;

  // Serialises for disk. An empty passphrase is refused unless allow_plaintext, in which
  // case the private key is written unencrypted.
  Result<std::string> Serialize(std::string_view passphrase, bool allow_plaintext) const;
  // Loads what Serialize wrote. kUnauthorized for a wrong passphrase; kInvalidArgument for
  // a plaintext key when !allow_plaintext; kCorrupt for a damaged file.
  static Result<PrivateKey> Deserialize(std::string_view data, std::string_view passphrase,
                                        bool allow_plaintext);

 private:
  PrivateKey() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  PublicKey public_;
};

// Where a passphrase comes from, in order: `passphrase_file` if given (first line),
// $PATCHGATE_PASSPHRASE, then a prompt on the controlling terminal (twice when confirm).
// kInvalidArgument with a message saying how to provide one when none is available.
Result<std::string> ObtainPassphrase(const std::optional<std::string>& passphrase_file,
                                     std::string_view prompt, bool confirm);

}  // namespace patchgate
