#!/usr/bin/env bash
# Interop in both directions, over HTTP on loopback:
#  1. tuf-js refreshes from and downloads a target out of a repository made by
#     `patchgate init` / `patchgate publish`;
#  2. patchgate-client refreshes and downloads from a repository built by @tufjs/models
#     with node's ed25519 (someone else's canonical JSON and signatures).
# Usage: interop_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
export PATCHGATE_SIGNATURES="$(cd "$(dirname "$0")/../data/signatures" && pwd)"
pg="$build/src/cli/patchgate"
client="$build/src/client/patchgate-client"
if ! command -v node >/dev/null; then echo "SKIP: node is not installed"; exit 0; fi
if [[ ! -d "$here/node_modules/tuf-js" ]]; then
  echo "tests/interop/node_modules missing: run scripts/deps.sh (npm ci)"; exit 1
fi
work=$(mktemp -d /tmp/pg-interop.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
serve() {  # serve DIR -> prints port
  rm -f "$work/port"
  python3 "$here/../tools/static_server.py" "$1" --port-file "$work/port" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  cat "$work/port"
}

echo "== 1. tuf-js against a patchgate repository"
export PATCHGATE_PASSPHRASE=interop-test
"$pg" init "$work/repo" --bins-threshold 3 --bin-bits 2 >/dev/null
head -c 50000 /dev/urandom > "$work/setup.exe"
for i in 1 2 3 4; do echo "file $i" > "$work/readme-$i.txt"; done
"$pg" publish "$work/repo" --product office --version 2.1 "$work/setup.exe" "$work"/readme-*.txt >/dev/null
echo "late" > "$work/late.txt"
"$pg" publish "$work/repo" --product office "$work/late.txt" >/dev/null   # hash bins in use
"$pg" key rotate "$work/repo" --role root >/dev/null                          # a root chain to follow
port=$(serve "$work/repo")
for name in office/setup.exe office/late.txt; do
  node "$here/tufjs_client.mjs" "http://127.0.0.1:$port/metadata" "http://127.0.0.1:$port/targets" \
    "$work/repo/metadata/1.root.json" "$work/tufjs-$(basename $name)" "$name"
  cmp "$work/tufjs-$(basename $name)/targets/office%2F$(basename $name)" "$work/$(basename $name)"
done
echo "tuf-js verified and downloaded patchgate targets"

echo "== 2. patchgate-client against an @tufjs/models repository"
mkdir -p "$work/ext"
head -c 70000 /dev/urandom > "$work/ext-file.bin"
node "$here/make_repo.mjs" "$work/ext" "vendor/ext-file.bin" "$work/ext-file.bin" >/dev/null
port=$(serve "$work/ext")
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
echo "interop: 2 passed, 0 failed"
