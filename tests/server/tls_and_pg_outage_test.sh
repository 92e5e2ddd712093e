#!/usr/bin/env bash
# 1. TLS: `patchgate serve --tls-cert/--tls-key` serves over TLS 1.2 and 1.3 and refuses TLS 1.1.
# 2. PostgreSQL stopped while serving: downloads are refused with 503 (never served
#    unrecorded), and served again once the database is back. Needs PATCHGATE_TEST_PG_URL and
#    PATCHGATE_TEST_PG_DIR (scripts/test.sh sets them); skipped with a reason otherwise.
# Usage: tls_and_pg_outage_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup tls "$1"
server=
at_exit '[[ -n "$server" ]] && kill "$server"'
unset PATCHGATE_PASSPHRASE
setup() {  # setup STORE_URL
  export PATCHGATE_STORE="$1"
  rm -rf "$work/repo" "$work/repo.root-keys"
  "$pg" init "$work/repo" --insecure-plaintext-keys >/dev/null
  head -c 100000 /dev/urandom > "$work/f.bin"
  "$pg" publish "$work/repo" --product p --insecure-plaintext-keys "$work/f.bin" >/dev/null
  org="Org$RANDOM$RANDOM"
  "$pg" org add "$org" --tier gold >/dev/null
  token=$("$pg" user add "$org" "u$RANDOM$RANDOM" 2>/dev/null)
  "$pg" grant "$org" p >/dev/null
  url_path="/targets/p/$(sha256sum "$work/f.bin" | cut -c1-64).f.bin"
}
start() {  # start EXTRA_ARGS...
  port=$(free_port)
  "$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" "$@" >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "listening" "$work/serve.log" && return; sleep 0.05; done
  cat "$work/serve.log"; exit 1
}

setup "sqlite://$work/store.db"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
start --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
for v in --tlsv1.2 --tlsv1.3; do
  code=$(curl -s -o "$work/got" -w '%{http_code}' --cacert "$work/cert.pem" $v -H "Authorization: Bearer $token" \
    "https://127.0.0.1:$port$url_path")
  [[ $code == 200 ]] && cmp -s "$work/got" "$work/f.bin" || { echo "FAIL: TLS $v got $code"; exit 1; }
done
if curl -s -o /dev/null --cacert "$work/cert.pem" --tlsv1.1 --tls-max 1.1 "https://127.0.0.1:$port/healthz" 2>/dev/null; then
  echo "FAIL: TLS 1.1 accepted"; exit 1
fi
kill "$server"; wait "$server" 2>/dev/null || true; server=
ok "TLS 1.2 and 1.3 served, 1.1 refused"

if [[ -z "${PATCHGATE_TEST_PG_URL:-}" || -z "${PATCHGATE_TEST_PG_DIR:-}" ]]; then
  echo "SKIP: PostgreSQL outage (PATCHGATE_TEST_PG_URL / PATCHGATE_TEST_PG_DIR not set; scripts/test.sh sets them)"
else
  setup "$PATCHGATE_TEST_PG_URL"
  # The database may hold other runs' records: this run's node name is its own.
  node="pg-outage-$$-$RANDOM$RANDOM"
  start --node-name "$node"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$url_path")
  [[ $code == 200 ]] || { echo "FAIL: before the outage got $code"; exit 1; }
  bash "$here/../pg/pg.sh" stop "$PATCHGATE_TEST_PG_DIR"
  code=$(curl -s -o "$work/during" -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$url_path")
  bash "$here/../pg/pg.sh" restart-stopped "$PATCHGATE_TEST_PG_DIR"
  [[ $code == 503 ]] || { echo "FAIL: during the outage got $code"; exit 1; }
  ! cmp -s "$work/during" "$work/f.bin" || { echo "FAIL: file served during the outage"; exit 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$url_path")
  [[ $code == 200 ]] || { echo "FAIL: after the outage got $code"; cat "$work/serve.log"; exit 1; }
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=
  n=$("$pg" downloads --node "$node" --csv | tail -n +2 | wc -l)
  [[ $n -eq 2 ]] || { echo "FAIL: $n records, want 2 (before and after the outage)"; exit 1; }
  ok "PostgreSQL stopped -> 503, nothing served unrecorded; back -> served and recorded"
fi
harness_done tls-pg-outage
