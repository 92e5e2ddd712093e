// Loads libpq, libcurl, GPGME and OpenSSL (libcrypto, libssl) on first use instead of at
// process start.
//
// Each of them pulls in the same long chain of shared libraries (Kerberos, LDAP, SASL,
// GnuTLS, nettle, p11-kit, ...): at start-up the dynamic loader spent about 11 million
// instructions relocating that chain, two thirds of a short command such as
// `patchgate incident scope` on an SQLite store, which uses none of it. The patchgate
// executable links this file and is linked with --as-needed, so the three libraries
// are not DT_NEEDED: the functions below stand in for the ones the program calls and
// forward to the real ones, which are looked up (dlopen + dlsym) the first time any
// of them is called. A test (tests/cli/lazy_libs_test.sh) checks that the executable
// does not name them, and the PostgreSQL, notification and advisory tests run through
// these forwarders.
//
// Thread-safety: every forwarder resolves its target once, in a function-local static
// (initialised once, thread-safe); the library handle likewise.
//
// A library that cannot be loaded ends the process with exit code 5 and a message that
// names the package to install: none of these functions can report that as its own
// error, and carrying on without the library would only fail later and less clearly.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <gpgme.h>
#include <libpq-fe.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace {

struct Lib {
  const char* soname;
  const char* package;  // the Debian package that provides it
};
constexpr Lib kPq{"libpq.so.5", "libpq5"};
constexpr Lib kCurl{"libcurl.so.4", "libcurl4"};
constexpr Lib kGpgme{"libgpgme.so.11", "libgpgme11"};
constexpr Lib kCrypto{"libcrypto.so.3", "libssl3"};
constexpr Lib kSsl{"libssl.so.3", "libssl3"};

[[noreturn]] void Fatal(const Lib& lib, const char* what, const char* detail) {
  char msg[512];
  int n = std::snprintf(msg, sizeof msg, "patchgate: error: %s %s: %s; install the package %s\n", what, lib.soname,
                        detail ? detail : "unknown error", lib.package);
  if (n > 0) (void)!::write(2, msg, static_cast<size_t>(n) < sizeof msg ? static_cast<size_t>(n) : sizeof msg - 1);
  ::_exit(5);  // kExitUnavailable: a library the command needs could not be used
}

void* Handle(const Lib& lib) {
  // One handle per library, opened on first use (thread-safe static initialisation).
  auto open = [&] {
    void* h = ::dlopen(lib.soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) Fatal(lib, "cannot load", ::dlerror());
    return h;
  };
  if (&lib == &kPq) {
    static void* h = open();
    return h;
  }
  if (&lib == &kCurl) {
    static void* h = open();
    return h;
  }
  if (&lib == &kCrypto) {
    static void* h = open();
    return h;
  }
  if (&lib == &kSsl) {
    static void* h = open();
    return h;
  }
  static void* h = open();
  return h;
}

template <typename F>
F Resolve(const Lib& lib, const char* name) {
  void* p = ::dlsym(Handle(lib), name);
  if (!p) Fatal(lib, name, "not found in");
  return reinterpret_cast<F>(p);
}

}  // namespace

// FWD(lib, ret, name, (params), (args)): `ret name(params)` forwarding to the real one.
#define FWD(lib, ret, name, params, args)                                 \
  extern "C" ret name params {                                            \
    static const auto real = Resolve<decltype(&::name)>(lib, #name);      \
    return real args;                                                     \
  }

// --- libpq (src/store/pg_conn.cc) -------------------------------------------------------
FWD(kPq, PGconn*, PQconnectdbParams, (const char* const* k, const char* const* v, int e), (k, v, e))
FWD(kPq, void, PQfinish, (PGconn * c), (c))
FWD(kPq, ConnStatusType, PQstatus, (const PGconn* c), (c))
FWD(kPq, char*, PQerrorMessage, (const PGconn* c), (c))
FWD(kPq, PGresult*, PQexec, (PGconn * c, const char* q), (c, q))
FWD(kPq, PGresult*, PQexecParams,
    (PGconn * c, const char* q, int n, const Oid* t, const char* const* v, const int* l, const int* f, int rf),
    (c, q, n, t, v, l, f, rf))
FWD(kPq, PGresult*, PQgetResult, (PGconn * c), (c))
FWD(kPq, void, PQclear, (PGresult * r), (r))
FWD(kPq, char*, PQcmdTuples, (PGresult * r), (r))
FWD(kPq, int, PQgetisnull, (const PGresult* r, int row, int col), (r, row, col))
FWD(kPq, int, PQgetlength, (const PGresult* r, int row, int col), (r, row, col))
FWD(kPq, char*, PQgetvalue, (const PGresult* r, int row, int col), (r, row, col))
FWD(kPq, int, PQnfields, (const PGresult* r), (r))
FWD(kPq, int, PQntuples, (const PGresult* r), (r))
FWD(kPq, int, PQputCopyData, (PGconn * c, const char* b, int n), (c, b, n))
FWD(kPq, int, PQputCopyEnd, (PGconn * c, const char* e), (c, e))
FWD(kPq, char*, PQresultErrorField, (const PGresult* r, int f), (r, f))
FWD(kPq, char*, PQresultErrorMessage, (const PGresult* r), (r))
FWD(kPq, ExecStatusType, PQresultStatus, (const PGresult* r), (r))

// --- libcurl (src/client/fetcher.cc, src/notify/transport.cc) ---------------------------
FWD(kCurl, CURLcode, curl_global_init, (long flags), (flags))
FWD(kCurl, CURL*, curl_easy_init, (void), ())
FWD(kCurl, void, curl_easy_cleanup, (CURL * h), (h))
FWD(kCurl, void, curl_easy_reset, (CURL * h), (h))
FWD(kCurl, CURLcode, curl_easy_perform, (CURL * h), (h))
FWD(kCurl, const char*, curl_easy_strerror, (CURLcode c), (c))
FWD(kCurl, curl_slist*, curl_slist_append, (curl_slist * l, const char* s), (l, s))
FWD(kCurl, void, curl_slist_free_all, (curl_slist * l), (l))

// The two variadic calls take exactly one argument after the option, whose type the
// option number states (curl.h: CURLOPTTYPE_* ranges; every CURLINFO takes a pointer):
// it is read with that type and passed on as it is.
#undef curl_easy_setopt
#undef curl_easy_getinfo
extern "C" CURLcode curl_easy_setopt(CURL* h, CURLoption option, ...) {
  static const auto real = Resolve<decltype(&::curl_easy_setopt)>(kCurl, "curl_easy_setopt");
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  const int type = static_cast<int>(option) / 10000 * 10000;
  if (type == CURLOPTTYPE_LONG) {
    long v = va_arg(ap, long);
    rc = real(h, option, v);
  } else if (type == CURLOPTTYPE_OFF_T) {
    curl_off_t v = va_arg(ap, curl_off_t);
    rc = real(h, option, v);
  } else {  // object, string, function pointer, slist, blob: all passed as pointers
    void* v = va_arg(ap, void*);
    rc = real(h, option, v);
  }
  va_end(ap);
  return rc;
}
extern "C" CURLcode curl_easy_getinfo(CURL* h, CURLINFO info, ...) {
  static const auto real = Resolve<decltype(&::curl_easy_getinfo)>(kCurl, "curl_easy_getinfo");
  va_list ap;
  va_start(ap, info);
  void* out = va_arg(ap, void*);
  va_end(ap);
  return real(h, info, out);
}

// --- GPGME (src/advisory/openpgp.cc) -----------------------------------------------------
FWD(kGpgme, const char*, gpgme_check_version_internal, (const char* req, size_t off), (req, off))
FWD(kGpgme, gpgme_error_t, gpgme_engine_check_version, (gpgme_protocol_t p), (p))
FWD(kGpgme, gpgme_error_t, gpgme_new, (gpgme_ctx_t * c), (c))
FWD(kGpgme, void, gpgme_release, (gpgme_ctx_t c), (c))
FWD(kGpgme, gpgme_error_t, gpgme_ctx_set_engine_info, (gpgme_ctx_t c, gpgme_protocol_t p, const char* f, const char* h),
    (c, p, f, h))
FWD(kGpgme, void, gpgme_set_armor, (gpgme_ctx_t c, int y), (c, y))
FWD(kGpgme, gpgme_error_t, gpgme_set_pinentry_mode, (gpgme_ctx_t c, gpgme_pinentry_mode_t m), (c, m))
FWD(kGpgme, void, gpgme_set_passphrase_cb, (gpgme_ctx_t c, gpgme_passphrase_cb_t cb, void* v), (c, cb, v))
FWD(kGpgme, void, gpgme_signers_clear, (gpgme_ctx_t c), (c))
FWD(kGpgme, gpgme_error_t, gpgme_signers_add, (gpgme_ctx_t c, const gpgme_key_t k), (c, k))
FWD(kGpgme, gpgme_error_t, gpgme_data_new, (gpgme_data_t * d), (d))
FWD(kGpgme, gpgme_error_t, gpgme_data_new_from_mem, (gpgme_data_t * d, const char* b, size_t n, int copy),
    (d, b, n, copy))
FWD(kGpgme, void, gpgme_data_release, (gpgme_data_t d), (d))
FWD(kGpgme, char*, gpgme_data_release_and_get_mem, (gpgme_data_t d, size_t* n), (d, n))
FWD(kGpgme, void, gpgme_free, (void* p), (p))
FWD(kGpgme, void, gpgme_key_unref, (gpgme_key_t k), (k))
FWD(kGpgme, gpgme_error_t, gpgme_op_createkey,
    (gpgme_ctx_t c, const char* u, const char* a, unsigned long r, unsigned long e, gpgme_key_t cert, unsigned int f),
    (c, u, a, r, e, cert, f))
FWD(kGpgme, gpgme_error_t, gpgme_op_export, (gpgme_ctx_t c, const char* p, gpgme_export_mode_t m, gpgme_data_t d),
    (c, p, m, d))
FWD(kGpgme, gpgme_error_t, gpgme_op_keylist_start, (gpgme_ctx_t c, const char* p, int s), (c, p, s))
FWD(kGpgme, gpgme_error_t, gpgme_op_keylist_next, (gpgme_ctx_t c, gpgme_key_t* k), (c, k))
FWD(kGpgme, gpgme_error_t, gpgme_op_keylist_end, (gpgme_ctx_t c), (c))
FWD(kGpgme, gpgme_error_t, gpgme_op_sign, (gpgme_ctx_t c, gpgme_data_t p, gpgme_data_t s, gpgme_sig_mode_t m),
    (c, p, s, m))
FWD(kGpgme, const char*, gpgme_strerror, (gpgme_error_t e), (e))
FWD(kGpgme, const char*, gpgme_strsource, (gpgme_error_t e), (e))
FWD(kGpgme, int, gpgme_io_writen, (int fd, const void* b, size_t n), (fd, b, n))

// --- OpenSSL: libcrypto (src/crypto) and libssl (src/server's TLS) -----------------------
// Relocating libcrypto alone dirtied about 110 pages at every start (its 370 KB of
// relocated tables), a third of the page faults of `patchgate incident scope` on SQLite,
// which hashes and signs nothing. libpq and libcurl load the same libraries as their own
// dependencies when they are loaded; dlopen then returns that one copy.
FWD(kCrypto, long, BIO_ctrl, (BIO * b, int cmd, long larg, void* parg), (b, cmd, larg, parg))
FWD(kCrypto, int, BIO_free, (BIO * a), (a))
FWD(kCrypto, BIO*, BIO_new, (const BIO_METHOD* type), (type))
FWD(kCrypto, BIO*, BIO_new_mem_buf, (const void* buf, int len), (buf, len))
FWD(kCrypto, const BIO_METHOD*, BIO_s_mem, (void), ())
FWD(kCrypto, int, CRYPTO_memcmp, (const void* a, const void* b, size_t n), (a, b, n))
FWD(kCrypto, void, ERR_clear_error, (void), ())
FWD(kCrypto, void, ERR_error_string_n, (unsigned long e, char* buf, size_t len), (e, buf, len))
FWD(kCrypto, unsigned long, ERR_get_error, (void), ())
FWD(kCrypto, const char*, ERR_reason_error_string, (unsigned long e), (e))
FWD(kCrypto, int, EVP_Digest,
    (const void* data, size_t count, unsigned char* md, unsigned int* size, const EVP_MD* type, ENGINE* impl),
    (data, count, md, size, type, impl))
FWD(kCrypto, int, EVP_DigestFinal_ex, (EVP_MD_CTX * ctx, unsigned char* md, unsigned int* s), (ctx, md, s))
FWD(kCrypto, int, EVP_DigestInit_ex, (EVP_MD_CTX * ctx, const EVP_MD* type, ENGINE* impl), (ctx, type, impl))
FWD(kCrypto, int, EVP_DigestSign,
    (EVP_MD_CTX * ctx, unsigned char* sig, size_t* siglen, const unsigned char* tbs, size_t tbslen),
    (ctx, sig, siglen, tbs, tbslen))
FWD(kCrypto, int, EVP_DigestSignInit, (EVP_MD_CTX * ctx, EVP_PKEY_CTX** pctx, const EVP_MD* type, ENGINE* e, EVP_PKEY* pkey),
    (ctx, pctx, type, e, pkey))
FWD(kCrypto, int, EVP_DigestUpdate, (EVP_MD_CTX * ctx, const void* d, size_t cnt), (ctx, d, cnt))
FWD(kCrypto, int, EVP_DigestVerify,
    (EVP_MD_CTX * ctx, const unsigned char* sig, size_t siglen, const unsigned char* tbs, size_t tbslen),
    (ctx, sig, siglen, tbs, tbslen))
FWD(kCrypto, int, EVP_DigestVerifyInit,
    (EVP_MD_CTX * ctx, EVP_PKEY_CTX** pctx, const EVP_MD* type, ENGINE* e, EVP_PKEY* pkey), (ctx, pctx, type, e, pkey))
FWD(kCrypto, int, EVP_EncodeBlock, (unsigned char* t, const unsigned char* f, int n), (t, f, n))
FWD(kCrypto, void, EVP_MD_CTX_free, (EVP_MD_CTX * ctx), (ctx))
FWD(kCrypto, EVP_MD_CTX*, EVP_MD_CTX_new, (void), ())
FWD(kCrypto, PKCS8_PRIV_KEY_INFO*, EVP_PKEY2PKCS8, (const EVP_PKEY* pkey), (pkey))
FWD(kCrypto, int, EVP_PKEY_CTX_set_rsa_mgf1_md, (EVP_PKEY_CTX * ctx, const EVP_MD* md), (ctx, md))
FWD(kCrypto, int, EVP_PKEY_CTX_set_rsa_padding, (EVP_PKEY_CTX * ctx, int pad), (ctx, pad))
FWD(kCrypto, int, EVP_PKEY_CTX_set_rsa_pss_saltlen, (EVP_PKEY_CTX * ctx, int len), (ctx, len))
FWD(kCrypto, void, EVP_PKEY_free, (EVP_PKEY * pkey), (pkey))
FWD(kCrypto, int, EVP_PKEY_get_base_id, (const EVP_PKEY* pkey), (pkey))
FWD(kCrypto, int, EVP_PKEY_get_raw_public_key, (const EVP_PKEY* pkey, unsigned char* pub, size_t* len), (pkey, pub, len))
FWD(kCrypto, EVP_PKEY*, EVP_PKEY_new_raw_public_key, (int type, ENGINE* e, const unsigned char* pub, size_t len),
    (type, e, pub, len))
FWD(kCrypto, const EVP_CIPHER*, EVP_aes_256_cbc, (void), ())
FWD(kCrypto, const EVP_MD*, EVP_sha256, (void), ())
FWD(kCrypto, const EVP_MD*, EVP_sha512, (void), ())
FWD(kCrypto, EVP_MD*, EVP_MD_fetch, (OSSL_LIB_CTX * ctx, const char* algorithm, const char* properties),
    (ctx, algorithm, properties))
FWD(kCrypto, unsigned char*, HMAC,
    (const EVP_MD* md, const void* key, int key_len, const unsigned char* d, size_t n, unsigned char* out,
     unsigned int* out_len),
    (md, key, key_len, d, n, out, out_len))
FWD(kCrypto, EVP_PKEY*, PEM_read_bio_PUBKEY, (BIO * bp, EVP_PKEY** x, pem_password_cb* cb, void* u), (bp, x, cb, u))
FWD(kCrypto, EVP_PKEY*, PEM_read_bio_PrivateKey, (BIO * bp, EVP_PKEY** x, pem_password_cb* cb, void* u), (bp, x, cb, u))
FWD(kCrypto, int, PEM_write_bio_PKCS8, (BIO * bp, const X509_SIG* x), (bp, x))
FWD(kCrypto, int, PEM_write_bio_PUBKEY, (BIO * bp, const EVP_PKEY* x), (bp, x))
FWD(kCrypto, int, PEM_write_bio_PrivateKey,
    (BIO * bp, const EVP_PKEY* x, const EVP_CIPHER* enc, const unsigned char* kstr, int klen, pem_password_cb* cb,
     void* u),
    (bp, x, enc, kstr, klen, cb, u))
FWD(kCrypto, X509_ALGOR*, PKCS5_pbe2_set_scrypt,
    (const EVP_CIPHER* cipher, const unsigned char* salt, int saltlen, unsigned char* aiv, uint64_t N, uint64_t r,
     uint64_t p),
    (cipher, salt, saltlen, aiv, N, r, p))
FWD(kCrypto, void, PKCS8_PRIV_KEY_INFO_free, (PKCS8_PRIV_KEY_INFO * a), (a))
FWD(kCrypto, X509_SIG*, PKCS8_set0_pbe, (const char* pass, int passlen, PKCS8_PRIV_KEY_INFO* p8, X509_ALGOR* pbe),
    (pass, passlen, p8, pbe))
FWD(kCrypto, int, RAND_bytes, (unsigned char* buf, int num), (buf, num))
FWD(kCrypto, void, X509_ALGOR_free, (X509_ALGOR * a), (a))
FWD(kCrypto, void, X509_SIG_free, (X509_SIG * a), (a))

// The one variadic call: what follows the key type depends on the type, as in OpenSSL's
// own EVP_EC_gen and EVP_RSA_gen macros ("EC": the curve name; "RSA": the size in bits as
// size_t; the others nothing).
extern "C" EVP_PKEY* EVP_PKEY_Q_keygen(OSSL_LIB_CTX* ctx, const char* propq, const char* type, ...) {
  static const auto real = Resolve<decltype(&::EVP_PKEY_Q_keygen)>(kCrypto, "EVP_PKEY_Q_keygen");
  va_list ap;
  va_start(ap, type);
  EVP_PKEY* k;
  if (type && std::strcmp(type, "EC") == 0) {
    const char* curve = va_arg(ap, const char*);
    k = real(ctx, propq, type, curve);
  } else if (type && std::strcmp(type, "RSA") == 0) {
    size_t bits = va_arg(ap, size_t);
    k = real(ctx, propq, type, bits);
  } else {
    k = real(ctx, propq, type);
  }
  va_end(ap);
  return k;
}

FWD(kSsl, int, SSL_CTX_check_private_key, (const SSL_CTX* ctx), (ctx))
FWD(kSsl, long, SSL_CTX_ctrl, (SSL_CTX * ctx, int cmd, long larg, void* parg), (ctx, cmd, larg, parg))
FWD(kSsl, void, SSL_CTX_free, (SSL_CTX * ctx), (ctx))
FWD(kSsl, SSL_CTX*, SSL_CTX_new, (const SSL_METHOD* meth), (meth))
FWD(kSsl, uint64_t, SSL_CTX_set_options, (SSL_CTX * ctx, uint64_t op), (ctx, op))
FWD(kSsl, int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * ctx, const char* file, int type), (ctx, file, type))
FWD(kSsl, int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * ctx, const char* file), (ctx, file))
FWD(kSsl, int, SSL_accept, (SSL * s), (s))
FWD(kSsl, long, SSL_ctrl, (SSL * s, int cmd, long larg, void* parg), (s, cmd, larg, parg))
FWD(kSsl, void, SSL_free, (SSL * s), (s))
FWD(kSsl, int, SSL_get_error, (const SSL* s, int ret), (s, ret))
FWD(kSsl, SSL*, SSL_new, (SSL_CTX * ctx), (ctx))
FWD(kSsl, int, SSL_read, (SSL * s, void* buf, int num), (s, buf, num))
FWD(kSsl, void, SSL_set_accept_state, (SSL * s), (s))
FWD(kSsl, int, SSL_set_fd, (SSL * s, int fd), (s, fd))
FWD(kSsl, int, SSL_shutdown, (SSL * s), (s))
FWD(kSsl, int, SSL_write, (SSL * s, const void* buf, int num), (s, buf, num))
FWD(kSsl, const SSL_METHOD*, TLS_server_method, (void), ())
