#!/usr/bin/env bash
# Interop in both directions, over plain static HTTP servers on loopback (nginx and a
# python static server: no patchgate code between the files and the clients):
#  1. for every key type (ed25519, ecdsa, rsa): `patchgate init` -> publish (hash bins in
#     use) -> key rotate of every role -> verify; then nginx serves the repository
#     directory as static files and both patchgate-client and tuf-js refresh and download
#     through it (delegated role files are single path segments, so nginx finds them);
#  2. patchgate-client refreshes and downloads from a repository built by @tufjs/models
#     with node's ed25519 (someone else's canonical JSON and signatures).
# Every server started here is stopped by its own pid, and the scratch folder removed,
# pass or fail. Usage: interop_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup interop "$1"
if ! command -v node >/dev/null; then harness_skip "node is not installed"; fi
if [[ ! -d "$here/node_modules/tuf-js" ]]; then
  echo "tests/interop/node_modules missing: run scripts/deps.sh (npm ci)"; exit 1
fi
. "$here/../lib/nginx.sh"

# start_static DIR: the python static server; sets $port.
start_static() {
  rm -f "$work/port"
  python3 "$here/../tools/static_server.py" "$1" --port-file "$work/port" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  port=$(cat "$work/port")
}

echo "== 1. every key type: init, publish, rotate, verify; patchgate-client and tuf-js through nginx"
export PATCHGATE_PASSPHRASE=interop-test
head -c 50000 /dev/urandom > "$work/setup.exe"
for i in 1 2 3 4; do echo "file $i" > "$work/readme-$i.txt"; done
echo "late" > "$work/late.txt"
for kt in ed25519 ecdsa rsa; do
  repo="$work/repo-$kt"
  "$pg" init "$repo" --key-type "$kt" --bins-threshold 3 --bin-bits 2 >/dev/null
  "$pg" publish "$repo" --product office --version 2.1 "$work/setup.exe" "$work"/readme-*.txt >/dev/null
  "$pg" publish "$repo" --product office "$work/late.txt" >/dev/null   # hash bins in use
  for role in root timestamp snapshot targets product.office; do
    "$pg" key rotate "$repo" --role "$role" >/dev/null
  done
  "$pg" verify "$repo" >/dev/null
  # Standard JSON on disk (a strict parser reads every file), no percent sign in any name.
  for f in "$repo"/metadata/*.json; do
    python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$f" || { echo "FAIL: $f is not JSON"; exit 1; }
  done
  if ls "$repo/metadata" | grep -q '%'; then echo "FAIL: a metadata file name needs URL encoding"; exit 1; fi
  ls "$repo/metadata" | grep -q '^[0-9]*\.bins\.office-[0-9a-f]\.json$'
  start_nginx "$repo"
  base="http://127.0.0.1:$port"
  "$client" --metadata-dir "$work/pc-$kt/meta" init "$repo/metadata/1.root.json"
  for name in office/setup.exe office/late.txt; do
    "$client" --metadata-dir "$work/pc-$kt/meta" --metadata-url "$base/metadata" --target-name "$name" \
      --target-base-url "$base/targets" --target-dir "$work/pc-$kt/targets" download >/dev/null
    cmp "$work/pc-$kt/targets/office%2F$(basename $name)" "$work/$(basename $name)"
    node "$here/tufjs_client.mjs" "$base/metadata" "$base/targets" \
      "$repo/metadata/1.root.json" "$work/tufjs-$kt-$(basename $name)" "$name" >/dev/null
    cmp "$work/tufjs-$kt-$(basename $name)/targets/office%2F$(basename $name)" "$work/$(basename $name)"
  done
  echo "  $kt: verify clean; patchgate-client and tuf-js downloaded through nginx"
done

echo "== 2. patchgate-client against an @tufjs/models repository"
mkdir -p "$work/ext"
head -c 70000 /dev/urandom > "$work/ext-file.bin"
node "$here/make_repo.mjs" "$work/ext" "vendor/ext-file.bin" "$work/ext-file.bin" >/dev/null
start_static "$work/ext"
"$client" --metadata-dir "$work/pc/meta" init "$work/ext/metadata/1.root.json"
"$client" --metadata-dir "$work/pc/meta" --metadata-url "http://127.0.0.1:$port/metadata" refresh
"$client" --metadata-dir "$work/pc/meta" --metadata-url "http://127.0.0.1:$port/metadata" \
  --target-name vendor/ext-file.bin --target-base-url "http://127.0.0.1:$port/targets" \
  --target-dir "$work/pc/targets" download
cmp "$work/pc/targets/vendor%2Fext-file.bin" "$work/ext-file.bin"
# A tampered target in that repository is refused.
f=$(ls "$work/ext/targets/vendor/"*)
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null
rm -f "$work/pc/targets/vendor%2Fext-file.bin"
if "$client" --metadata-dir "$work/pc/meta" --metadata-url "http://127.0.0.1:$port/metadata" \
     --target-name vendor/ext-file.bin --target-base-url "http://127.0.0.1:$port/targets" \
     --target-dir "$work/pc/targets" download 2>"$work/err"; then
  echo "FAIL: a tampered target was accepted"; exit 1
fi
grep -q HashMismatch "$work/err"
[[ ! -e "$work/pc/targets/vendor%2Fext-file.bin" ]]
echo "patchgate-client verified an outside repository and refused a tampered target"

echo "== 3. a 403 is reported as not entitled, a 401 as token refused"
rm -f "$work/port"
python3 - "$work/port" >/dev/null 2>&1 <<'PY' &
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401 if self.path.startswith("/t401/") else 403)
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
deny=$(cat "$work/port")
for kind in 403 401; do
  prefix=$([[ $kind == 401 ]] && echo t401 || echo t403)
  if "$client" --metadata-dir "$work/pc/meta" --metadata-url "http://127.0.0.1:$port/metadata" \
       --target-name vendor/ext-file.bin --target-base-url "http://127.0.0.1:$deny/$prefix" \
       --target-dir "$work/pc/denied" download 2>"$work/err"; then
    echo "FAIL: a $kind answer was accepted"; exit 1
  fi
  want=$([[ $kind == 401 ]] && echo "token refused" || echo "not entitled")
  grep -q "$want" "$work/err" || { echo "FAIL: HTTP $kind not reported as '$want':"; cat "$work/err"; exit 1; }
  if grep -q NotFound "$work/err"; then echo "FAIL: HTTP $kind reported as NotFound"; cat "$work/err"; exit 1; fi
done
echo "HTTP 403 -> not entitled, 401 -> token refused"
harness_done interop
