#include "cli/common_flags.h"

namespace patchgate::cli {

void KeyFlags::Add(CLI::App* cmd) {
  cmd->add_option("--passphrase-file", passphrase_file,
                  "File whose first line is the key passphrase (else $PATCHGATE_PASSPHRASE, else a prompt)");
  cmd->add_flag("--insecure-plaintext-keys", insecure_plaintext,
                "Allow private keys stored unencrypted (throwaway demos only)");
}

Result<tuf::KeyAccess> KeyFlags::Access(bool confirm) const {
  tuf::KeyAccess a;
  a.allow_plaintext = insecure_plaintext;
  auto p = ObtainPassphrase(passphrase_file, "Key passphrase: ", confirm);
  if (p.ok()) {
    a.passphrase = *p;
  } else if (!insecure_plaintext) {
    return p.status();
  }
  return a;
}

}  // namespace patchgate::cli
