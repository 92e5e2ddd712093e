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

#include <cstdlib>

#include "cli/commands.h"
#include "core/clock.h"
#include "core/csv.h"

namespace patchgate::cli {

std::string DefaultStoreUrl() {
  const char* env = std::getenv("PATCHGATE_STORE");
  return env && *env ? env : "sqlite://patchgate.db";
}

void AddStoreFlag(CLI::App* cmd, std::string* url) {
  *url = DefaultStoreUrl();
  cmd->add_option("--store", *url, "Store URL: sqlite:///path.db or postgresql://... (default $PATCHGATE_STORE or "
                                   "sqlite://patchgate.db)");
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& url) {
  auto s = Store::Open(url);
  if (!s.ok()) return s.status().WithContext("store " + url);
  return s;
}

int WithStore(const std::string& url, const std::function<int(Store&)>& fn) {
  auto s = OpenStore(url);
  if (!s.ok()) return ReportError(s.status());
  return fn(**s);
}

Result<std::optional<int64_t>> ParseTimeFlag(const std::string& value, const char* flag) {
  if (value.empty()) return std::optional<int64_t>();
  auto t = ParseRfc3339Micros(value);
  if (!t.ok()) return t.status().WithContext(flag);
  return std::optional<int64_t>(*t);
}

std::string CsvField(const std::string& s) { return CsvCell(s); }

}  // namespace patchgate::cli
