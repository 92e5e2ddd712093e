#!/usr/bin/env bash
# patchgate-client's HTTP (#12), as a whole program against nginx on loopback:
#  - libcurl is not loaded at start (not DT_NEEDED) and a plain http:// refresh and
#    download never maps it: the client's own fetcher speaks HTTP/1.1 and keeps one
#    connection alive for every request of the run (nginx logs one connection number);
#  - a proxy variable still sends the requests through libcurl and the proxy (nginx here
#    answers the absolute-form requests for a host name that does not resolve), and
#    no_proxy still bypasses it (the name then fails to resolve);
#  - an https:// URL goes to libcurl (nginx speaks no TLS: the run fails cleanly);
#  - the system's OpenSSL configuration governs the signature checks (libcrypto linked in
#    or not): a FIPS-only setting without a FIPS provider leaves no Ed25519 check, so
#    nothing is trusted;
#  - a target altered on the server is refused and nothing is stored.
# Usage: client_http_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup clienthttp "$1"
export PATCHGATE_PASSPHRASE=client-http-test
unset http_proxy all_proxy ALL_PROXY no_proxy NO_PROXY https_proxy HTTPS_PROXY
. "$here/../lib/nginx.sh"

if readelf -d "$client" | grep NEEDED | grep -q libcurl; then fail "patchgate-client names libcurl as NEEDED (loaded at every start)"; fi
ok "libcurl is not NEEDED by patchgate-client"

repo="$work/repo"
head -c 200000 /dev/urandom > "$work/setup.exe"
echo "notes" > "$work/notes.txt"
"$pg" init "$repo" >/dev/null
"$pg" publish "$repo" --product office "$work/setup.exe" "$work/notes.txt" >/dev/null

# nginx logs each request's connection number: one number means one kept-alive connection.
NGINX_LOG_FORMAT='$connection "$request" $status' start_nginx "$repo"
base="http://127.0.0.1:$port"
wait_http "$base/metadata/1.root.json"

# fresh NAME: a client directory holding only the trusted root.
fresh() { rm -rf "$work/$1"; "$client" --metadata-dir "$work/$1/meta" init "$repo/metadata/1.root.json"; }

fresh plain
: > "$ngx/access.log"
LD_DEBUG=files "$client" --metadata-dir "$work/plain/meta" --metadata-url "$base/metadata" --target-name office/setup.exe \
  --target-name office/notes.txt --target-base-url "$base/targets" --target-dir "$work/plain/t" download \
  >"$work/out" 2>"$work/ld"
cmp "$work/plain/t/office%2Fsetup.exe" "$work/setup.exe"
cmp "$work/plain/t/office%2Fnotes.txt" "$work/notes.txt"
if grep -q "file=libcurl" "$work/ld"; then fail "a plain http:// run loaded libcurl"; fi
requests=$(grep -c . "$ngx/access.log")
connections=$(cut -d' ' -f1 "$ngx/access.log" | sort -u | wc -l)
(( requests >= 6 )) || { cat "$ngx/access.log"; fail "expected at least 6 requests, nginx logged $requests"; }
(( connections == 1 )) || { cat "$ngx/access.log"; fail "$requests requests used $connections connections"; }
ok "plain http:// refresh and 2 downloads without libcurl, $requests requests on 1 kept-alive connection"

# A proxy variable: libcurl and the proxy, exactly as before this fetcher existed.
fresh proxied
: > "$ngx/access.log"
http_proxy="$base" LD_DEBUG=files "$client" --metadata-dir "$work/proxied/meta" \
  --metadata-url "http://repo.invalid/metadata" --target-name office/notes.txt \
  --target-base-url "http://repo.invalid/targets" --target-dir "$work/proxied/t" download >/dev/null 2>"$work/ld"
cmp "$work/proxied/t/office%2Fnotes.txt" "$work/notes.txt"
grep -q "file=libcurl" "$work/ld" || fail "a run with http_proxy did not use libcurl"
grep -q '"GET http://repo.invalid/metadata/timestamp.json HTTP/1.1" 200' "$ngx/access.log" \
  || { cat "$ngx/access.log"; fail "the proxy saw no absolute-form request"; }
fresh bypass
expect_rc 1 env http_proxy="$base" no_proxy=repo.invalid "$client" --metadata-dir "$work/bypass/meta" \
  --metadata-url "http://repo.invalid/metadata" refresh
ok "http_proxy goes through libcurl and the proxy; no_proxy bypasses it"

fresh tls
expect_rc 1 env LD_DEBUG=files "$client" --metadata-dir "$work/tls/meta" --metadata-url "https://127.0.0.1:$port/metadata" refresh
grep -q "file=libcurl" "$work/err" || fail "an https:// URL did not go to libcurl"
grep -q "patchgate-client: error: " "$work/err" || fail "no error message for a failed https:// refresh"
ok "https:// goes to libcurl (loaded on demand)"

# The system's OpenSSL configuration (OPENSSL_CONF, else OPENSSLDIR/openssl.cnf) is read at
# every start and governs the signature checks: "only FIPS-approved implementations" with no
# FIPS provider loaded leaves no Ed25519 implementation, so not even the trusted root verifies.
cat > "$work/fips-only.cnf" <<'CNF'
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
alg_section = algorithm_sect
[provider_sect]
default = default_sect
[default_sect]
activate = 1
[algorithm_sect]
default_properties = fips=yes
CNF
fresh fipsonly
expect_rc 1 env OPENSSL_CONF="$work/fips-only.cnf" "$client" --metadata-dir "$work/fipsonly/meta" \
  --metadata-url "$base/metadata" refresh
grep -q "UnmetThreshold" "$work/err" || { cat "$work/err"; fail "the OpenSSL configuration did not govern the signature check"; }
"$client" --metadata-dir "$work/fipsonly/meta" --metadata-url "$base/metadata" refresh
ok "the system's OpenSSL configuration governs the signature checks ($(readelf -d "$client" | grep -q 'NEEDED.*libcrypto' && echo 'shared' || echo 'static') libcrypto)"

# A target altered on the server: refused, nothing stored.
f=$(ls "$repo"/targets/office/*setup.exe)
printf 'X' | dd of="$f" bs=1 seek=1000 conv=notrunc 2>/dev/null
fresh tampered
expect_rc 1 "$client" --metadata-dir "$work/tampered/meta" --metadata-url "$base/metadata" --target-name office/setup.exe \
  --target-base-url "$base/targets" --target-dir "$work/tampered/t" download
grep -q "HashMismatch" "$work/err" || { cat "$work/err"; fail "expected a hash mismatch"; }
if ls "$work/tampered/t" 2>/dev/null | grep -q .; then ls "$work/tampered/t"; fail "something was stored"; fi
ok "an altered target is refused and nothing is stored"
harness_done client-http
