#!/usr/bin/env bash
# TUF figures (prints; not a test): publish one more target into a 30,000-target
# repository; patchgate-client cold refresh + one download (in-process time, peak RSS);
# tuf-js on the same shape at 3,000 targets, in the same run, and the ratio.
# Usage: bench/tuf_bench.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
pg="$build/src/cli/patchgate"
export PATCHGATE_SIGNATURES="$root/tests/data/signatures"
work=$(mktemp -d /tmp/pg-tufbench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; rm -rf "$work"' EXIT
unset PATCHGATE_PASSPHRASE

gen() {  # gen DIR COUNT
  python3 - "$1" "$2" <<'PY'
import os, sys, random
d, n = sys.argv[1], int(sys.argv[2]); os.makedirs(d, exist_ok=True); r = random.Random(7)
for i in range(n):
    with open(f"{d}/update-{i:06d}.msp", "wb") as f: f.write(r.randbytes(r.randint(200, 2000)))
PY
}
serve() {
  rm -f "$work/port"
  python3 "$root/tests/tools/static_server.py" "$1" --port-file "$work/port" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  cat "$work/port"
}
publish_all() {  # publish_all REPO DIR
  find "$2" -type f -print0 | xargs -0 -n 5000 "$pg" publish "$1" --product catalogue --insecure-plaintext-keys >/dev/null
}

echo "== building repositories (30,000 targets binned and flat; 3,000 flat) — the scan gate runs on every file"
gen "$work/f30k" 30000
gen "$work/f3k" 3000
t0=$(date +%s.%N)
"$pg" init "$work/binned" --insecure-plaintext-keys >/dev/null
publish_all "$work/binned" "$work/f30k"
t1=$(date +%s.%N)
"$pg" init "$work/flat" --insecure-plaintext-keys --bins-threshold 1000000 >/dev/null
publish_all "$work/flat" "$work/f30k"
"$pg" init "$work/flat3k" --insecure-plaintext-keys --bins-threshold 1000000 >/dev/null
publish_all "$work/flat3k" "$work/f3k"
printf "initial publish of 30,000 files (scan + sign): %.1f s\n" "$(echo "$t1 - $t0" | bc)"
ls -l "$work/flat/metadata/"*catalogue.json | awk '{printf "flat product role: %.1f MB\n", $5/1e6}' | tail -1

echo "== publish one more target (in-process, median of 10)"
echo "binned 30,000: $("$build/bench/publish_bench" "$work/binned" catalogue 10)"
echo "flat   30,000: $("$build/bench/publish_bench" "$work/flat" catalogue 5)"

echo "== patchgate-client cold refresh + one download (in-process)"
for repo in binned flat flat3k; do
  port=$(serve "$work/$repo")
  rm -rf "$work/c-$repo"
  out=$("$build/bench/client_bench" "http://127.0.0.1:$port/metadata" "http://127.0.0.1:$port/targets" \
        "$work/$repo/metadata/1.root.json" "$work/c-$repo" catalogue/update-000042.msp)
  echo "$repo: $out"
  [[ $repo == flat3k ]] && ours3k=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_ms"])') && port3k=$port
done

echo "== tuf-js 6.0.2 on the 3,000-target flat repository (same run)"
if [[ -d "$root/tests/interop/node_modules/tuf-js" ]]; then
  out=$(node "$root/tests/interop/tufjs_client.mjs" "http://127.0.0.1:$port3k/metadata" "http://127.0.0.1:$port3k/targets" \
        "$work/flat3k/metadata/1.root.json" "$work/tufjs" catalogue/update-000042.msp)
  echo "tuf-js: $out"
  theirs=$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["refresh_ms"]+d["lookup_download_ms"])')
  python3 -c "print(f'ratio tuf-js / patchgate-client at 3,000 targets: {$theirs/$ours3k:.1f}x')"
fi
