// The CSAF provider's OpenPGP signing key (requirements 19 and 20 of CSAF 2.0), through
// GPGME. The key lives in a private GnuPG home inside the repository's online-key folder,
// DIR/keys/openpgp/ (mode 0700), and its secret part is protected by a passphrase like
// every other online key (obtained the same way: --passphrase-file, PATCHGATE_PASSPHRASE
// or a prompt); GnuPG's agent is asked for it in loopback mode, never through a pinentry.
// Each call uses its own GPGME context: thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace patchgate::advisory {

struct OpenPgpKey {
  std::string fingerprint;     // 40 hex digits, upper case
  std::string public_armored;  // "-----BEGIN PGP PUBLIC KEY BLOCK-----..."
};

// DIR/keys/openpgp
std::string GnupgHomeOf(const std::string& repo_dir);

// Creates an ed25519 signing key for `uid` ("Vendor PSIRT <psirt@vendor.example>") in
// `gnupg_home` (created 0700). kAlreadyExists if the home has a secret key already;
// kInvalidArgument for an empty passphrase.
Result<OpenPgpKey> CreateSigningKey(const std::string& gnupg_home, const std::string& uid, const std::string& passphrase);
// The signing key's public part. kNotFound when the home has no secret key.
Result<OpenPgpKey> LoadSigningKey(const std::string& gnupg_home);
// An ASCII-armored detached signature of `data`. kUnauthorized for a wrong passphrase.
Result<std::string> SignDetached(const std::string& gnupg_home, const std::string& passphrase, std::string_view data);

}  // namespace patchgate::advisory
