#!/usr/bin/env bash
# What `patchgate` does before a command runs, which short commands (incident scope) pay
# on every call:
#  - the C++ runtime (libstdc++, libgcc_s) is linked into the executable, not loaded;
#  - libpq, libcurl, GPGME and OpenSSL (libcrypto, libssl) are not loaded at start-up
#    (src/cli/lazy_libs.cc): the executable does not name them, and a command on an SQLite
#    store never maps them; commands that sign go through the OpenSSL forwarders, including
#    the variadic key generation (ed25519, ecdsa P-256, rsa 3072: `init` then `verify`);
#  - the command table registers only the areas of the command given (src/cli/main.cc):
#    every top-level command's help, and every subcommand's, is the same as with all areas
#    registered (PATCHGATE_CLI_ALL_AREAS=1);
#  - when PATCHGATE_TEST_PG_URL is set, a PostgreSQL command loads libpq on demand and works.
# Usage: startup_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup startup "$1"

needed=$(readelf -d "$pg" | grep NEEDED || true)
for lib in libpq libcurl libgpgme libssl libcrypto; do
  if grep -q "$lib" <<<"$needed"; then echo "FAIL: patchgate names $lib as NEEDED (loaded at every start)"; exit 1; fi
done
# The C++ runtime is linked in (src/cli/CMakeLists.txt): two libraries fewer to load at every start.
if grep -Eq "libstdc\+\+|libgcc_s" <<<"$needed"; then echo "FAIL: patchgate loads the C++ runtime as shared libraries"; exit 1; fi

store="sqlite://$work/s.db"
"$pg" incident list --store "$store" >/dev/null
# A process on the SQLite store maps none of the lazily loaded libraries.
LD_DEBUG=files "$pg" incident list --store "$store" 2>"$work/ld" >/dev/null
if grep -Eq "file=lib(pq|curl|gpgme|ssl|crypto)" "$work/ld"; then
  echo "FAIL: an SQLite command loaded libpq, libcurl, GPGME or OpenSSL"; grep -E "file=lib(pq|curl|gpgme|ssl|crypto)" "$work/ld" | head -3; exit 1
fi
echo "ok: an SQLite command maps none of libpq, libcurl, GPGME, libssl, libcrypto"

# Key generation and signing through the OpenSSL forwarders, one repository per key type.
echo "startup-test-passphrase" >"$work/pass"
for kt in ed25519 ecdsa rsa; do
  "$pg" init "$work/repo-$kt" --key-type "$kt" --passphrase-file "$work/pass" >"$work/init.out" 2>&1 \
    || { echo "FAIL: init --key-type $kt"; cat "$work/init.out"; exit 1; }
  "$pg" verify "$work/repo-$kt" >"$work/verify.out" 2>&1 || { echo "FAIL: verify of the $kt repository"; cat "$work/verify.out"; exit 1; }
  grep -q "0 problem(s)" "$work/verify.out" || { echo "FAIL: verify of the $kt repository"; cat "$work/verify.out"; exit 1; }
done
echo "ok: ed25519, ecdsa and rsa repositories created and verified through the lazily loaded OpenSSL"

# Help of each command and subcommand: the same with only its areas as with all of them.
commands=$(PATCHGATE_CLI_ALL_AREAS=1 "$pg" --help | awk '/^Subcommands:/{s=1; next} s && NF {print $1}')
[[ -n "$commands" ]] || { echo "FAIL: no commands in patchgate --help"; exit 1; }
checked=0
for c in $commands; do
  PATCHGATE_CLI_ALL_AREAS=1 "$pg" "$c" --help >"$work/all" 2>&1 || true
  "$pg" "$c" --help >"$work/some" 2>&1 || true
  if ! cmp -s "$work/all" "$work/some"; then echo "FAIL: 'patchgate $c --help' differs with only its areas"; diff "$work/all" "$work/some" | head; exit 1; fi
  for sub in $(awk '/^Subcommands:/{s=1; next} s && NF {print $1}' "$work/all"); do
    PATCHGATE_CLI_ALL_AREAS=1 "$pg" "$c" "$sub" --help >"$work/all2" 2>&1 || true
    "$pg" "$c" "$sub" --help >"$work/some2" 2>&1 || true
    cmp -s "$work/all2" "$work/some2" || { echo "FAIL: 'patchgate $c $sub --help' differs"; exit 1; }
    checked=$((checked + 1))
  done
  checked=$((checked + 1))
done
echo "ok: $checked command helps identical with only their areas registered"

if [[ -n "${PATCHGATE_TEST_PG_URL:-}" ]]; then
  # A database of its own: the shared test database is reset by store tests running beside this one.
  pgbin=/usr/lib/postgresql/15/bin
  hostport=${PATCHGATE_TEST_PG_URL#postgresql://*@}
  hostport=${hostport%%/*}
  db="startup_$$_$(date +%s)"
  "$pgbin/createdb" -h "${hostport%:*}" -p "${hostport#*:}" -U postgres "$db"
  LD_DEBUG=files "$pg" incident list --store "postgresql://postgres@$hostport/$db" 2>"$work/ld" >/dev/null ||
    { tail -5 "$work/ld"; echo "FAIL: 'incident list' on PostgreSQL failed"; exit 1; }
  "$pgbin/dropdb" -h "${hostport%:*}" -p "${hostport#*:}" -U postgres "$db" || true
  grep -q "file=libpq.so.5" "$work/ld" || { echo "FAIL: a PostgreSQL command did not load libpq"; exit 1; }
  echo "ok: PostgreSQL command loads libpq on demand"
fi
harness_done startup_test
