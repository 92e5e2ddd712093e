#include "advisory/openpgp.h"

#include <gpgme.h>
#include <sys/stat.h>

#include <memory>

namespace patchgate::advisory {

namespace {

struct CtxDeleter {
  void operator()(gpgme_ctx_t c) const { gpgme_release(c); }
};
using Ctx = std::unique_ptr<std::remove_pointer_t<gpgme_ctx_t>, CtxDeleter>;
struct DataDeleter {
  void operator()(gpgme_data_t d) const { gpgme_data_release(d); }
};
using Data = std::unique_ptr<std::remove_pointer_t<gpgme_data_t>, DataDeleter>;
struct KeyDeleter {
  void operator()(gpgme_key_t k) const { gpgme_key_unref(k); }
};
using Key = std::unique_ptr<std::remove_pointer_t<gpgme_key_t>, KeyDeleter>;

std::string Err(gpgme_error_t e) { return std::string(gpgme_strsource(e)) + ": " + gpgme_strerror(e); }

gpgme_error_t PassphraseCb(void* hook, const char*, const char*, int prev_was_bad, int fd) {
  if (prev_was_bad) return gpgme_error(GPG_ERR_BAD_PASSPHRASE);
  const auto* pass = static_cast<const std::string*>(hook);
  std::string line = *pass + "\n";
  if (gpgme_io_writen(fd, line.data(), line.size()) != 0) return gpgme_error(GPG_ERR_CANCELED);
  return 0;
}

Result<Ctx> NewContext(const std::string& home, const std::string* passphrase) {
  static const bool init = [] {
    gpgme_check_version(nullptr);
    return true;
  }();
  (void)init;
  if (gpgme_error_t e = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP))
    return Unavailable("GnuPG is not usable (" + Err(e) + "); install gnupg (scripts/deps.sh)");
  gpgme_ctx_t raw = nullptr;
  if (gpgme_error_t e = gpgme_new(&raw)) return Internal("gpgme_new: " + Err(e));
  Ctx ctx(raw);
  if (gpgme_error_t e = gpgme_ctx_set_engine_info(ctx.get(), GPGME_PROTOCOL_OpenPGP, nullptr, home.c_str()))
    return Internal("GnuPG home " + home + ": " + Err(e));
  gpgme_set_armor(ctx.get(), 1);
  if (passphrase) {
    gpgme_set_pinentry_mode(ctx.get(), GPGME_PINENTRY_MODE_LOOPBACK);
    gpgme_set_passphrase_cb(ctx.get(), PassphraseCb, const_cast<std::string*>(passphrase));
  }
  return ctx;
}

Result<Key> FirstSecretKey(gpgme_ctx_t ctx, const std::string& home) {
  if (gpgme_error_t e = gpgme_op_keylist_start(ctx, nullptr, 1)) return Internal("listing keys: " + Err(e));
  gpgme_key_t k = nullptr;
  gpgme_error_t e = gpgme_op_keylist_next(ctx, &k);
  gpgme_op_keylist_end(ctx);
  if (e || !k)
    return NotFound("no OpenPGP signing key in " + home + " (create one: `patchgate advisory signing-key --repo DIR --uid ...`)");
  return Key(k);
}

Result<std::string> Export(gpgme_ctx_t ctx, const std::string& fpr) {
  gpgme_data_t out = nullptr;
  gpgme_data_new(&out);
  Data d(out);
  if (gpgme_error_t e = gpgme_op_export(ctx, fpr.c_str(), 0, out)) return Internal("exporting the key: " + Err(e));
  size_t len = 0;
  char* mem = gpgme_data_release_and_get_mem(d.release(), &len);
  std::string s(mem ? mem : "", len);
  gpgme_free(mem);
  if (s.empty()) return Internal("exporting the key gave nothing");
  return s;
}

}  // namespace

std::string GnupgHomeOf(const std::string& repo_dir) { return repo_dir + "/keys/openpgp"; }

Result<OpenPgpKey> CreateSigningKey(const std::string& home, const std::string& uid, const std::string& passphrase) {
  if (passphrase.empty()) return InvalidArgument("the OpenPGP signing key needs a passphrase, like every online key");
  if (uid.empty() || uid.find_first_of("\r\n") != std::string::npos) return InvalidArgument("give --uid \"Name <email>\"");
  ::mkdir(home.c_str(), 0700);
  ::chmod(home.c_str(), 0700);
  PG_ASSIGN_OR_RETURN(Ctx ctx, NewContext(home, &passphrase));
  if (FirstSecretKey(ctx.get(), home).ok()) return AlreadyExists(home + " has a signing key already");
  if (gpgme_error_t e = gpgme_op_createkey(ctx.get(), uid.c_str(), "ed25519", 0, 0, nullptr,
                                           GPGME_CREATE_SIGN | GPGME_CREATE_NOEXPIRE))
    return Internal("creating the OpenPGP key: " + Err(e));
  return LoadSigningKey(home);
}

Result<OpenPgpKey> LoadSigningKey(const std::string& home) {
  struct stat st {};
  if (::stat(home.c_str(), &st) != 0)
    return NotFound("no OpenPGP signing key: " + home + " does not exist (create one: `patchgate advisory signing-key`)");
  PG_ASSIGN_OR_RETURN(Ctx ctx, NewContext(home, nullptr));
  PG_ASSIGN_OR_RETURN(Key k, FirstSecretKey(ctx.get(), home));
  OpenPgpKey out;
  out.fingerprint = k->fpr ? k->fpr : "";
  PG_ASSIGN_OR_RETURN(out.public_armored, Export(ctx.get(), out.fingerprint));
  return out;
}

Result<std::string> SignDetached(const std::string& home, const std::string& passphrase, std::string_view data) {
  PG_ASSIGN_OR_RETURN(Ctx ctx, NewContext(home, &passphrase));
  PG_ASSIGN_OR_RETURN(Key k, FirstSecretKey(ctx.get(), home));
  gpgme_signers_clear(ctx.get());
  if (gpgme_error_t e = gpgme_signers_add(ctx.get(), k.get())) return Internal("signing key: " + Err(e));
  gpgme_data_t in = nullptr, out = nullptr;
  if (gpgme_data_new_from_mem(&in, data.data(), data.size(), 0)) return Internal("gpgme data");
  Data din(in);
  gpgme_data_new(&out);
  Data dout(out);
  if (gpgme_error_t e = gpgme_op_sign(ctx.get(), in, out, GPGME_SIG_MODE_DETACH)) {
    if (gpgme_err_code(e) == GPG_ERR_BAD_PASSPHRASE || gpgme_err_code(e) == GPG_ERR_NO_SECKEY)
      return Unauthorized("wrong passphrase for the OpenPGP signing key in " + home);
    return Internal("signing: " + Err(e));
  }
  size_t len = 0;
  char* mem = gpgme_data_release_and_get_mem(dout.release(), &len);
  std::string s(mem ? mem : "", len);
  gpgme_free(mem);
  if (s.find("-----BEGIN PGP SIGNATURE-----") == std::string::npos) return Internal("GnuPG produced no signature");
  return s;
}

}  // namespace patchgate::advisory
