// Loads libpq, libcurl and GPGME on first use instead of at process start.
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
